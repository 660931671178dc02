"""`opus`: a thin layer over library calls. Each command opens, calls, renders.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error (the message names the key
or the variable), or an FR or job that does not exist or is in the wrong state for the
command. A reader that closes the pipe early (`opus status | head -1`) is not an error.

Every command imports what it uses inside its handler, so `opus status` never loads the
agent engines, the forge clients or apprise.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opus import __version__
from opus.errors import ConfigError, NotFound, OpusError, UsageError

if TYPE_CHECKING:
    from opus.actions import Operator
    from opus.board.lanes import Board
    from opus.board.top import Actions
    from opus.config import Settings
    from opus.domain import Job
    from opus.lightconfig import LightSettings
    from opus.registry import Registry
    from opus.seams import JobReader
    from opus.status import View

Handler = Callable[[argparse.Namespace], int]

EPILOG = """\
Start with `opus demo` (a one-minute rehearsal), then `opus init DIR`, set
`status: planned` on a note, and `opus run`. Configuration: opus.toml in the
working directory (or --config), overridden by OPUS_<SECTION>__<KEY> variables.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_left()
    except (ConfigError, UsageError, NotFound) as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 2
    except OpusError as exc:
        print(f"opus: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_left() -> int:
    """The reader of our stdout went away (`| head`): stop quietly, as other CLIs do.

    stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opus",
        description="Feature requests in a notes vault become reviewed pull requests.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"opus {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="config file (default ./opus.toml)"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, help_text, setup, handler in _COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        setup(command)
        command.set_defaults(handler=handler)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from opus.config import load_settings

    return load_settings(args.config)


def _store(args: argparse.Namespace, settings: Settings | None = None) -> Registry:
    """The registry of an existing project; never creates one by accident."""
    from opus.registry import open_store

    return open_store(_project(args, settings).database_url)


def _reader(args: argparse.Namespace, settings: Settings | None = None) -> JobReader:
    """A read-only view of the project's registry, without SQLAlchemy's import cost."""
    from opus.registry.reader import open_reader

    return open_reader(_project(args, settings).database_url)


def _project(args: argparse.Namespace, settings: Settings | None = None) -> Settings:
    """The settings of an existing project (opus.toml or state found), else UsageError."""
    from opus.lightconfig import LightSettings

    settings = settings or _settings(args)
    _check_project(LightSettings.of(settings))
    return settings


def _check_project(settings: LightSettings) -> None:
    """UsageError when neither opus.toml nor the state dir (nor a database URL) exists."""
    fresh = settings.config_path is None and not settings.database_url_set
    if fresh and not settings.state_dir.exists():
        raise UsageError(
            f"no opus.toml in {settings.base_dir} and no state in {settings.state_dir}: run "
            "this in your project directory (where `opus init` wrote opus.toml) or pass --config"
        )


# --------------------------------------------------------------------------- commands


def _init(args: argparse.Namespace) -> int:
    from opus.vault import init_vault

    directory = Path(args.dir)
    created = init_vault(directory)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"{directory} is already set up; nothing changed")
    print(f"\nnext: cd {directory} && edit vault/10_features/02_drafts/*.md, set "
          "`status: planned`, then `opus doctor` and `opus run`")
    return 0


def _run(args: argparse.Namespace) -> int:
    # The collector is paused while the daemon's modules are imported, as in the fork
    # server's preload (opus.daemon.preload_begin): ~15 % of their import time.
    gc.disable()
    try:
        from opus.daemon.prestart import prestart

        # The fork server's imports (the engine's SDK) start before the daemon's own.
        environ = prestart(args.config, role=args.role, once=args.once)
        from opus.daemon.launch import run_daemon
    finally:
        gc.freeze()
        gc.enable()

    return run_daemon(args.config, role=args.role, once=args.once, verbose=args.verbose,
                      environ=environ)


def _status(args: argparse.Namespace) -> int:
    from opus.clock import SystemClock
    from opus.lightconfig import LightSettings, light_settings
    from opus.registry.reader import open_reader
    from opus.status import RECENT_ENDED, View, render_status, status_report

    # Read-only: the settings without pydantic when they are plain (designs/lean.md).
    settings = light_settings(args.config) or LightSettings.of(_settings(args))
    _check_project(settings)
    reader = open_reader(settings.database_url)
    report = status_report(reader, settings, SystemClock().now(),
                           ended_shown=None if args.all else RECENT_ENDED)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        view = View(vault_root=settings.vault_path, base_dir=settings.base_dir, wide=args.wide)
        print(render_status(report, view))
    return 0


def _top(args: argparse.Namespace) -> int:
    if args.url:
        return _top_remote(args)
    from opus.board.lanes import board_snapshot, latest
    from opus.clock import SystemClock
    from opus.status import View

    settings = _project(args)
    reader = _reader(args, settings)
    view = View(vault_root=settings.vault_path, base_dir=settings.base_dir)

    def source(ended: int) -> Board:
        return board_snapshot(reader, settings, SystemClock().now(), windows=latest(ended))

    return _board(args, source, lambda: _operator(args), view, _edit)


def _edit(text: str) -> str:
    """`a` on `opus top`: `$EDITOR` (or `$VISUAL`), looked up when the key is pressed."""
    from opus.conversation.answering import run_editor

    return run_editor(os.environ)(text)


def _top_remote(args: argparse.Namespace) -> int:
    """`opus top --url`: a running dashboard's board, through its API and token."""
    from opus.board.remote import RemoteBoard
    from opus.status import View

    remote = RemoteBoard(args.url, os.environ.get(_settings(args).dashboard.token_env))
    return _board(args, remote.board, lambda: remote, View(), _edit)


def _board(
    args: argparse.Namespace, source: Callable[[int], Board], actions: Callable[[], Actions],
    view: View, edit: Callable[[str], str] | None,
) -> int:
    """The live board on a terminal, else (or with --once) the board printed once."""
    if args.once or not (sys.stdout.isatty() and sys.stdin.isatty()):
        from opus.board.lanes import ENDED_SHOWN
        from opus.board.text import render_board

        print(render_board(source(ENDED_SHOWN), view))
        return 0
    from opus.board.top import TopApp

    acting = actions()
    try:
        app = TopApp(source, acting, view=view, editor=edit)
        app.run(mouse=False)  # keys only: a mouse-less SSH terminal loses nothing
        return app.return_code or 0
    finally:
        close = getattr(acting, "close", None)
        if close is not None:
            close()


def _scan(args: argparse.Namespace) -> int:
    from opus.vault.dryrun import render_scan, scan_plan

    lines = scan_plan(_settings(args))
    if args.json:
        print(json.dumps([line.as_dict() for line in lines], indent=2, ensure_ascii=False))
    else:
        print(render_scan(lines))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from opus.control import find_job
    from opus.daemon.logs import follow, log_path, read_log

    settings = _settings(args)
    store = _store(args, settings)
    job = find_job(store, args.fr)
    path = log_path(settings.state_dir, job.id)
    if not args.follow:
        print(read_log(path), end="")
        return 0
    for line in follow(path, stop=lambda: not _active(store.get(job.id)), poll_s=0.5):
        print(line, flush=True)  # follow() yields lines without their newline
    return 0


def _active(job: Job) -> bool:
    """A job whose log may still grow: queued or running (not waiting on a human)."""
    from opus.domain import JobState

    return job.state in (JobState.QUEUED, JobState.RUNNING)


def _operator(args: argparse.Namespace) -> Operator:
    """retry/cancel/pause/resume: change the registry, then wake a running daemon."""
    from opus.actions import Operator

    return Operator(_project(args))


def _retry(args: argparse.Namespace) -> int:
    print(_operator(args).retry(args.fr))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    print(_operator(args).cancel(args.fr))
    return 0


def _answer(args: argparse.Namespace) -> int:
    from opus.conversation.answering import run_editor

    edit = (lambda _text: "") if args.text else run_editor(os.environ)
    print(_operator(args).answer(args.fr, args.text, edit))
    return 0


def _args_answer(p: argparse.ArgumentParser) -> None:
    p.add_argument("fr", help="the FR id (or job number) whose questions to answer")
    p.add_argument(
        "--text", action="append", metavar="TEXT",
        help="an answer, once per question in order (for a plan: approve, reject or "
        "'changes: <comments>'); without it $EDITOR opens the questions",
    )


def _pause(args: argparse.Namespace) -> int:
    print(_operator(args).set_paused(True))
    return 0


def _resume(args: argparse.Namespace) -> int:
    print(_operator(args).set_paused(False))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from opus.doctor import render_checks, run_checks

    checks = run_checks(_settings(args), os.environ)
    print(render_checks(checks))
    return 1 if any(check.level == "fail" for check in checks) else 0


def _metrics(args: argparse.Namespace) -> int:
    from opus.clock import SystemClock
    from opus.metrics import compute_metrics, render_metrics

    settings = _settings(args)
    store = _store(args, settings)
    jobs = store.jobs()
    runs = [run for job in jobs for run in store.stage_runs(job.id)]
    metrics = compute_metrics(jobs, runs, now=SystemClock().now(),
                              max_concurrent=settings.daemon.max_concurrent)
    print(json.dumps(metrics.to_dict(), indent=2) if args.json else render_metrics(metrics))
    return 0


def _service(args: argparse.Namespace) -> int:
    from opus.service import install_unit, service_user
    from opus.service_paths import writable_paths

    settings = _settings(args)
    writable = writable_paths(settings)
    env_file = settings.base_dir / "opus.env"
    for dashboard in (False, True) if args.dashboard else (False,):
        _, instructions = install_unit(
            args.user,
            home=Path.home(),
            working_dir=settings.base_dir,
            read_write_paths=writable,
            environment_file=env_file,
            run_as=None if args.user else service_user(os.environ),
            dashboard=dashboard,
            name=args.name,
            force=args.force,
        )
        print(f"{instructions}\n")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    import signal
    import threading

    from opus.dashboard.server import listen_of, login_url, serve

    settings = _project(args)
    listen = listen_of(settings, args.listen)
    if args.url:
        print(login_url(settings, os.environ, listen))
        return 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    serve(settings, os.environ, listen, stop)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from opus.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None, assume_yes=args.yes, environ=os.environ)


