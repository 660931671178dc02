"""The HTTP boundary shared by the REST forges: requests with timeouts, redirects, rate
limits and pagination, and httpx/HTTP failures translated into `ForgeError`s that say
what to do. designs/services.md records which published document each rule follows."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from opus.config import PRConfig
from opus.errors import ConfigError, ForgeError
from opus.forges.limits import rate_limit_wait

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
PAGE_SIZE = 50
MAX_PAGES = 20
"""Listing stops after this many pages: opus only looks for its own, recent PRs."""
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 307, 308})
"""Followed with the same method; a 302 is how GitHub hands out a job log's address."""
RATE_WAIT_MAX_S = 480.0
"""The longest opus waits inside one call for a rate limit to pass: under the stage's
silence limit (`pipeline.stage_idle_s`, 600 s by default), so a wait is not "stuck"."""
RATE_RETRIES = 3

_WAIT_CAP_S: ContextVar[float | None] = ContextVar("opus_forge_wait_cap_s", default=None)

OPUS_MARKER = "<!-- opus -->"
"""Hidden in every comment opus posts, so its own words are never read back as feedback."""

Params = Mapping[str, str | int]
T = TypeVar("T")


class ForgeRefused(ForgeError):
    """The forge answered with an HTTP error status (kept in `status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ForgeError):
    """The forge's rate limit holds for `wait_s` more seconds."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


@contextmanager
def rate_waits(max_s: float) -> Iterator[None]:
    """Inside this block (in this thread only), a rate limit is waited out for at most
    `max_s` per call; 0 raises `RateLimited` at once. The PR poller uses it: it pauses
    all its polling instead of sleeping inside one request."""
    token = _WAIT_CAP_S.set(max_s)
    try:
        yield
    finally:
        _WAIT_CAP_S.reset(token)


