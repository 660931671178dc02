"""`opus doctor`: every check a new user needs before leaving the daemon alone.

Each check answers one question a delivery depends on, and a FAIL names what to fix.
The repository checks (`remote`, `tests`) look at the default repo and at every repo a
planned FR names. Doctor never creates state: it reads the database only if it exists.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opus.config import Settings
from opus.errors import OpusError
from opus.git import git, is_repo

if TYPE_CHECKING:
    from opus.domain import FeatureRequest
    from opus.vault import ScanResult

Level = Literal["ok", "warn", "fail"]
REMOTE_TIMEOUT_S = 10.0
"""How long `git ls-remote` may take before the remote counts as not answering."""
SHELL_WORDS = frozenset({
    "true", "false", ":", "test", "[", "cd", "exec", "env", "command", "set", "export",
    "if", "for", "while", "!", "{", "(",
})
"""First words of a test command that the shell itself provides."""


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


class Doctor:
    """What the checks share: the settings, the environment and one scan of the vault."""

    def __init__(self, settings: Settings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.env = environ

    @functools.cached_property
    def scan(self) -> ScanResult | None:
        from opus.vault import scan_vault

        vault = self.settings.vault
        if not (self.settings.vault_path / vault.features_dir).is_dir():
            return None
        return scan_vault(self.settings.vault_path, default_repo=self.settings.default_repo,
                          features_dir=vault.features_dir, id_pattern=vault.id_pattern)

    @property
    def planned(self) -> list[FeatureRequest]:
        return list(self.scan.planned) if self.scan is not None else []

    def repos(self) -> list[Path]:
        """The default repo and every repo a planned FR names, each once."""
        found = [self.settings.default_repo] + [fr.repo for fr in self.planned]
        return list(dict.fromkeys(repo for repo in found if repo is not None))


CheckFn = Callable[[Doctor], Check]


def run_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """Run every check; none raises."""
    doctor = Doctor(settings, environ)
    checks: list[CheckFn] = [
        _config, _vault, _notes, _git, _repo, _remote, _tests, _sandbox, _limits, _engine,
        _forge, _notify, _database,
    ]
    return [_safely(check, doctor) for check in checks]


def _safely(check: CheckFn, doctor: Doctor) -> Check:
    name = check.__name__.strip("_")
    try:
        return check(doctor)
    except OpusError as exc:
        return Check(name, "fail", str(exc))
    except Exception as exc:  # a doctor reports; it does not crash
        return Check(name, "fail", f"unexpected error: {exc!r}")


# --------------------------------------------------------------------------- the project


def _config(d: Doctor) -> Check:
    source = d.settings.config_path or "defaults (no opus.toml found; `opus init` writes one)"
    return Check("config", "ok", f"loaded from {source}")


def _vault(d: Doctor) -> Check:
    features = d.settings.vault_path / d.settings.vault.features_dir
    if not features.is_dir():
        return Check("vault", "fail", f"{features} is missing; run `opus init` or fix vault.path")
    notes = sum(1 for _ in features.rglob("*.md"))
    plural = "" if notes == 1 else "s"
    return Check("vault", "ok", f"{d.settings.vault_path} ({notes} note{plural})")


def _notes(d: Doctor) -> Check:
    if d.scan is None:
        return Check("notes", "warn", "no vault to read (see `vault`)")
    from opus.vault.problems import problems_of

    # The same rule as `opus status` and `opus scan` (vault.problems), on this one scan.
    unusable = problems_of(d.scan.invalid, d.settings.vault_path)
    if unusable:
        listed = "; ".join(f"{problem.path}: {problem.reason}" for problem in unusable)
        return Check("notes", "fail", f"{len(unusable)} note(s) opus cannot use: {listed}")
    return Check("notes", "ok", f"{len(d.planned)} planned FR(s), none invalid")


def _git(d: Doctor) -> Check:
    if shutil.which("git") is None:
        return Check("git", "fail", "git is not on PATH; install git")
    return Check("git", "ok", git("--version", cwd=d.settings.base_dir))


def _repo(d: Doctor) -> Check:
    repo = d.settings.default_repo
    if repo is None:
        return Check("repo", "warn", "git.default_repo is not set; every FR must name `repo:`")
    if not is_repo(repo):
        return Check("repo", "fail", f"git.default_repo {repo} is not a git repository")
    return Check("repo", "ok", f"default repo {repo}")


def _remote(d: Doctor) -> Check:
    remote = d.settings.git.remote
    repos = [repo for repo in d.repos() if is_repo(repo)]
    if not repos:
        return Check("remote", "warn", "no repository to push from yet (see `repo`)")
    problems = [p for p in (_remote_problem(repo, remote) for repo in repos) if p]
    if problems:
        return Check("remote", "fail", "; ".join(problems))
    return Check("remote", "ok", f"{remote} answers for {_names(repos)}")


def _remote_problem(repo: Path, remote: str) -> str | None:
    from opus.forges.remote import redact
    from opus.sandbox.process import run_in_group

    url = git("remote", "get-url", remote, cwd=repo, check=False)
    if not url:
        return (f"{repo} has no remote {remote!r} to push to; add it with "
                f"`git remote add {remote} URL` or set git.remote")
    if _relative_path(url):
        # git resolves it against the directory it runs in: opus pushes from worktrees.
        return (f"remote {remote} of {repo} is the relative path {url!r}, which git resolves "
                "from each job's worktree, where it points nowhere; use an absolute path: "
                f"git -C {repo} remote set-url {remote} {(repo / url).resolve()}")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0",
           "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=5"}
    result = run_in_group(["git", "ls-remote", "--heads", remote], cwd=repo, env=env,
                          timeout_s=REMOTE_TIMEOUT_S, cap_bytes=20_000)
    where = f"remote {remote} ({redact(url)}) of {repo}"
    if result.timed_out:
        return (f"{where} did not answer within {REMOTE_TIMEOUT_S:.0f}s; check the URL, "
                "the network and the credentials")
    if result.exit_code != 0:
        said = [line for line in result.output.strip().splitlines() if line.strip()]
        return f"{where} does not answer: {said[-1] if said else f'exit {result.exit_code}'}"
    return None


def _relative_path(url: str) -> bool:
    """A remote URL that is a relative local path (not URL, scp-like, absolute or ~)."""
    first = url.partition("/")[0]
    return "://" not in url and ":" not in first and not url.startswith(("/", "~"))


def _tests(d: Doctor) -> Check:
    from opus.errors import NotReady
    from opus.pipeline.readiness import check_ready

    targets = _test_targets(d)
    if not targets:
        return Check("tests", "warn", "no repository to test yet (see `repo`)")
    problems: list[str] = []
    warnings: list[str] = []
    found: list[str] = []
    for who, repo, base, command in targets:
        try:
            resolved = check_ready(repo, base, command).test_command
        except NotReady as exc:
            (warnings if who == "default repo" else problems).append(f"{who}: {exc}")
            continue
        missing = _missing_program(resolved, repo)
        if missing:
            problems.append(f"{who}: test command `{resolved}`: {missing}")
        else:
            found.append(f"{who}: `{resolved}`")
    if problems:
        return Check("tests", "fail", "; ".join(problems + warnings))
    if warnings:
        return Check("tests", "warn", "; ".join(warnings + found))
    return Check("tests", "ok", "; ".join(found))


def _test_targets(d: Doctor) -> list[tuple[str, Path, str | None, str | None]]:
    """(who, repo, base, FR test command) for the default repo and each planned FR."""
    targets: list[tuple[str, Path, str | None, str | None]] = []
    default = d.settings.default_repo
    if default is not None and is_repo(default):
        targets.append(("default repo", default, None, None))
    for fr in d.planned:
        if fr.repo is not None and is_repo(fr.repo):
            targets.append((fr.id, fr.repo, fr.base, fr.test_command))
    return targets


def _missing_program(command: str, repo: Path) -> str | None:
    """Why the command's program cannot be found, or None when it can."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"cannot be parsed ({exc})"
    words = [w for w in words if not (("=" in w) and w.split("=", 1)[0].isidentifier())]
    if not words or words[0] in SHELL_WORDS:
        return None
    program = words[0]
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else repo / program
        return None if path.exists() else f"{program} does not exist"
    if shutil.which(program) is None:
        return f"`{program}` is not on PATH; install it or change the test command"
    return None