# --------------------------------------------------------------------------- arguments


def _no_args(_parser: argparse.ArgumentParser) -> None:
    return None


def _args_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=".", help="project directory (default .)")


def _args_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true",
                   help="work every eligible FR until it awaits review or ends, then exit")
    p.add_argument("--role", choices=["all", "intake", "worker"], default="all",
                   help="intake: watch the vault; worker: only run jobs; all (default): both")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _args_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _args_fr(p: argparse.ArgumentParser) -> None:
    p.add_argument("fr", help="the FR id (e.g. FR-061) or a job number")


def _args_status(p: argparse.ArgumentParser) -> None:
    _args_json(p)
    p.add_argument("--wide", action="store_true",
                   help="full paths and lines (default: vault-relative, 100 columns)")
    p.add_argument("--all", action="store_true",
                   help="every ended job too (default: the latest 20 done, failed or "
                   "cancelled, and every job that has not ended)")


def _args_top(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true",
                   help="print the board once and exit (what it does when stdout is not a "
                   "terminal)")
    p.add_argument("--url", metavar="URL",
                   help="the board of a running `opus dashboard` (e.g. http://host:7900), "
                   "read through its API; actions need its token in dashboard.token_env")


def _args_logs(p: argparse.ArgumentParser) -> None:
    _args_fr(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def _args_service(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["install"], help="install: write the systemd unit")
    p.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user)")
    p.add_argument("--dashboard", action="store_true",
                   help="also opus-dashboard.service, running `opus dashboard`")
    p.add_argument("--name", metavar="NAME",
                   help="install as NAME.service (and NAME-dashboard.service): a second "
                   "project's unit beside the first (default: opus)")
    p.add_argument("--force", action="store_true",
                   help="replace a unit of that name that runs another project")


