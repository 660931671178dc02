"""`opus doctor`: every check a new user needs before leaving the daemon alone."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from opus.config import Settings
from opus.errors import OpusError
from opus.git import git, is_repo

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


def run_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """Run every check; none raises."""
    checks: list[Callable[[Settings, Mapping[str, str]], Check]] = [
        _config, _vault, _git, _repo, _sandbox, _limits, _engine, _forge, _notify, _database,
    ]
    return [_safely(check, settings, environ) for check in checks]


def _safely(
    check: Callable[[Settings, Mapping[str, str]], Check],
    settings: Settings,
    environ: Mapping[str, str],
) -> Check:
    name = check.__name__.strip("_")
    try:
        return check(settings, environ)
    except OpusError as exc:
        return Check(name, "fail", str(exc))
    except Exception as exc:  # a doctor reports; it does not crash
        return Check(name, "fail", f"unexpected error: {exc!r}")


def _config(settings: Settings, _env: Mapping[str, str]) -> Check:
    source = settings.config_path or "defaults (no opus.toml found; `opus init` writes one)"
    return Check("config", "ok", f"loaded from {source}")


def _vault(settings: Settings, _env: Mapping[str, str]) -> Check:
    features = settings.vault_path / "10_features"
    if not features.is_dir():
        return Check("vault", "fail", f"{features} is missing; run `opus init` or fix vault.path")
    notes = sum(1 for _ in features.rglob("*.md"))
    return Check("vault", "ok", f"{settings.vault_path} ({notes} notes)")


def _git(_settings: Settings, _env: Mapping[str, str]) -> Check:
    if shutil.which("git") is None:
        return Check("git", "fail", "git is not on PATH; install git")
    return Check("git", "ok", git("--version", cwd=_settings.base_dir))


def _repo(settings: Settings, _env: Mapping[str, str]) -> Check:
    repo = settings.default_repo
    if repo is None:
        return Check("repo", "warn", "git.default_repo is not set; every FR must name `repo:`")
    if not is_repo(repo):
        return Check("repo", "fail", f"git.default_repo {repo} is not a git repository")
    return Check("repo", "ok", f"default repo {repo}")


def _sandbox(settings: Settings, _env: Mapping[str, str]) -> Check:
    from opus.sandbox import check_sandbox

    line = check_sandbox(settings.sandbox)
    # kind = "none" works but is unsafe: check_sandbox says so with a WARNING: prefix.
    if line.startswith("WARNING:"):
        return Check("sandbox", "warn", line.removeprefix("WARNING:").strip())
    return Check("sandbox", "ok", line)


def _limits(settings: Settings, _env: Mapping[str, str]) -> Check:
    from opus.sandbox import limits_in_force

    complete, line = limits_in_force(settings.sandbox)
    return Check("limits", "ok" if complete else "warn", line)


def _engine(settings: Settings, env: Mapping[str, str]) -> Check:
    engine = settings.agents.engine
    if engine == "anthropic":
        from opus.engines.models import check_models

        check_models(settings.agents)  # a model without opus's tools: ConfigError, a fail
        if env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN"):
            base = env.get("ANTHROPIC_BASE_URL", "the public API")
            return Check("engine", "ok", f"anthropic, key present, endpoint {base}")
        return Check("engine", "fail", "ANTHROPIC_API_KEY is not set (put it in the service's "
                     "EnvironmentFile or your shell)")
    if engine == "claude-code":
        found = shutil.which(settings.agents.claude_bin)
        if found is None:
            return Check("engine", "fail", f"agents.claude_bin {settings.agents.claude_bin!r} "
                         "is not on PATH")
        return Check("engine", "warn", f"claude-code at {found}; its tools run OUTSIDE opus's "
                     "sandbox, guarded only by claude's own permission rules")
    if not settings.agents.command:
        return Check("engine", "fail", "agents.engine = command needs agents.command (argv)")
    return Check("engine", "ok", f"command: {' '.join(settings.agents.command)}")


def _forge(settings: Settings, env: Mapping[str, str]) -> Check:
    provider = settings.pr.provider
    if provider == "local":
        return Check("forge", "ok", "local: PRs are notes in 10_features/05_review/")
    if not env.get(settings.pr.token_env):
        return Check("forge", "fail", f"pr.provider = {provider} needs a token in "
                     f"${settings.pr.token_env} (pr.token_env)")
    return Check("forge", "ok", f"{provider}, token in ${settings.pr.token_env}")


def _notify(settings: Settings, _env: Mapping[str, str]) -> Check:
    from opus.notify import check_urls

    if not settings.notify.urls:
        return Check("notify", "warn", "notify.urls is empty: nobody hears about failures")
    problems = check_urls(settings.notify.urls)
    if problems:
        return Check("notify", "fail", "; ".join(problems))
    return Check("notify", "ok", f"{len(settings.notify.urls)} URL(s)")


def _database(settings: Settings, _env: Mapping[str, str]) -> Check:
    from opus.registry import open_store

    store = open_store(settings.database_url)
    try:
        count = len(store.jobs())
    finally:
        store.close()
    return Check("database", "ok", f"{_redact(settings.database_url)} ({count} jobs)")


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def render_checks(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    return "\n".join(f"[{marks[c.level]}] {c.name:9} {c.detail}" for c in checks)