class ApiClient:
    """A JSON REST client for one repository on one forge.

    Redirects (a renamed repository answers 301/307) are followed with the same method
    and body, the token only to the same host. A rate-limited reply is waited out
    (`retry-after`, `x-ratelimit-reset`) up to `max_wait_s` per call, then `RateLimited`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        token_env: str,
        repository: str,
        page_param: str,
        timeout_s: float = TIMEOUT_S,
        max_wait_s: float = RATE_WAIT_MAX_S,
        sleep: Callable[[float], None] = time.sleep,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_env = token_env
        self.repository = repository
        self.max_wait_s = max_wait_s
        self._page_param = page_param
        self._sleep = sleep
        self._epoch = epoch
        import httpx  # here: the daemon imports this module's errors, not the client

        self._origin = _origin(httpx.URL(self.base_url))
        self._headers = dict(headers)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )
        self._moved_warned = False
        self.moved_to: str | None = None
        """`owner/name` the repository answered from after a redirect, if it moved."""

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, repository={self.repository!r})"

    def get(self, path: str, params: Params | None = None) -> Any:
        """GET `path` and return its decoded JSON."""
        return _decode(self._send("GET", self.base_url + path, params=params), "GET", path)

    def get_optional(self, path: str, params: Params | None = None) -> Any:
        """GET `path`; None when the forge answers 404 (nothing there)."""
        try:
            return self.get(path, params)
        except ForgeRefused as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST `payload` as JSON to `path` and return the decoded reply."""
        resp = self._send("POST", self.base_url + path, payload=payload)
        return _decode(resp, "POST", path)

    def get_tail(self, path: str, max_bytes: int) -> bytes:
        """GET `path` (following its redirect, e.g. to a log's storage) and return the
        last `max_bytes` bytes of the body, read as a stream so a huge log never sits in
        memory whole."""
        import httpx

        resp = self._send("GET", self.base_url + path, stream=True)
        kept = bytearray()
        try:
            for chunk in resp.iter_bytes():
                kept += chunk
                if len(kept) > 2 * max_bytes:
                    del kept[: len(kept) - max_bytes]
        except httpx.HTTPError as exc:
            raise ForgeError(f"GET {path} broke off: {exc}; check that the forge is "
                             "reachable") from exc
        finally:
            resp.close()
        return bytes(kept[-max_bytes:])

    def get_all(self, path: str, params: Params | None = None) -> list[Any]:
        """Every item of a paginated list, up to `MAX_PAGES` pages.

        The next page is the `Link: rel="next"` URL when the forge sends `Link`; without
        it, paging goes on until an empty page or `X-Total-Count` items. A short page is
        not taken as the last: servers clamp the page size (Gitea's MAX_RESPONSE_ITEMS).
        """
        items: list[Any] = []
        url = self.base_url + path
        query: Params | None = {**(params or {}), self._page_param: PAGE_SIZE, "page": 1}
        for page in range(1, MAX_PAGES + 1):
            resp = self._send("GET", url, params=query)
            batch = _decode(resp, "GET", path)
            if not isinstance(batch, list):
                raise ForgeError(f"GET {path} on {self.base_url} returned no list; "
                                 "check that pr.api_url points at the forge's API")
            items.extend(batch)
            following = _next_url(resp)
            if following is not None:
                url, query = following, None
            elif not batch or "link" in resp.headers or _total_reached(resp, len(items)):
                break
            else:
                query = {**(params or {}), self._page_param: PAGE_SIZE, "page": page + 1}
        return items

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ internals

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        payload: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        waited = 0.0
        for attempt in range(RATE_RETRIES + 1):
            resp = self._follow(method, url, params, payload, stream=stream)
            if stream and resp.status_code >= 300:
                resp.read()  # an error's body is small and says why
            message = _message(resp) if resp.status_code >= 400 else ""
            wait = rate_limit_wait(resp.status_code, resp.headers, message,
                                   now_epoch=self._epoch(), attempt=attempt)
            if wait is None:
                break
            what = f"{method} {resp.request.url} hit the forge's rate limit"
            cap = _WAIT_CAP_S.get()
            budget = (self.max_wait_s if cap is None else min(cap, self.max_wait_s)) - waited
            if attempt == RATE_RETRIES or budget <= 0:
                raise RateLimited(f"{what}; it lifts in {wait:.0f} s. opus tries again "
                                  "then; a token of its own raises the limit", wait)
            log.warning("%s; waiting %.0f s before asking again", what, min(wait, budget))
            self._sleep(min(wait, budget))
            waited += min(wait, budget)
        if resp.status_code >= 400:
            raise ForgeRefused(describe_failure(
                method, str(resp.request.url), resp.status_code, _message(resp),
                token_env=self.token_env, repository=self.repository,
            ), resp.status_code)
        return resp

    def _follow(
        self,
        method: str,
        url: str,
        params: Params | None,
        payload: Mapping[str, Any] | None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        import httpx

        target = httpx.URL(url, params=params) if params else httpx.URL(url)
        for _hop in range(MAX_REDIRECTS + 1):
            headers = dict(self._headers)
            if _origin(target) != self._origin:
                # The token is for this forge only: never sent to another host or port.
                headers.pop("Authorization", None)
            try:
                request = self._http.build_request(method, target, json=payload, headers=headers)
                resp = self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise ForgeError(
                    f"{method} {target} failed: {exc or type(exc).__name__}; check "
                    "`pr.api_url` and that the forge is reachable"
                ) from exc
            location = resp.headers.get("location")
            if resp.status_code not in REDIRECTS or not location:
                return resp
            resp.close()
            target = resp.url.join(location)
            self._warn_moved(resp.status_code, target)
        raise ForgeError(f"{method} {url}: more than {MAX_REDIRECTS} redirects; check "
                         "`pr.api_url` and `pr.repository`")

    def _warn_moved(self, status: int, target: httpx.URL) -> None:
        moved = re.search(r"/repos/([^/]+/[^/]+)", target.path)
        if moved is not None and moved[1].lower() != self.repository.lower():
            self.moved_to = moved[1]
        if status in (301, 308) and not self._moved_warned:
            self._moved_warned = True
            log.warning("the forge says %s moved permanently (now %s); opus follows, "
                        "but update `pr.repository` or the remote URL", self.repository, target)


def unless_withheld(read: Callable[[], T]) -> T | None:
    """`read()`, or None when the forge answers 403 or 404: a rule the token may not
    read, or one that does not exist, is a rule the forge does not tell (a rate limit is
    `RateLimited`, which goes on up)."""
    try:
        return read()
    except ForgeRefused as exc:
        if exc.status in (403, 404):
            return None
        raise


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
                f"write access to pull requests of {repository}")
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
    """True when `moment` is not before the second of `since` (all count when it is None).

    Forges stamp whole seconds: a comment made in the same second as opus's push carries
    a time *before* the push's microsecond-precise one, yet may well be newer. Counting
    that second in keeps it; reviews are told apart by the commit they reviewed instead.
    """
    if since is None:
        return True
    return moment is not None and moment >= since.replace(microsecond=0)


def is_ours(body: str) -> bool:
    """True for comments opus itself posted."""
    return OPUS_MARKER in body


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _decode(resp: httpx.Response, method: str, path: str) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError as exc:
        raise ForgeError(f"{method} {path} returned invalid JSON; "
                         "check that `pr.api_url` points at the forge's API") from exc


def _next_url(resp: httpx.Response) -> str | None:
    following = resp.links.get("next", {}).get("url")
    return str(resp.url.join(following)) if following else None


def _total_reached(resp: httpx.Response, seen: int) -> bool:
    total = resp.headers.get("x-total-count")
    return total is not None and total.isdigit() and seen >= int(total)


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
