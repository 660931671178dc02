"""What every request handler of the dashboard shares, built once at the edge."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from starlette.requests import Request

from opus.actions import Operator
from opus.config import Settings
from opus.dashboard.auth import SESSION_COOKIE, Access, TokenSource, access_for
from opus.dashboard.jobview import JobFiles
from opus.dashboard.live import ChangeFeed
from opus.dashboard.redact import Redactor
from opus.dashboard.source import BoardSource
from opus.domain import Job
from opus.seams import Clock


@dataclass
class DashboardContext:
    """The settings, the registry (read side; the operator opens the writable store on
    the first action), the token, the redactor and the live feed."""

    settings: Settings
    source: BoardSource
    tokens: TokenSource
    redactor: Redactor
    clock: Clock
    operator: Operator
    read_needs_login: bool = False
    """On a non-loopback bind every page needs the token, not only the actions."""
    loopback_host: str | None = None
    """On a loopback bind, the address bound: requests must name it (or another loopback
    name) in `Host:`. None on other binds."""
    stopping: threading.Event = field(default_factory=threading.Event)
    acting: threading.Lock = field(default_factory=threading.Lock)
    """One action at a time (the operator opens its store once, on the first)."""

    @cached_property
    def feed(self) -> ChangeFeed:
        return ChangeFeed(self.source.change_mark)

    def now(self) -> datetime:
        return self.clock.now()

    def access(self, request: Request) -> Access:
        return access_for(self.tokens.current(), request.cookies.get(SESSION_COOKIE),
                          request.headers.get("authorization"))

    def may_read(self, request: Request) -> bool:
        return not self.read_needs_login or self.access(request).can_act

    def files(self, job: Job) -> JobFiles:
        from opus.daemon.logs import log_path

        return JobFiles(log=log_path(self.settings.state_dir, job.id), repo=job.repo)

    def close(self) -> None:
        self.stopping.set()
        self.feed.close()
        self.operator.close()
        self.source.close()


def ctx_of(request: Request) -> DashboardContext:
    ctx: Any = request.app.state.ctx
    assert isinstance(ctx, DashboardContext)
    return ctx
