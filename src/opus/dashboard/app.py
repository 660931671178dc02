"""The Starlette application: pages, the JSON API, static files and security headers."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opus.dashboard import api, pages
from opus.dashboard.context import DashboardContext

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    # Scripts only from this server (htmx and live.js); no inline script, no eval. An FR
    # that got markup past the escaping still could not run anything.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response (a plain ASGI wrapper: streams unharmed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(header: str) -> str:
    """`Host:` without its port: `[::1]:7900` → `::1`, `localhost:7900` → `localhost`."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class LoopbackHosts:
    """On a loopback bind, answer only requests addressed to a loopback name.

    A web page elsewhere can point its own host name at 127.0.0.1 (DNS rebinding) and
    then read what the board shows; its requests still say that name in `Host:`.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                response = PlainTextResponse(
                    "this board answers only to a loopback address "
                    f"({', '.join(sorted(self.allowed))}); open it as http://127.0.0.1:PORT/",
                    status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(ctx: DashboardContext) -> Starlette:
    """The dashboard over `ctx` (see `opus.dashboard.server.build_context`)."""
    routes = [*pages.ROUTES, *api.ROUTES,
              Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes)
    app.state.ctx = ctx
    app.add_middleware(SecurityHeaders)
    if ctx.loopback_host is not None:
        app.add_middleware(LoopbackHosts, allowed=LOOPBACK_NAMES | {ctx.loopback_host})
    return app