def _args_dashboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="where to serve (default dashboard.listen, else 127.0.0.1:7900)")
    p.add_argument("--url", action="store_true",
                   help="print the login URL (making a token in the state dir if none is set)")


def _args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", help="where to build the throwaway vault and repo (default: a tmp dir)")
    p.add_argument("--yes", action="store_true", help="with an API key: spend without asking")


_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler]] = [
    ("init", "create a vault skeleton, opus.toml and an example FR", _args_init, _init),
    ("run", "run the daemon (or --once)", _args_run, _run),
    ("status", "daemons, pause, breakers, spend; jobs and why they wait; unusable notes",
     _args_status, _status),
    ("top", "the live board: jobs in lanes; r retry, c cancel, p pause, a answer, m more, "
            "q quit",
     _args_top, _top),
    ("scan", "what opus would do with every note (dry run: writes nothing)", _args_json, _scan),
    ("logs", "a job's log", _args_logs, _logs),
    ("retry", "re-queue a failed or cancelled job", _args_fr, _retry),
    ("cancel", "stop a job and clean its worktree", _args_fr, _cancel),
    ("answer", "answer a waiting job's questions or decide its plan", _args_answer, _answer),
    ("pause", "stop claiming new work (global kill switch)", _no_args, _pause),
    ("resume", "claim new work again", _no_args, _resume),
    ("doctor", "check config, vault, git, sandbox, keys, notify URLs, database", _no_args, _doctor),
    ("metrics", "jobs/day, success rate, durations, utilisation, cost", _args_json, _metrics),
    ("service", "install the systemd unit", _args_service, _service),
    ("dashboard", "the web board: lanes, jobs, metrics, actions (--url: login URL)",
     _args_dashboard, _dashboard),
    ("demo", "take one FR through every stage in a throwaway vault", _args_demo, _demo),
]


if __name__ == "__main__":
    raise SystemExit(main())
