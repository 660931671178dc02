"""Who may act: the dashboard token, the session cookie a login sets, and CSRF tokens.

The token comes from the variable named by `dashboard.token_env` or, when that is unset,
from `<state_dir>/dashboard.token` (written, mode 600, by `opus dashboard --url`). A
browser logs in once with `/login?token=…` and then holds a cookie; every POST from a
page must also carry the CSRF token printed into that page. Cookie and CSRF token are
HMACs keyed by the token, so a restart keeps sessions and a new token ends them all.
Scripts may instead send `Authorization: Bearer <token>` (no cookie, so no CSRF risk).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from opus.errors import ConfigError

TOKEN_FILE = "dashboard.token"
SESSION_COOKIE = "opus_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class TokenSource:
    """The current token: the environment's, else the state dir's file (re-read on change)."""

    def __init__(self, env_token: str | None, path: Path) -> None:
        self._env = (env_token or "").strip() or None
        self.path = path
        self._cached: tuple[float, str | None] = (-1.0, None)

    def __repr__(self) -> str:
        where = "environment" if self._env else str(self.path)
        return f"TokenSource({where})"  # never the token itself

    def current(self) -> str | None:
        if self._env:
            return self._env
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return None
        if mtime != self._cached[0]:
            text = self.path.read_text(encoding="utf-8").strip()
            self._cached = (mtime, text or None)
        return self._cached[1]

    def ensure(self) -> str:
        """The token, generating the state dir's file first when there is none."""
        token = self.current()
        if token is not None:
            return token
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the dashboard token to {self.path}: {exc.strerror}; set "
                "the variable named by dashboard.token_env instead"
            ) from exc
        token = self.current()
        assert token is not None
        return token


def _mac(token: str, purpose: str, nonce: str) -> str:
    message = f"opus-dashboard:{purpose}:{nonce}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_session(token: str) -> str:
    """A session cookie value for a browser that proved it holds `token`."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_mac(token, 'session', nonce)}"


def _nonce(token: str, cookie: str | None) -> str | None:
    nonce, _, mac = (cookie or "").partition(".")
    if nonce and hmac.compare_digest(mac, _mac(token, "session", nonce)):
        return nonce
    return None


@dataclass(frozen=True)
class Access:
    """What one request may do: `csrf` is set only for a logged-in browser session."""

    can_act: bool
    csrf: str | None = None
    bearer: bool = False


def access_for(token: str | None, cookie: str | None, authorization: str | None) -> Access:
    """The access of a request with this cookie and `Authorization` header."""
    if token is None:
        return Access(can_act=False)
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return Access(can_act=True, bearer=True)
    nonce = _nonce(token, cookie)
    if nonce is None:
        return Access(can_act=False)
    return Access(can_act=True, csrf=_mac(token, "csrf", nonce))


def csrf_ok(access: Access, given: str | None) -> bool:
    """A POST may act: by bearer token, or by session with the page's CSRF token."""
    if not access.can_act:
        return False
    if access.bearer:
        return True
    return access.csrf is not None and hmac.compare_digest(access.csrf, given or "")


def token_ok(token: str | None, given: str | None) -> bool:
    return token is not None and hmac.compare_digest(token, (given or "").strip())
