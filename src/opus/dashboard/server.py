"""Serving the dashboard: uvicorn on a thread of its own, for `opus dashboard` and `opus run`.

The socket is bound before the thread starts, so a port in use is an error at once (and
port 0 gives the real port). uvicorn's own loop wakes every 0.1 s to look for a stop;
`_QuietServer` looks once a second, so a dashboard nobody watches costs next to nothing
inside the daemon (bench/dashboard_idle.py measures it). A non-loopback bind without a
token is refused before anything is opened (exit 2).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Mapping

import uvicorn

from opus.config import Settings
from opus.dashboard.app import create_app
from opus.dashboard.auth import TOKEN_FILE, TokenSource
from opus.dashboard.context import DashboardContext
from opus.dashboard.listen import Listen
from opus.dashboard.redact import Redactor
from opus.dashboard.source import open_source
from opus.errors import ConfigError, UsageError
from opus.seams import Clock

log = logging.getLogger(__name__)

TICK_S = 1.0
STOP_TIMEOUT_S = 5.0


def token_source(settings: Settings, environ: Mapping[str, str]) -> TokenSource:
    """The token from `dashboard.token_env`, else `<state_dir>/dashboard.token`."""
    return TokenSource(environ.get(settings.dashboard.token_env),
                       settings.state_dir / TOKEN_FILE)


def build_context(settings: Settings, environ: Mapping[str, str], *, listen: Listen,
                  clock: Clock | None = None) -> DashboardContext:
    """Everything the app needs; refuses a non-loopback bind without a token."""
    from opus.actions import Operator
    from opus.clock import SystemClock

    tokens = token_source(settings, environ)
    if not listen.loopback and tokens.current() is None:
        raise UsageError(
            f"refusing to serve the dashboard on {listen.host}, which is not loopback, "
            f"without a token: set {settings.dashboard.token_env} (dashboard.token_env) or "
            "run `opus dashboard --url` once to generate one, or listen on 127.0.0.1"
        )
    current = tokens.current()
    return DashboardContext(
        settings=settings,
        source=open_source(settings.database_url),
        tokens=tokens,
        redactor=Redactor.from_environ(environ, extra=[current] if current else []),
        clock=clock or SystemClock(),
        operator=Operator(settings),
        read_needs_login=not listen.loopback,
        loopback_host=listen.host if listen.loopback else None,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn, looking for a stop once a second instead of ten times."""

    async def main_loop(self) -> None:
        ticks = 0
        while not await self.on_tick(ticks):
            ticks = (ticks + 10) % 864000  # on_tick refreshes the Date header every 10th
            await asyncio.sleep(TICK_S)


def _bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {listen.host}:{listen.port}: {exc.strerror}; pick another "
            "address with --listen or dashboard.listen"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class DashboardServer:
    """The app served on `listen` from a daemon thread; `start()`, `stop()`."""

    def __init__(self, ctx: DashboardContext, listen: Listen) -> None:
        self.ctx = ctx
        self.listen = listen
        self.port = listen.port
        # log_config=None: uvicorn leaves logging alone (the daemon configured it).
        config = uvicorn.Config(create_app(ctx), log_config=None, log_level="warning",
                                lifespan="off",
                                access_log=False, timeout_graceful_shutdown=2,
                                server_header=False)
        self._server = _QuietServer(config)
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"DashboardServer({self.url})"

    @property
    def url(self) -> str:
        return self.listen.url(self.port)

    def start(self) -> None:
        """Bind (raising `ConfigError` if the address is taken), then serve."""
        self._sock = _bind(self.listen)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except Exception:  # never take the daemon down with it
            log.exception("the dashboard stopped serving")

    @property
    def started(self) -> bool:
        return self._server.started

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """End the event streams, stop serving, and wait (bounded) for the thread."""
        self.ctx.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()


def listen_of(settings: Settings, given: str | None) -> Listen:
    """`--listen`, else `dashboard.listen`, else 127.0.0.1:7900."""
    from opus.dashboard.listen import DEFAULT_LISTEN, parse_listen

    return parse_listen(given or settings.dashboard.listen or DEFAULT_LISTEN)


def login_url(settings: Settings, environ: Mapping[str, str], listen: Listen) -> str:
    """The URL that logs a browser in (generating the state dir's token if none is set)."""
    token = token_source(settings, environ).ensure()
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host
    return f"{Listen(host, listen.port).url()}/login?token={token}"


def serve(settings: Settings, environ: Mapping[str, str], listen: Listen,
          stop: threading.Event) -> DashboardServer:
    """Serve until `stop` is set (by a signal, in `opus dashboard`); returns the stopped
    server."""
    server = DashboardServer(build_context(settings, environ, listen=listen), listen)
    server.start()
    tokens = server.ctx.tokens.current() is not None
    print(f"opus dashboard at {server.url}/ "
          + ("(log in with the URL `opus dashboard --url` prints)" if tokens else
             "(read-only: `opus dashboard --url` makes a token and prints a login URL)"),
          flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return server


def start_in_daemon(settings: Settings, environ: Mapping[str, str]) -> DashboardServer | None:
    """`dashboard.listen` inside `opus run`: the server, or None when it is off or the
    address cannot be bound (logged: the daemon runs on without its board)."""
    if not settings.dashboard.listen:
        return None
    listen = listen_of(settings, None)
    server = DashboardServer(build_context(settings, environ, listen=listen), listen)
    try:
        server.start()
    except ConfigError as err:
        log.error("dashboard off: %s", err)
        return None
    log.info("dashboard at %s/", server.url)
    return server