def _names(repos: Iterable[Path]) -> str:
    return ", ".join(str(repo) for repo in repos)


# --------------------------------------------------------------------------- the machinery


def _sandbox(d: Doctor) -> Check:
    from opus.sandbox import check_sandbox

    line = check_sandbox(d.settings.sandbox)
    # kind = "none" works but is unsafe: check_sandbox says so with a WARNING: prefix.
    if line.startswith("WARNING:"):
        return Check("sandbox", "warn", line.removeprefix("WARNING:").strip())
    return Check("sandbox", "ok", line)


def _limits(d: Doctor) -> Check:
    from opus.sandbox import limits_in_force

    complete, line = limits_in_force(d.settings.sandbox)
    return Check("limits", "ok" if complete else "warn", line)


def _engine(d: Doctor) -> Check:
    """The engine can run, and (for the engines that call Claude models) no configured
    model is one the SDK lists as deprecated: that is a warning naming the key."""
    agents = d.settings.agents
    if agents.engine not in ("anthropic", "claude-code"):
        return _command_engine(d)
    check = _anthropic_engine(d) if agents.engine == "anthropic" else _claude_code_engine(d)
    from opus.engines.deprecations import deprecated_models

    notices = [str(found) for found in deprecated_models(agents)]
    if not notices:
        return check
    level: Level = "fail" if check.level == "fail" else "warn"
    return Check("engine", level, "; ".join([check.detail, *notices]))


