"""The HTTP boundary shared by the REST forges: requests with timeouts, pagination, and
httpx/HTTP failures translated into `ForgeError`s that say what to do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from opus.config import PRConfig
from opus.errors import ConfigError, ForgeError

TIMEOUT_S = 30.0
MAX_PAGES = 20
"""Listing stops after this many pages: opus only looks for its own, recent PRs."""

OPUS_MARKER = "<!-- opus -->"
"""Hidden in every comment opus posts, so its own words are never read back as feedback."""


class ApiClient:
    """A JSON REST client for one repository on one forge."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        token_env: str,
        repository: str,
        page_param: str,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_env = token_env
        self.repository = repository
        self._page_param = page_param
        self._http = httpx.Client(
            base_url=self.base_url, headers=dict(headers), timeout=timeout_s
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, repository={self.repository!r})"

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """GET `path` and return its decoded JSON."""
        return self._send("GET", path, params=params)

    def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST `payload` as JSON to `path` and return the decoded reply."""
        return self._send("POST", path, payload=payload)

    def get_all(self, path: str, params: Mapping[str, str | int] | None = None) -> list[Any]:
        """Every item of a paginated list, up to `MAX_PAGES` pages of 50."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self.get(path, {**(params or {}), self._page_param: 50, "page": page})
            if not isinstance(batch, list):
                raise ForgeError(f"GET {path} on {self.base_url} returned no list; "
                                 "check that pr.api_url points at the forge's API")
            items.extend(batch)
            if len(batch) < 50:
                break
        return items

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            resp = self._http.request(method, path, params=params, json=payload)
        except httpx.HTTPError as exc:
            raise ForgeError(
                f"{method} {self.base_url}{path} failed: {exc}; check `pr.api_url` and "
                "that the forge is reachable"
            ) from exc
        if resp.status_code >= 400:
            raise ForgeError(describe_failure(
                method, f"{self.base_url}{path}", resp.status_code, _message(resp),
                token_env=self.token_env, repository=self.repository,
            ))
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise ForgeError(f"{method} {self.base_url}{path} returned invalid JSON; "
                             "check that `pr.api_url` points at the forge's API") from exc


def describe_failure(
    method: str, url: str, status: int, message: str, *, token_env: str, repository: str
) -> str:
    """A user-facing explanation of a failed forge request, naming the fix."""
    what = f"{method} {url} failed with HTTP {status}"
    if status == 401:
        return (f"{what}: the forge rejected the token; put a valid token in ${token_env} "
                "(it is missing, expired or invalid)")
    if status == 403:
        return (f"{what}: {message or 'forbidden'}; give the token in ${token_env} "
                f"write access to pull requests of {repository} (or wait out a rate limit)")
    if status == 404:
        return (f"{what}: repository {repository} not found, or the token in ${token_env} "
                "lacks access to it; check `pr.repository`, the remote URL and the token")
    if status == 422:
        return f"{what}: the forge refused it: {message}"
    return f"{what}: {message or 'no details'}"


def require_token(pr: PRConfig, token: str | None) -> str:
    """The forge token, or a `ConfigError` naming the variable that should hold it."""
    if not token:
        raise ConfigError(
            f"pr.provider = {pr.provider!r} needs a token: set ${pr.token_env} "
            "(or point `pr.token_env` at the variable that holds it)"
        )
    return token


def iso_z(moment: datetime) -> str:
    """`moment` as the `YYYY-MM-DDTHH:MM:SSZ` form every forge accepts in `since=`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp from a forge (`...Z` or with an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def after(moment: datetime | None, since: datetime | None) -> bool:
    """True when `moment` is later than `since` (everything counts when `since` is None)."""
    if since is None:
        return True
    return moment is not None and moment > since


def is_ours(body: str) -> bool:
    """True for comments opus itself posted."""
    return OPUS_MARKER in body


def _message(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    message = str(data.get("message", "")).strip()
    errors = data.get("errors")
    if errors:
        message = f"{message} {errors}".strip()
    return message[:500]
