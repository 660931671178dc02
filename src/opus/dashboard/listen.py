"""Where the dashboard listens: `host:port` parsed, and whether it is loopback only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from opus.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:7900"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1, localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}"


def parse_listen(text: str) -> Listen:
    """`127.0.0.1:7900`, `[::1]:7900` or `0.0.0.0:80` → `Listen`; `ConfigError` otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    where = "(--listen or dashboard.listen)"
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(
            f"dashboard address {text!r} is not host:port; write e.g. {DEFAULT_LISTEN} "
            f"or [::1]:7900 {where}"
        )
    if int(port_text) > 65535:
        raise ConfigError(f"dashboard address {text!r}: port {port_text} is over 65535; "
                          f"pick a port from 1 to 65535, e.g. {DEFAULT_LISTEN} {where}")
    return Listen(host, int(port_text))
