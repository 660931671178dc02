"""Figures for issue 12 (a lean daemon); run `python3 bench/lean.py --quick`.

For each vault size (`--notes 1000,10000,50000`) it builds a workspace shaped like a
real one (a git repo with a bare remote, a vault of done FRs, drafts, ideas and other
notes) and measures, with real `opus` subprocesses (`--src` picks the checkout):

- pickup: a planned note saved (atomic rename) → its job in the registry, with the
  daemon idle in its long poll sleep (only the watcher can make this short);
- daemon start → READY (NOTIFY_SOCKET), idle CPU (% of a core, from /proc/PID/stat,
  children included, with the unit's 120 s watchdog) and idle RSS (VmRSS);
- SIGKILL mid-stage (the coder waiting on the model) → restart → the next model call
  reaching the Messages-API stand-in (tests/standins/messages_api.py), and beside it the
  floor: a bare script that imports the SDK and makes one call, start → call; and a
  job process (not the daemon) SIGKILLed while it waits on the model → the next call;
- `opus status` wall time (the registry holding the pickup jobs);
- `opus run --once` on one FR, total wall time ÷ the same raw git + test work done by
  plain subprocesses (worktree, write two files, run the test twice, commit, push), and
  total - raw, the seconds opus adds; once per `--test-s` (the FR's test takes its 20 ms
  check plus that many seconds, so 3 stands for a project whose tests take seconds);
  with `--warm-state`, every run reuses one state dir that an untimed `run --once`
  without an FR warmed first: a start of a daemon that ran before (its parse cache there).

With `--timeline`, every opus process marks its milestones in a trace file (`OPUS_TRACE`,
`opus.trace`) and the bench prints, per milestone, its median seconds after the SIGKILL
(restart) or the start (`run --once`): what runs one after the other, and what beside.

Each figure is printed as min / median / max over `--repeat` runs, then the ratio
pickup(largest) ÷ pickup(smallest). Nothing is asserted: tests prove behaviour, this
measures it. The bench process itself never imports opus, so one script measures any
checkout (`--src /path/to/src`).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e_pipeline import conversations as talk  # noqa: E402
from tests.standins.messages_api import API_KEY, MessagesAPI, reply, text  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WATCHDOG_USEC = "120000000"  # systemd/opus.service: WatchdogSec=120
FR_ID = "FR-7"
FR_BODY = "# Summary\n\nAdd `sub(a, b)` to calc.py, returning a - b, with a test.\n"
CONFIG = """\
[vault]
path = "vault"
[daemon]
state_dir = "{state}"
[agents]
engine = "anthropic"
max_retries = 0
[sandbox]
kind = "{sandbox}"
[git]
default_repo = "{repo}"
[pr]
provider = "local"
"""
WORDS = ("cache", "login", "export", "queue", "retry", "search", "upload", "billing",
         "report", "webhook", "theme", "locale", "audit", "quota", "backup", "sync")


# --------------------------------------------------------------------------- statistics


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.values:
            return f"{self.name:<52} (no samples)"
        v = self.values
        return (f"{self.name:<52} min {min(v):8.3f}  median {statistics.median(v):8.3f}  "
                f"max {max(v):8.3f} {self.unit}  (n={len(v)})")

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


# --------------------------------------------------------------------------- workspace


def _git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@opus.invalid"]
    done = subprocess.run(["git", *identity, *args], cwd=cwd, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(root: Path, name: str) -> Path:
    """A repo with calc.py on `main`, pushed to a bare `NAME.git` as origin."""
    repo = root / name
    repo.mkdir(parents=True)
    for path, body in talk.REPO_FILES.items():
        (repo / path).write_text(body)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    remote = root / f"{name}.git"
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(repo, "remote", "add", "origin", str(remote))
    _git(repo, "push", "-q", "origin", "main")
    return repo


def make_vault(vault: Path, notes: int, seed: int = 12) -> None:
    """`notes` notes as a long-lived vault has them: mostly done FRs, then ideas without
    frontmatter ids, drafts, a few failed/cancelled FRs and meeting notes."""
    rng = random.Random(seed)
    features = vault / "10_features"
    for folder in ("01_ideas", "02_drafts", "03_planned", "04_in_progress", "05_review",
                   "06_done", "07_failed", "meetings"):
        (features / folder).mkdir(parents=True, exist_ok=True)
    for n in range(notes):
        kind = rng.random()
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        body = "\n\n".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
            for _ in range(rng.randint(1, 6))
        )
        if kind < 0.6:
            deps = f"depends_on: [OLD-{rng.randrange(max(n, 1))}]\n" if n and kind < 0.1 else ""
            text_ = (f"---\nid: OLD-{n}\ntitle: {words.capitalize()}\nstatus: done\n"
                     f"priority: {rng.choice(['low', 'medium', 'high'])}\n{deps}"
                     f"job: {n + 1}\nbranch: opus/old-{n}\n---\n# Summary\n\n{body}\n")
            path = features / "06_done" / f"OLD-{n}.md"
        elif kind < 0.75:
            text_ = f"# {words}\n\n{body}\n"
            path = features / "01_ideas" / f"idea {n}.md"
        elif kind < 0.9:
            text_ = (f"---\nid: DRAFT-{n}\ntitle: {words.capitalize()}\nstatus: draft\n---\n"
                     f"# Summary\n\n{body}\n")
            path = features / "02_drafts" / f"DRAFT-{n}.md"
        elif kind < 0.95:
            text_ = (f"---\nid: GONE-{n}\ntitle: {words.capitalize()}\nstatus: cancelled\n"
                     f"---\n{body}\n")
            path = features / "07_failed" / f"GONE-{n}.md"
        else:
            text_ = f"---\ntags: [meeting]\nattendees: 4\n---\n# Meeting {n}\n\n{body}\n"
            path = features / "meetings" / f"meeting {n}.md"
        path.write_text(text_)


def fr_note(fr_id: str, title: str = "Add subtraction") -> str:
    return (f"---\nid: {fr_id}\ntitle: {title}\nstatus: planned\n"
            f"test_command: {talk.TEST_COMMAND}\n---\n{FR_BODY}")


def save(path: Path, body: str) -> None:
    """Save as editors do: write a temporary file, then rename it over the note."""
    temp = path.parent / f".{path.name}.tmp"
    temp.write_text(body)
    temp.rename(path)


def sandbox_kind() -> str:
    if shutil.which("bwrap") is None:
        return "none"
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "true"],
                           check=False, capture_output=True)
    return "bwrap" if probe.returncode == 0 else "none"


@dataclass
class Workspace:
    root: Path
    src: Path
    sandbox: str
    settings_env: dict[str, str] = field(default_factory=dict)

    def config(self, state: str = ".opus", repo: str = "repo") -> Path:
        path = self.root / f"opus-{state.strip('.')}.toml"
        path.write_text(CONFIG.format(state=state, sandbox=self.sandbox, repo=repo))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPUS_", "NOTIFY_", "WATCHDOG_", "ANTHROPIC_"))}
        env.update(PYTHONPATH=str(self.src), ANTHROPIC_API_KEY=API_KEY, **self.settings_env,
                   **extra)
        return env

    def opus(self, config: Path, *args: str) -> float:
        """Run one opus command to completion; its wall time in seconds."""
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "opus", "--config", str(config), *args],
                              cwd=self.root, env=self.env(), capture_output=True, text=True,
                              timeout=600, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"opus {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr[-2000:]}")
        return elapsed


# --------------------------------------------------------------------------- a daemon


class NotifySocket:
    """Stands in for systemd's NOTIFY_SOCKET; remembers when READY=1 arrived."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify"
        self.ready_at: list[float] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in data.splitlines():
                self.ready_at.append(time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


class Daemon:
    """`opus run` as systemd starts it, in its own process group."""

    def __init__(self, ws: Workspace, config: Path, notify: NotifySocket,
                 api: MessagesAPI | None = None) -> None:
        self.notify = notify
        seen = len(notify.ready_at)
        extra = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": WATCHDOG_USEC}
        if api is not None:
            extra["ANTHROPIC_BASE_URL"] = api.base_url
        self.log = (ws.root / "daemon.log").open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opus", "--config", str(config), "run"],
            cwd=ws.root, env=ws.env(**extra), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ready_s = wait(lambda: len(notify.ready_at) > seen, 600, self.proc) and (
            notify.ready_at[seen] - self.started)

    def cpu_s(self) -> float:
        """CPU seconds used by the daemon and its reaped children."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        return (utime + stime + cutime + cstime) / CLK_TCK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def wait_quiet(self, still_s: float = 1.0, timeout_s: float = 600) -> None:
        """Until the daemon used no CPU for `still_s` (its first scan and writes done)."""
        deadline = time.monotonic() + timeout_s
        last = self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(still_s)
            now = self.cpu_s()
            if now == last:
                return
            last = now
        raise TimeoutError("the daemon never went quiet")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


def wait(check: Callable[[], object], timeout_s: float,
         proc: subprocess.Popen[bytes] | None = None, poll_s: float = 0.005) -> float:
    """Seconds until `check()` is true (bounded; fails if `proc` exits first)."""
    start = time.monotonic()
    while not check():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}; see daemon.log")
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"nothing happened within {timeout_s}s")
        time.sleep(poll_s)
    return time.monotonic() - start


def job_exists(database: Path, fr_id: str) -> Callable[[], bool]:
    def check() -> bool:
        if not database.exists():
            return False
        with contextlib_closing(sqlite3.connect(database, timeout=30)) as conn:
            try:
                row = conn.execute("SELECT 1 FROM jobs WHERE fr_id = ?", (fr_id,)).fetchone()
            except sqlite3.OperationalError:
                return False
            return row is not None

    return check


@contextmanager
def contextlib_closing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------- phases


def idle_phase(ws: Workspace, notes: int, args: argparse.Namespace,
               figures: dict[str, Figure]) -> None:
    """Start (paused, so picked-up jobs stay queued), go idle, measure; then pickups
    and `opus status`."""
    config = ws.config()
    ws.opus(config, "pause")
    planned = ws.root / "vault" / "10_features" / "03_planned"
    with notify_socket() as notify:
        daemon = Daemon(ws, config, notify)
        try:
            figures["ready"].values.append(daemon.ready_s)
            daemon.wait_quiet()
            window = args.idle_s / args.repeat
            for _ in range(args.repeat):
                before, start = daemon.cpu_s(), time.monotonic()
                time.sleep(window)
                used = daemon.cpu_s() - before
                figures["idle_cpu"].values.append(100 * used / (time.monotonic() - start))
                figures["idle_rss"].values.append(daemon.rss_mb())
            database = ws.root / ".opus" / "opus.db"
            for n in range(args.repeat):
                fr_id = f"BENCH-{n}"
                daemon.wait_quiet(0.5)
                time.sleep(0.5)
                start = time.monotonic()
                save(planned / f"{fr_id}.md", fr_note(fr_id, f"Bench note {n}"))
                wait(job_exists(database, fr_id), 120, daemon.proc)
                figures["pickup"].values.append(time.monotonic() - start)
            daemon.wait_quiet()
            figures["busy_rss"].values.append(daemon.rss_mb())
        finally:
            daemon.stop()
    for _ in range(args.repeat):
        figures["status"].values.append(ws.opus(config, "status"))
    for note in (ws.root / "vault").rglob("BENCH-*.md"):
        note.unlink()


@contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    directory = Path(tempfile.mkdtemp(prefix="opus-sd-", dir="/tmp"))
    sock = NotifySocket(directory)
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def quiet(api: MessagesAPI) -> MessagesAPI:
    """The stand-in, minus the tracebacks of replies to a client that was killed."""
    api._server.handle_error = lambda *_args: None  # type: ignore[method-assign]
    return api


class Blocker:
    """Scripted replies that hold the model call open until released, noting arrivals
    (monotonic, and wall-clock for the trace's timeline)."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self.arrived_wall: list[float] = []
        self.release = threading.Event()

    def reached(self, calls: int) -> bool:
        return len(self.arrived) >= calls

    def reply(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def play(_body: dict[str, Any]) -> dict[str, Any]:
            self.arrived_wall.append(time.time())
            self.arrived.append(time.monotonic())
            self.release.wait(timeout=120)
            return reply(text("too late: the daemon is gone"))

        return play


def restart_phase(ws: Workspace, args: argparse.Namespace, figures: dict[str, Figure],
                  timeline: dict[str, list[float]]) -> None:
    """Kill the daemon while the coder waits on the model; time restart → next call.

    Every opus process marks its milestones in a trace file (`OPUS_TRACE`); `timeline`
    gets, per milestone, its seconds after each SIGKILL."""
    make_repo(ws.root, "repo-restart")
    config = ws.config(".opus-restart", "repo-restart")
    trace = ws.root / "restart.trace"
    ws.settings_env["OPUS_TRACE"] = str(trace)
    save(ws.root / "vault" / "10_features" / "03_planned" / f"{FR_ID}.md", fr_note(FR_ID))
    blocker = Blocker()
    # Each job kill counts as an infrastructure error: the job fails at the fifth, and
    # the repo's breaker would open at the third.
    job_kills = min(args.repeat, 4)
    ws.settings_env["OPUS_DAEMON__BREAKER_FAILURES"] = "100"
    with quiet(MessagesAPI(talk.planner())) as api, notify_socket() as notify:
        api.add(*(blocker.reply() for _ in range(args.repeat + job_kills + 1)))
        daemon = Daemon(ws, config, notify, api)
        try:
            wait(lambda: len(blocker.arrived) == 1, 300, daemon.proc)
            for n in range(args.repeat):
                daemon.stop(signal.SIGKILL)
                killed, killed_wall = time.monotonic(), time.time()
                blocker.release.set()
                blocker.release = threading.Event()
                daemon = Daemon(ws, config, notify, api)
                wait(functools.partial(blocker.reached, n + 2), 300, daemon.proc)
                figures["restart"].values.append(blocker.arrived[-1] - killed)
                figures["restart_ready"].values.append(daemon.ready_s)
                marks = first_marks(trace, killed_wall)
                marks["(model call reaches the stand-in)"] = blocker.arrived_wall[-1]
                for label, at in marks.items():
                    timeline.setdefault(label, []).append(at - killed_wall)
            for _ in range(job_kills):
                pid = job_pid(trace)
                if pid is None:  # a checkout from before job processes and the trace
                    break
                calls = len(blocker.arrived)
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                blocker.release.set()
                blocker.release = threading.Event()
                wait(functools.partial(blocker.reached, calls + 1), 300, daemon.proc)
                figures["job_kill"].values.append(blocker.arrived[-1] - killed)
        finally:
            daemon.stop(signal.SIGKILL)
            blocker.release.set()
            ws.settings_env.pop("OPUS_TRACE", None)
            ws.settings_env.pop("OPUS_DAEMON__BREAKER_FAILURES", None)
    for note in (ws.root / "vault").rglob(f"{FR_ID}.md"):
        note.unlink()


SDK_SCRIPT = """\
import anthropic
client = anthropic.Anthropic(base_url={url!r}, api_key={key!r}, max_retries=0)
client.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                       messages=[{{"role": "user", "content": "hello"}}])
"""


def sdk_floor(args: argparse.Namespace, figures: dict[str, Figure]) -> None:
    """The floor under restart → call: a bare script that imports the SDK and makes one
    call, from its interpreter's start to the call reaching the same stand-in."""
    arrived: list[float] = []

    def play(_body: dict[str, Any]) -> dict[str, Any]:
        arrived.append(time.monotonic())
        return reply(text("hello"))

    with quiet(MessagesAPI(require_tools=False)) as api:
        api.add(*(play for _ in range(args.repeat)))
        script = SDK_SCRIPT.format(url=api.base_url, key=API_KEY)
        for n in range(args.repeat):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
            figures["sdk_floor"].values.append(arrived[n] - started)


def job_pid(trace: Path) -> int | None:
    """The newest job process (its `job serve` mark), if any."""
    if not trace.exists():
        return None
    serving = [line.split(" ", 2) for line in trace.read_text().splitlines()
               if line.endswith(" job serve")]
    return int(serving[-1][1]) if serving else None


def first_marks(trace: Path, since: float) -> dict[str, float]:
    """Each milestone's first time at or after `since` (unix time), from a trace file
    of `<time> <pid> <label>` lines."""
    marks: dict[str, float] = {}
    if not trace.exists():  # a checkout from before `opus.trace`
        return marks
    for line in trace.read_text().splitlines():
        at_text, _pid, label = line.split(" ", 2)
        at = float(at_text)
        if at >= since and label not in marks:
            marks[label] = at
    return marks


def print_timeline(title: str, timeline: dict[str, list[float]]) -> None:
    """Milestones in the order they are reached, as the median seconds after the start."""
    if not timeline:
        return
    print(f"{title} (median s, min-max, over {max(map(len, timeline.values()))} runs):")
    for label, values in sorted(timeline.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"  {statistics.median(values):6.3f}  ({min(values):.3f}-{max(values):.3f})  "
              f"{label}")


def test_file(test_s: float) -> str:
    """The FR's test: the 20 ms check of `sub`, plus `test_s` seconds of waiting, which
    stands in for a project whose tests take that long."""
    if test_s <= 0:
        return talk.TEST_SUB
    return f"{talk.TEST_SUB}\nimport time\n\ntime.sleep({test_s!r})\n"


def raw_work(root: Path, repo: Path, n: int, test_s: float = 0.0) -> float:
    """The git and test work of one FR, done directly: what opus adds is the rest."""
    start = time.perf_counter()
    tree = root / f"raw-{n}"
    _git(repo, "worktree", "add", "-q", "-b", f"raw/{n}", str(tree), "main")
    subprocess.run(["ls"], cwd=tree, check=True, capture_output=True)
    (tree / "calc.py").write_text(talk.CALC_WITH_SUB)
    (tree / "test_sub.py").write_text(test_file(test_s))
    for _ in range(2):  # the coder runs the test, then the test stage does
        subprocess.run(talk.TEST_COMMAND.split(), cwd=tree, check=True, capture_output=True)
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "Add sub")
    _git(tree, "push", "-q", "origin", f"raw/{n}")
    _git(repo, "worktree", "remove", "--force", str(tree))
    return time.perf_counter() - start


def once_phase(ws: Workspace, args: argparse.Namespace, figures: dict[str, Figure],
               test_s: float, timeline: dict[str, list[float]]) -> None:
    """`opus run --once` on one planned FR (fresh repo, and state unless `--warm-state`,
    each run) vs raw work; the FR's test takes `test_s` seconds more than its 20 ms check."""
    planned = ws.root / "vault" / "10_features" / "03_planned"
    suffix = "" if test_s <= 0 else f"-{test_s:g}s"
    state = f".opus-once{suffix}-warm" if args.warm_state else None
    if state is not None:
        time.sleep(2.5)  # older than the parse cache's racy margin, as a long-lived vault
        make_repo(ws.root, f"repo-once{suffix}-warm")
        ws.opus(ws.config(state, f"repo-once{suffix}-warm"), "run", "--once")
    coder = talk.coder({"calc.py": talk.CALC_WITH_SUB, "test_sub.py": test_file(test_s)},
                       run=talk.TEST_COMMAND)
    for n in range(args.repeat):
        repo_name = f"repo-once{suffix}-{n}"
        make_repo(ws.root, repo_name)
        config = ws.config(state or f".opus-once{suffix}-{n}", repo_name)
        fr_id = f"ONCE-{n}"
        save(planned / f"{fr_id}.md", fr_note(fr_id))
        trace = ws.root / f"once{suffix}-{n}.trace"
        with MessagesAPI([*talk.planner(), *coder, *talk.approve()]) as api:
            start, start_wall = time.perf_counter(), time.time()
            done = subprocess.run(
                [sys.executable, "-m", "opus", "--config", str(config), "run", "--once"],
                cwd=ws.root, env=ws.env(ANTHROPIC_BASE_URL=api.base_url, OPUS_TRACE=str(trace)),
                capture_output=True, text=True, timeout=900, check=False,
            )
            total = time.perf_counter() - start
            if done.returncode != 0 or api.script:
                raise RuntimeError(f"run --once failed ({done.returncode}): {done.stderr[-3000:]}")
        for label, at in first_marks(trace, start_wall).items():
            timeline.setdefault(label, []).append(at - start_wall)
        timeline.setdefault("(exited)", []).append(total)
        raw = raw_work(ws.root, ws.root / repo_name, n, test_s)
        figures["once_total"].values.append(total)
        figures["once_raw"].values.append(raw)
        figures["once_ratio"].values.append(total / raw)
        figures["once_overhead"].values.append(total - raw)
        for note in (ws.root / "vault").rglob(f"{fr_id}.md"):
            note.unlink()


# --------------------------------------------------------------------------- main


def new_figures(notes: int) -> dict[str, Figure]:
    at = f"{notes:,} notes"
    return {
        "pickup": Figure(f"pickup: note saved → job in registry ({at})", "s"),
        "ready": Figure(f"daemon start → READY ({at})", "s"),
        "idle_cpu": Figure(f"daemon idle CPU ({at})", "% core"),
        "idle_rss": Figure(f"daemon idle RSS, before any job ({at})", "MB"),
        "busy_rss": Figure(f"daemon RSS after the pickups ({at})", "MB"),
        "status": Figure(f"`opus status` wall time ({at})", "s"),
        "restart": Figure(f"SIGKILL mid-stage → restart → model call ({at})", "s"),
        "restart_ready": Figure(f"  of which restart → READY ({at})", "s"),
        "sdk_floor": Figure("  the floor: a bare SDK script, start → its first call", "s"),
        "job_kill": Figure(f"job process SIGKILLed mid-stage → its next model call ({at})",
                           "s"),
    }


def once_figures(notes: int, test_s: float) -> dict[str, Figure]:
    at = f"{notes:,} notes, test {0.02 + test_s:g} s"
    return {
        "once_total": Figure(f"`run --once`, one FR, total ({at})", "s"),
        "once_raw": Figure(f"  the same raw git + test work ({at})", "s"),
        "once_ratio": Figure(f"  total ÷ raw ({at})", "x"),
        "once_overhead": Figure(f"  total - raw: what opus adds ({at})", "s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="1000,10000,50000",
                        help="vault sizes, comma-separated (default 1000,10000,50000)")
    parser.add_argument("--repeat", type=int, default=10, help="runs per figure")
    parser.add_argument("--idle-s", type=float, default=30.0,
                        help="idle CPU is measured over this long, in --repeat windows")
    parser.add_argument("--src", default=str(ROOT / "src"),
                        help="the opus source tree(s) to measure, comma-separated: with "
                             "two, each vault size is measured with one, then the other, "
                             "so both see the same machine load (default: this checkout)")
    parser.add_argument("--skip", default="", help="phases to skip: idle,restart,once")
    parser.add_argument("--test-s", default="0,3",
                        help="for `run --once`: seconds the FR's test takes beyond its 20 ms "
                             "check, comma-separated, one measurement each (default 0,3: "
                             "the bare check, and a project whose tests take ~3 s)")
    parser.add_argument("--timeline", action="store_true",
                        help="also print the milestones of a restart and of `run --once` "
                             "(from OPUS_TRACE), as seconds after the kill or the start")
    parser.add_argument("--settle-s", type=float, default=None,
                        help="vault.settle_s for every opus process (default: opus's own "
                             "default); 0 measures intake without waiting for a note to "
                             "settle")
    parser.add_argument("--warm-state", action="store_true",
                        help="`run --once` reuses one state dir, warmed by an untimed "
                             "`run --once` first (a restart: the parse cache is there)")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 and 10,000 notes, 3 runs, 9 s idle (a few minutes)")
    args = parser.parse_args()
    if args.quick:
        args.notes, args.repeat, args.idle_s = "1000,10000", 3, 9.0
    sizes = [int(n) for n in args.notes.split(",")]
    srcs = [Path(src).resolve() for src in args.src.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    sandbox = sandbox_kind()
    settle = "default" if args.settle_s is None else f"{args.settle_s:g} s"
    print(f"sandbox {sandbox}; {os.cpu_count()} cpus; repeat {args.repeat}; "
          f"vault.settle_s {settle}", flush=True)
    for index, src in enumerate(srcs, 1):
        print(f"[{index}] opus from {src} ({_describe(src)})", flush=True)
    pickups: dict[tuple[int, int], float] = {}
    for notes in sizes:
        for index, src in enumerate(srcs, 1):
            figures, timelines = measure(notes, src, sandbox, args, skip)
            print(f"\n[{index}] {notes:,} notes, load average at the end {_load()}")
            for figure in figures.values():
                if figure.values:
                    print(figure.line(), flush=True)
            if args.timeline:
                for title, timeline in timelines.items():
                    print_timeline(f"[{index}] {title}", timeline)
            pickups[index, notes] = figures["pickup"].median
    if len(sizes) > 1 and "idle" not in skip:
        small, large = min(sizes), max(sizes)
        for index in range(1, len(srcs) + 1):
            print(f"\n[{index}] pickup({large:,}) ÷ pickup({small:,}) = "
                  f"{pickups[index, large] / pickups[index, small]:.2f} (medians)")


def measure(notes: int, src: Path, sandbox: str, args: argparse.Namespace,
            skip: set[str]) -> tuple[dict[str, Figure], dict[str, dict[str, list[float]]]]:
    """Every figure for one vault size and one source tree, in a fresh workspace; and the
    timelines (milestone → seconds after the kill or the start, per run)."""
    figures = new_figures(notes)
    timelines: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="opus-lean-") as tmp:
        env = {} if args.settle_s is None else {"OPUS_VAULT__SETTLE_S": str(args.settle_s)}
        ws = Workspace(Path(tmp), src, sandbox, env)
        make_repo(ws.root, "repo")
        made = time.perf_counter()
        make_vault(ws.root / "vault", notes)
        print(f"  ({notes:,} notes written in {time.perf_counter() - made:.1f} s; "
              f"load average {_load()})", flush=True)
        if "idle" not in skip:
            idle_phase(ws, notes, args, figures)
        if "restart" not in skip:
            timeline = timelines.setdefault("restart: seconds after the SIGKILL", {})
            restart_phase(ws, args, figures, timeline)
            sdk_floor(args, figures)
        if "once" not in skip:
            for test_s in (float(x) for x in args.test_s.split(",")):
                once = once_figures(notes, test_s)
                title = f"`run --once` (test {0.02 + test_s:g} s): seconds after the start"
                once_phase(ws, args, once, test_s, timelines.setdefault(title, {}))
                figures.update({f"{key}@{test_s:g}": figure for key, figure in once.items()})
    return figures, timelines


def _load() -> str:
    """The machine's 1/5/15-minute load: figures taken under load are slower."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _describe(src: Path) -> str:
    try:
        return _git(src, "log", "-1", "--format=%h %s")[:70]
    except (subprocess.CalledProcessError, OSError):
        return "not a git checkout"


if __name__ == "__main__":
    main()