def _anthropic_engine(d: Doctor) -> Check:
    from opus.engines.models import check_models

    check_models(d.settings.agents)  # a model without opus's tools: ConfigError, a fail
    if d.env.get("ANTHROPIC_API_KEY") or d.env.get("ANTHROPIC_AUTH_TOKEN"):
        base = d.env.get("ANTHROPIC_BASE_URL", "the public API")
        return Check("engine", "ok", f"anthropic, key present, endpoint {base}")
    return Check("engine", "fail", "ANTHROPIC_API_KEY is not set: export it in your shell, "
                 "or put it in opus.env for the service; without a key, `opus demo` "
                 "rehearses and agents.engine = \"command\" runs your own agent "
                 "(README, \"Deliver an FR offline\")")


def _claude_code_engine(d: Doctor) -> Check:
    agents = d.settings.agents
    problem = _program_problem(agents.claude_bin, "agents.claude_bin", d.settings.base_dir)
    if problem:
        return Check("engine", "fail", problem)
    found = shutil.which(agents.claude_bin) or agents.claude_bin
    if d.settings.sandbox.kind == "none":
        return Check("engine", "warn", f"claude-code at {found}; sandbox.kind = none, so claude "
                     "and its tools run WITHOUT isolation, as you, with your ~/.claude")
    from opus.engines.claude_access import credential_names

    names = credential_names(d.env)
    if not names:
        return Check("engine", "fail", "claude-code runs claude in the sandbox, which hides "
                     "~/.claude (your `claude login`): set ANTHROPIC_API_KEY, or "
                     "CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`, in opus's environment")
    return Check("engine", "ok", f"claude-code at {found}, in the sandbox with the network "
                 f"and {' + '.join(names)}, which the commands it runs can use too")


def _command_engine(d: Doctor) -> Check:
    agents = d.settings.agents
    if not agents.command:
        return Check("engine", "fail", "agents.engine = command needs agents.command (argv)")
    problem = _program_problem(agents.command[0], "agents.command[0]", d.settings.base_dir)
    if problem:
        return Check("engine", "fail", problem)
    return Check("engine", "ok", f"command: {shlex.join(agents.command)}")


def _program_problem(program: str, key: str, base_dir: Path) -> str | None:
    """Why `program` cannot be run, or None: on PATH, or a path to an executable file."""
    if "/" not in program:
        if shutil.which(program) is None:
            return f"{key} {program!r} is not on PATH; install it or give its full path"
        return None
    path = Path(program).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        return f"{key} {program!r} does not exist; fix the path"
    if not os.access(path, os.X_OK):
        return f"{key} {program!r} is not executable; chmod +x {path}"
    return None


def _forge(d: Doctor) -> Check:
    pr = d.settings.pr
    if pr.provider == "local":
        folder = d.settings.vault.features_dir / "05_review"
        return Check("forge", "ok", f"local: PRs are notes in {folder.as_posix()}/")
    token = d.env.get(pr.token_env)
    if not token:
        return Check("forge", "fail", f"pr.provider = {pr.provider} needs a token in "
                     f"${pr.token_env} (pr.token_env)")
    repo = d.settings.default_repo or next(iter(d.repos()), None)
    if repo is None and not pr.repository:
        return Check("forge", "warn", f"{pr.provider}, token in ${pr.token_env}; not tried: "
                     "set git.default_repo or pr.repository to check it is accepted")
    from opus.forges import forge_for

    forge = forge_for(pr, repo=repo or d.settings.base_dir, remote=d.settings.git.remote,
                      vault_root=d.settings.vault_path, token=token)
    # One authenticated GET: a PR search for a branch opus never makes.
    forge.find_pr(f"{d.settings.git.branch_prefix}doctor-check")
    return Check("forge", "ok", f"{pr.provider}: the token in ${pr.token_env} is accepted")


def _notify(d: Doctor) -> Check:
    from opus.notify import check_urls

    urls = d.settings.notify.urls
    if not urls:
        return Check("notify", "warn", "notify.urls is empty: nobody hears about failures")
    problems = check_urls(urls)
    if problems:
        return Check("notify", "fail", "; ".join(problems))
    return Check("notify", "ok", f"{len(urls)} URL(s)")


def _database(d: Doctor) -> Check:
    from opus.registry import open_store
    from opus.registry.engine import describe, normalise_url

    url = normalise_url(d.settings.database_url)
    shown = describe(url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return Check("database", "warn", f"{shown} does not exist yet; `opus run` creates it")
    store = open_store(d.settings.database_url)
    try:
        count = len(store.jobs())
    finally:
        store.close()
    return Check("database", "ok", f"{shown} ({count} jobs)")


def render_checks(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    return "\n".join(f"[{marks[c.level]}] {c.name:9} {c.detail}" for c in checks)
