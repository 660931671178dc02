"""The one settings root: `opus.toml` overridden by `OPUS_<SECTION>__<KEY>` variables.

Built once at the edge (the CLI) and passed down as sub-configs; nothing deeper reads
the environment. Relative paths are resolved against the directory holding the config
file (or the working directory when there is none), so a unit file and a shell agree.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from opus.errors import ConfigError

CONFIG_FILE = "opus.toml"
DEFAULT_MODEL = "claude-sonnet-4-6"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultConfig(_Section):
    path: Path = Field(Path("vault"), description="The vault root.")
    move_notes: bool = Field(True, description="Move notes into the folder of their status.")
    features_dir: Path = Field(
        Path("10_features"), description="Where FR notes live, relative to the vault root."
    )
    id_pattern: str = Field(
        r"[A-Z][A-Z0-9]*-\d+",
        description="A regular expression an FR id matches in full (e.g. FR-12, API-7).",
    )
    settle_s: float = Field(
        2, ge=0, description="A changed note is acted on once unchanged for this long."
    )

    @model_validator(mode="after")
    def _id_pattern_compiles(self) -> VaultConfig:
        try:
            re.compile(self.id_pattern)
        except re.error as exc:
            raise ValueError(f"vault.id_pattern is not a regular expression: {exc}") from exc
        return self


class DaemonConfig(_Section):
    state_dir: Path = Field(Path(".opus"), description="Database, worktrees, logs, artifacts.")
    max_concurrent: int = Field(3, ge=1, le=64, description="Pipelines at once.")
    poll_active_s: float = Field(30, gt=0, description="Poll interval while work is running.")
    poll_idle_s: float = Field(300, gt=0, description="Poll interval when idle (upper bound).")
    lease_s: float = Field(120, gt=0, description="A claim lasts this long unless renewed.")
    heartbeat_s: float = Field(20, gt=0, description="How often a worker renews its leases.")
    breaker_failures: int = Field(3, ge=1, description="Consecutive failures that open a breaker.")
    breaker_cooldown_s: float = Field(600, gt=0, description="How long an open breaker waits.")
    stop_grace_s: float = Field(
        10, gt=0, description="A cancelled or stopping stage gets this long before SIGKILL."
    )

    @model_validator(mode="after")
    def _heartbeat_renews_in_time(self) -> DaemonConfig:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError(
                f"daemon.heartbeat_s ({self.heartbeat_s}) must be at most half of "
                f"daemon.lease_s ({self.lease_s}), or a busy worker loses its jobs"
            )
        return self


class DatabaseConfig(_Section):
    url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<state_dir>/opus.db."
    )


class PipelineConfig(_Section):
    max_iterations: int = Field(3, ge=1, le=20, description="code→test→review rounds.")
    stage_timeout_s: float = Field(1800, gt=0, description="A stage running longer is stuck.")
    stage_idle_s: float = Field(600, gt=0, description="A stage silent this long is stuck.")
    max_turns: int = Field(60, ge=1, description="Model turns per stage.")
    max_stage_tokens: int = Field(2_000_000, ge=1000, description="Tokens per stage (in+out).")
    test_timeout_s: float = Field(900, gt=0, description="Wall time for the test command.")
    output_tail_bytes: int = Field(16_000, ge=1000, description="Test output kept per run.")
    baseline: Literal["fail", "warn", "skip"] = Field(
        "fail",
        description="Run the tests on the untouched base before planning: fail (stop the "
        "job when they fail), warn (go on, e.g. for FRs that fix failing tests), skip.",
    )
    open_questions: Literal["ask", "recommend", "ignore"] = Field(
        "ask",
        description="Undecided questions in an FR body (an Open Questions section with an "
        "empty `Decision:`, `Pending:` items under Decisions): ask (the job waits for "
        "answers before planning), recommend (plan with each question's recommendation, "
        "recorded as an assumption in the plan and the PR), ignore. An FR's "
        "`open_questions:` overrides it.",
    )
    question_headings: list[str] = Field(
        default_factory=lambda: ["Open Questions", "Unresolved Questions"],
        description="Headings (any level, any case) of the sections whose questions "
        "`open_questions` looks at.",
    )
    decision_headings: list[str] = Field(
        default_factory=lambda: ["Decisions"],
        description="Headings of the sections whose `Pending:` items are undecided questions.",
    )
    approve_plan: Literal["never", "always"] | list[str] = Field(
        "never",
        description="Plans a person approves before coding (in the note PLAN-<FR>.md): "
        "never, always, or a list of priorities, e.g. [\"critical\", \"high\"]. An FR's "
        "`approve_plan: true|false` overrides it.",
    )

    @model_validator(mode="after")
    def _approve_plan_priorities(self) -> PipelineConfig:
        if isinstance(self.approve_plan, list):
            allowed = ("critical", "high", "medium", "low")
            wrong = [p for p in self.approve_plan if p not in allowed]
            if wrong:
                raise ValueError(
                    f"pipeline.approve_plan lists {', '.join(wrong)}, which are not "
                    f"priorities; use never, always, or a list of {', '.join(allowed)}"
                )
        return self


class AgentsConfig(_Section):
    engine: Literal["anthropic", "claude-code", "command"] = Field(
        "anthropic", description="Which agent engine runs the roles."
    )
    model: str = Field(DEFAULT_MODEL, description="Model for every role unless overridden.")
    planner_model: str | None = Field(None, description="Model for the planner.")
    coder_model: str | None = Field(None, description="Model for the coder.")
    reviewer_model: str | None = Field(None, description="Model for the reviewer.")
    max_tokens: int = Field(8192, ge=256, description="max_tokens of each model call.")
    max_retries: int = Field(4, ge=0, description="Retries on 429/5xx/overloaded.")
    command: list[str] = Field(
        default_factory=list,
        description="engine=command: the argv run for every role, in the worktree; "
        "{role} (planner, coder, reviewer), {prompt_file} and {output_file} are replaced "
        "(README, Engines).",
    )
    claude_bin: str = Field("claude", description="engine=claude-code: the claude CLI.")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="USD per million tokens per model: input, output, cache_read, cache_write.",
    )
    coder_can_ask: bool = Field(
        False,
        description="Offer the coder the `ask_human` tool too (the planner always has it; "
        "engine anthropic).",
    )

    def model_for(self, role: str) -> str:
        """The model a role uses: its own key, else `agents.model`."""
        specific: str | None = getattr(self, f"{role}_model", None)
        return specific or self.model


class SandboxConfig(_Section):
    kind: Literal["bwrap", "none"] = Field("bwrap", description="bwrap, or none (unsafe).")
    network: bool = Field(False, description="Network inside the sandbox.")
    command_timeout_s: float = Field(600, gt=0, description="Wall time of one agent command.")
    output_cap_bytes: int = Field(200_000, ge=1000, description="Output kept per command.")
    setup_network: bool = Field(
        True, description="Network for the worktree setup command (e.g. pip/npm install)."
    )
    max_processes: int = Field(512, ge=16, description="Processes at once inside the sandbox.")
    max_memory_mb: int = Field(4096, ge=64, description="Memory of one sandboxed command.")
    max_file_mb: int = Field(1024, ge=1, description="Largest file a sandboxed command writes.")
    max_cpu_s: int = Field(1800, ge=1, description="CPU seconds of one sandboxed command.")
    max_worktree_mb: int = Field(
        20480,
        ge=1,
        description="Total disk a job's worktree may hold; a command that takes it over is "
        "stopped and told (checked about once a second and after each command).",
    )
    pass_env: list[str] = Field(
        default_factory=list,
        description="Environment variables (names or patterns like \"DJANGO_*\") passed to "
        "sandboxed commands besides the built-in allowlist; secret-looking names never pass.",
    )


class GitConfig(_Section):
    default_repo: Path | None = Field(None, description="Target repo for FRs that name none.")
    remote: str = Field("origin", description="Where branches are pushed.")
    branch_prefix: str = Field("opus/", description="Prefix of every branch opus makes.")
    protected: list[str] = Field(
        default_factory=lambda: ["main", "master"], description="Never pushed to."
    )
    author_name: str = Field("opus", description="Author of opus's commits.")
    author_email: str = Field("opus@localhost", description="Author e-mail of opus's commits.")


class PRConfig(_Section):
    provider: Literal["local", "github", "gitea"] = Field("local", description="PR host.")
    api_url: str | None = Field(None, description="Forge API base URL; default the public one.")
    token_env: str = Field("GITHUB_TOKEN", description="Env var holding the forge token.")
    repository: str | None = Field(None, description="owner/name when the remote URL hides it.")
    poll_s: float = Field(120, gt=0, description="How often open PRs are checked.")
    ci: Literal["react", "wait", "ignore"] = Field(
        "react",
        description="Checks of an open PR's head commit: react (failing CI starts a new "
        "round, then \"needs you\"), wait (read them: failing CI is reported to you, and "
        "\"ready to merge\" waits for green), ignore (not read; approval alone is ready).",
    )
    ci_rounds: int = Field(
        2, ge=0, description="Rounds spent on failing CI per PR before \"CI still failing on "
        "PR N — needs you\" (the round cap `pipeline.max_iterations` holds too).",
    )
    optional_checks: list[str] = Field(
        default_factory=list,
        description="Checks (names or shell-style patterns, e.g. \"codecov/*\") that "
        "are never required: failing, they start no round and do not hold \"ready to "
        "merge\". The required checks are the ones the base branch's protection or "
        "rulesets name, or every check when the forge names none.",
    )
    ci_timeout_s: float = Field(
        3600, gt=0, description="Checks pending longer than this (from the first poll that "
        "saw the head pending) → one \"needs you\" notification.",
    )
    update_branch: Literal["never", "when-behind"] = Field(
        "never",
        description="A PR branch behind its moved base that merges cleanly: never (left "
        "as it is unless the forge says it cannot merge), when-behind (the base is merged "
        "in, no agent; the tests still run). A conflicting base is always merged.",
    )


class NotifyConfig(_Section):
    urls: list[str] = Field(default_factory=list, description="apprise URLs.")
    remind_after_h: float = Field(
        24,
        gt=0,
        description="One reminder when a question or a plan waits this long for a person.",
    )


class BudgetConfig(_Section):
    job_usd: float = Field(5, ge=0, description="A job over this stops.")
    daily_usd: float = Field(50, ge=0, description="Over this per day, claiming pauses.")


class DashboardConfig(_Section):
    listen: str | None = Field(
        None,
        description="host:port to serve the web board from `opus run` too (e.g. "
        "127.0.0.1:7900); unset: off. Also `opus dashboard`'s default address. A "
        "non-loopback address needs a token.",
    )
    token_env: str = Field(
        "OPUS_DASHBOARD_TOKEN",
        description="Env var holding the board's action token; unset: the token "
        "`opus dashboard --url` writes to <state_dir>/dashboard.token. Without a token the "
        "board is read-only.",
    )

    @model_validator(mode="after")
    def _listen_is_host_port(self) -> DashboardConfig:
        if self.listen:
            from opus.dashboard.listen import parse_listen

            try:
                parse_listen(self.listen)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self


class Settings(BaseSettings):
    """Every setting of opus. Built by `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="OPUS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    vault: VaultConfig = VaultConfig()
    daemon: DaemonConfig = DaemonConfig()
    database: DatabaseConfig = DatabaseConfig()
    pipeline: PipelineConfig = PipelineConfig()
    agents: AgentsConfig = AgentsConfig()
    sandbox: SandboxConfig = SandboxConfig()
    git: GitConfig = GitConfig()
    pr: PRConfig = PRConfig()
    notify: NotifyConfig = NotifyConfig()
    budget: BudgetConfig = BudgetConfig()
    dashboard: DashboardConfig = DashboardConfig()

    base_dir: Path = Field(Path("."), exclude=True, description="Where relative paths start.")
    config_path: Path | None = Field(None, exclude=True, description="The file read, if any.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def vault_path(self) -> Path:
        return self._resolve(self.vault.path)

    @property
    def state_dir(self) -> Path:
        return self._resolve(self.daemon.state_dir)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'opus.db'}"

    @property
    def default_repo(self) -> Path | None:
        repo = self.git.default_repo
        return self._resolve(repo) if repo is not None else None

    def _resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    @model_validator(mode="after")
    def _agent_command_from_the_project(self) -> Settings:
        # `./opus-agent.sh` in opus.toml means the project's file, like every other
        # relative path here, not a file in each job's worktree (where the command runs).
        command = self.agents.command
        if not command or "/" not in command[0] or Path(command[0]).is_absolute():
            return self
        program = str(self._resolve(Path(command[0])))
        agents = self.agents.model_copy(update={"command": [program, *command[1:]]})
        object.__setattr__(self, "agents", agents)  # still being built: frozen from here on
        return self


def load_settings(path: Path | None = None, *, cwd: Path | None = None) -> Settings:
    """Read `path` (or `./opus.toml` if it exists) and the environment into `Settings`.

    Raises `ConfigError` naming the key, the value and what is allowed.
    """
    cwd = (cwd or Path.cwd()).resolve()
    if path is None and (cwd / CONFIG_FILE).is_file():
        path = cwd / CONFIG_FILE
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_toml(path)
    base_dir = path.resolve().parent if path is not None else cwd
    unknown = _unknown_sections()
    if unknown is not None:
        raise ConfigError(unknown)
    try:
        return Settings(**data, base_dir=base_dir, config_path=path)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    except SettingsError as exc:  # e.g. a list-valued variable that is not JSON
        raise ConfigError(_describe_env(exc)) from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist; run `opus init` or fix --config"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _describe_env(exc: SettingsError) -> str:
    found = re.search(r'field "(\w+)"', str(exc))
    section = found.group(1) if found else ""
    prefix = f"OPUS_{section.upper()}__"
    names = sorted(name for name in os.environ if name.upper().startswith(prefix))
    return (
        f"environment variable {', '.join(names) or prefix + '*'} cannot be read ({exc}): "
        f"list and table values must be JSON, e.g. OPUS_NOTIFY__URLS='[\"json://host/\"]'"
    )


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per error, blaming the variable or the file the value came from."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        key = ".".join(str(part) for part in loc)
        variable = _variable_for(loc)
        unknown = err["type"] == "extra_forbidden"
        where = f"config key `{key}`" + (f" in {path}" if path else "")
        if variable is not None:
            where = f"environment variable {variable} (config key `{key}`)"
        elif not unknown:
            where += " (or $OPUS_" + "__".join(str(part).upper() for part in loc) + ")"
        if unknown:
            lines.append(f"{where} is unknown; {_known_keys(loc)}")
        else:
            lines.append(f"{where}: {err['msg']}; got {err.get('input')!r}")
    return "\n".join(lines)


def _variable_for(loc: tuple[int | str, ...]) -> str | None:
    """The `OPUS_…` variable that set the value at `loc`, if one did (it beats the file).

    A table or list set as JSON in one variable covers every key below it, so the
    longest prefix of `loc` that names a set variable is the one to blame.
    """
    present = {name.upper(): name for name in os.environ if name.upper().startswith("OPUS_")}
    for end in range(len(loc), 0, -1):
        name = "OPUS_" + "__".join(str(part).upper() for part in loc[:end])
        if name in present:
            return present[name]
    return None


def settings_variables(environ: Mapping[str, str]) -> list[str]:
    """The names in `environ` that pydantic-settings reads as config: `OPUS_<SECTION>` and
    `OPUS_<SECTION>__<KEY>`. Other `OPUS_…` names (a token a user keeps as
    `OPUS_GITHUB_TOKEN`, say) are not config and are left alone."""
    sections = set(Settings.model_fields)
    return [
        name for name in environ
        if name.upper().startswith("OPUS_")
        and name[5:].split("__", 1)[0].lower() in sections
    ]


def _unknown_sections() -> str | None:
    """`OPUS_<SECTION>__<KEY>` variables whose section does not exist (a typo, usually).

    pydantic-settings ignores such variables; a setting that silently does nothing is
    worse than an error.
    """
    sections = {name for name, f in Settings.model_fields.items() if not f.exclude}
    wrong = sorted(
        name for name in os.environ
        if name.upper().startswith("OPUS_") and "__" in name
        and name[5:].split("__", 1)[0].lower() not in sections
    )
    if not wrong:
        return None
    return (f"environment variable {', '.join(wrong)} names no config section; "
            f"valid sections: {', '.join(sorted(sections))} (OPUS_<SECTION>__<KEY>)")


def _known_keys(loc: tuple[int | str, ...]) -> str:
    """The keys allowed where an unknown one was found (a typo is the usual cause)."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "see `opus init` for every key"
        model = annotation
    names = [name for name, field in model.model_fields.items() if not field.exclude]
    where = f"[{'.'.join(str(p) for p in loc[:-1])}]" if len(loc) > 1 else "the top level"
    return f"valid keys in {where}: {', '.join(names)}"


def compact_schema() -> dict[str, dict[str, dict[str, Any]]]:
    """Every section's keys with their JSON-schema types, bounds and defaults (no titles or
    descriptions): what `opus.lightconfig.SCHEMA` must equal."""
    schema = Settings.model_json_schema()
    defs = schema["$defs"]

    def compact(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return compact(defs[node["$ref"].split("/")[-1]])
            return {key: compact(value) for key, value in node.items()
                    if key not in ("title", "description", "format")}
        if isinstance(node, list):
            return [compact(value) for value in node]
        return node

    return {
        name: compact(prop)["properties"]
        for name, prop in schema["properties"].items()
        if not Settings.model_fields[name].exclude
    }


def section_validators() -> dict[str, list[str]]:
    """Each section's own checks beyond its JSON schema (model and field validators), by
    name: `opus.lightconfig.VALIDATED` must equal it."""
    found: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if field.exclude or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        decorators = model.__pydantic_decorators__
        checks = sorted([*decorators.model_validators, *decorators.field_validators])
        if checks:
            found[name] = checks
    return found
