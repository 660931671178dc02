"""A stand-in GitHub / Gitea REST server on 127.0.0.1 for delivery tests.

It implements the pull-request calls opus makes, keeps PRs in memory, and behaves as the
real services do where opus has been caught out before (designs/services.md):

- strict headers: the token, and for GitHub the media type and API version;
- listings page as the real ones: `per_page` (GitHub, max 100, default 30) or `limit`
  (Gitea, clamped to `max_limit` as MAX_RESPONSE_ITEMS does), with `Link` headers and
  Gitea's `X-Total-Count`; `state` defaults to `open`;
- Gitea's issue comments ignore `limit`/`page` and answer every comment;
- Gitea's `GET /pulls/{base}/{head}` answers the pair's first pull, not its newest;
- a second open PR for a head is refused: GitHub 422 "A pull request already exists",
  Gitea 409 Conflict;
- `rename()` makes the old repository path answer 301 (GET) / 307 (other methods);
- `primary_limit()` / `secondary_limit()` answer 403 or 429 with GitHub's headers and
  bodies until the limit lifts; every reply carries `x-ratelimit-*` headers;
- `hang()` holds requests without answering; `fail_once()` injects a 5xx;
- the checks of each commit (`ci`, see tests/standins/ci.py): GitHub check runs, the
  combined status, annotations and Actions job logs behind a redirect; Gitea statuses.
- the base branches' rules (`rules`, see tests/standins/protection.py): GitHub branch
  protection (404 unprotected, 403 without admin rights) and rulesets, Gitea's branch;
- `GET /pulls/{n}` carries `mergeable` (and GitHub's `mergeable_state`): from a test
  merge in the bare `remote` (`git merge-tree`), or as `set_mergeable()` fixes it, with
  reads answered "still computing" (GitHub null, Gitea false) first when asked.

Every request is recorded (`requests`) with its headers, so a test can check what opus
said; anything the stand-in refuses as malformed is listed in `unexpected`.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from tests.conformance import ops as conformance
from tests.standins.ci import CIState
from tests.standins.protection import Rules

Flavor = Literal["github", "gitea"]

PRIMARY_MESSAGE = "API rate limit exceeded for user ID 583231."
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID "
    "DBD8:0E4B:9F2E1:A3B00:6565F0B4."
)
LIMITS_DOC = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
GITHUB_LIMIT = 5000


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    """The HTTP status the stand-in answered with."""
    multi: dict[str, list[str]] = field(default_factory=dict)
    """Every value of every query parameter, in order."""
    operation: str | None = None
    """The published operation the request was (tests/conformance)."""


@dataclass
class Fault:
    """Answer the next `method` request whose path ends with `suffix` with `status`.

    `after=False`: the forge fails before acting (nothing is created). `after=True`: the
    forge acts, then the reply is lost (a proxy's 502 after the PR was opened).
    """

    method: str
    suffix: str
    status: int = 502
    after: bool = False


@dataclass
class Limit:
    """A rate limit in force until `until` (epoch seconds)."""

    until: float
    status: int
    secondary: bool
    retry_after: bool


@dataclass
class StandinPR:
    number: int
    title: str
    head: str
    base: str
    body: str
    state: str = "open"
    merged_at: str | None = None
    sha: str = field(default_factory=lambda: uuid.uuid4().hex + "00000000")
    reviews: list[dict[str, Any]] = field(default_factory=list)
    review_comments: list[dict[str, Any]] = field(default_factory=list)
    issue_comments: list[dict[str, Any]] = field(default_factory=list)
    mergeable: bool | None = None
    """Set by `set_mergeable`; None: computed from `remote` (clean when there is none)."""
    unknown_reads: int = 0
    """Single-PR reads still to answer while "computing" (GitHub null, Gitea false)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ForgeStandin:
    """The server plus its state. Use as a context manager; `api_url` is what opus gets.

    With `remote` (a bare git repository), a PR's head sha is the branch's tip there, as
    on a real forge after a push; without it, `push()` moves a made-up head.
    """

    def __init__(
        self,
        flavor: Flavor,
        *,
        token: str = "t0ken",
        owner: str = "acme",
        name: str = "widgets",
        max_limit: int = 50,
        links: bool = True,
        remote: Path | None = None,
    ) -> None:
        self.flavor = flavor
        self.token = token
        self.owner = owner
        self.name = name
        self.max_limit = max_limit
        self.links = links
        self.remote = remote
        self.old_names: list[tuple[str, str]] = []
        self.moved_to: str | None = None
        self.prs: dict[int, StandinPR] = {}
        self.requests: list[Recorded] = []
        self.unexpected: list[str] = []
        self.faults: list[Fault] = []
        self.limit: Limit | None = None
        self.remaining = GITHUB_LIMIT
        self.lock = threading.Lock()
        self._hang_until = 0.0
        self.held = 0
        """Requests that arrived while the stand-in hung (counted before any answer)."""
        self._released = threading.Event()
        self._next_id = 1000
        self.ci = CIState(flavor, lambda: self.api_url, lambda: f"{self.owner}/{self.name}")
        self.rules = Rules(flavor, lambda: self.api_url, lambda: f"{self.owner}/{self.name}")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.flavor == "gitea" else ""

    def __enter__(self) -> ForgeStandin:
        self._thread.start()
        self.ci.log_host.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.ci.log_host.stop()

    # ------------------------------------------------------------------ test controls

    def posts(self, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    def gets(self, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(suffix)]

    def fail_once(
        self, method: str, suffix: str, *, status: int = 502, after: bool = False
    ) -> None:
        """Make the next matching request fail once (see `Fault`)."""
        with self.lock:
            self.faults.append(Fault(method, suffix, status, after))

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and path.endswith(fault.suffix):
                self.faults.remove(fault)
                return fault
        return None

    def rename(self, owner: str, name: str) -> None:
        """The repository moves: its old path answers with redirects from now on."""
        with self.lock:
            self.old_names.append((self.owner, self.name))
            self.owner, self.name = owner, name

    def relocate(self, api_url: str) -> None:
        """The whole API moved to another server: every request is redirected there."""
        self.moved_to = api_url

    def primary_limit(self, *, for_s: float, status: int = 403) -> None:
        """The hourly quota is spent until `for_s` from now (`x-ratelimit-remaining: 0`)."""
        with self.lock:
            self.limit = Limit(time.time() + for_s, status, secondary=False, retry_after=False)

    def secondary_limit(self, *, for_s: float, status: int = 403, retry_after: bool = True) -> None:
        """A secondary (abuse) limit for `for_s`, with `retry-after` unless told otherwise."""
        with self.lock:
            self.limit = Limit(time.time() + for_s, status, secondary=True,
                               retry_after=retry_after)

    def hang(self, for_s: float) -> None:
        """Hold every request for `for_s` seconds (or until the stand-in stops) first."""
        self._hang_until = time.monotonic() + for_s

    def merge(self, number: int) -> None:
        with self.lock:
            self.prs[number].state = "closed"
            self.prs[number].merged_at = _now()

    def close(self, number: int) -> None:
        with self.lock:
            self.prs[number].state = "closed"

    def push(self, number: int) -> str:
        """New commits on the PR's head (without `remote`); returns the new head sha."""
        with self.lock:
            self.prs[number].sha = uuid.uuid4().hex + "00000000"
            return self.prs[number].sha

    def set_mergeable(
        self, number: int, value: bool | None = None, *, unknown_reads: int = 0
    ) -> None:
        """Fix what `mergeable` says for PR `number` (None: compute it from `remote`);
        the next `unknown_reads` reads answer as a forge still computing it does."""
        with self.lock:
            self.prs[number].mergeable = value
            self.prs[number].unknown_reads = unknown_reads

    def head_sha(self, pr: StandinPR) -> str:
        if self.remote is None:
            return pr.sha
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{pr.head}"],
            cwd=self.remote, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return found.stdout.strip() or pr.sha

    def review(
        self,
        number: int,
        verdict: str,
        *,
        reviewer: str = "alice",
        body: str = "",
        comments: tuple[tuple[str, int, str], ...] = (),
        at: str | None = None,
        commit: str | None = None,
    ) -> None:
        """Submit a review (GitHub: CHANGES_REQUESTED/APPROVED; Gitea: REQUEST_CHANGES...)
        on the PR's current head (or on `commit`)."""
        with self.lock:
            pr = self.prs[number]
            review_id = self._new_id()
            when = at or _now()
            pr.reviews.append({
                "id": review_id, "user": {"login": reviewer}, "state": verdict,
                "body": body, "submitted_at": when, "comments_count": len(comments),
                "commit_id": commit or self.head_sha(pr),
            })  # fmt: skip
            for path, line, text in comments:
                key = "line" if self.flavor == "github" else "position"
                pr.review_comments.append({
                    "id": self._new_id(), "review_id": review_id, "path": path, key: line,
                    "body": text, "created_at": when, "updated_at": when,
                })  # fmt: skip

    def add_comment(self, number: int, body: str, *, at: str | None = None) -> None:
        with self.lock:
            when = at or _now()
            self.prs[number].issue_comments.append(
                {"id": self._new_id(), "body": body, "created_at": when, "updated_at": when,
                 "user": {"login": "bob"}}
            )  # fmt: skip

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ------------------------------------------------------------------ JSON views

    def pr_json(self, pr: StandinPR) -> dict[str, Any]:
        data: dict[str, Any] = {
            "number": pr.number,
            "html_url": f"{self.api_url}/{self.owner}/{self.name}/pull/{pr.number}",
            "title": pr.title, "body": pr.body, "state": pr.state,
            "merged_at": pr.merged_at,
            "head": {"ref": pr.head, "sha": self.head_sha(pr),
                     "repo": {"full_name": f"{self.owner}/{self.name}"}},
            "base": {"ref": pr.base},
        }  # fmt: skip
        if self.flavor == "gitea":
            data["merged"] = pr.merged_at is not None
        return data

    def pr_detail_json(self, pr: StandinPR) -> dict[str, Any]:
        """One pull as `GET .../pulls/{n}` answers it: with `mergeable`, which GitHub
        gives only here (null while computing, with `mergeable_state` "unknown") and
        Gitea gives as false while its check runs."""
        data = self.pr_json(pr)
        mergeable: bool | None = self._mergeable(pr)
        if pr.unknown_reads > 0 and pr.state == "open":
            pr.unknown_reads -= 1
            mergeable = None if self.flavor == "github" else False
        data["mergeable"] = mergeable
        if self.flavor == "github":
            data["mergeable_state"] = self._mergeable_state(pr, mergeable)
        return data

    def _mergeable(self, pr: StandinPR) -> bool:
        if pr.mergeable is not None or self.remote is None:
            return pr.mergeable is not False
        # What the forge's test merge finds: `git merge-tree` in the bare repository.
        found = subprocess.run(
            ["git", "merge-tree", "--write-tree", f"refs/heads/{pr.base}",
             f"refs/heads/{pr.head}"],
            cwd=self.remote, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return found.returncode == 0

    def _mergeable_state(self, pr: StandinPR, mergeable: bool | None) -> str:
        if mergeable is None:
            return "unknown"
        if not mergeable:
            return "dirty"
        behind = self.remote is not None and subprocess.run(
            ["git", "merge-base", "--is-ancestor", f"refs/heads/{pr.base}",
             f"refs/heads/{pr.head}"],
            cwd=self.remote, capture_output=True, check=False,
        ).returncode != 0  # fmt: skip
        return "behind" if behind else "clean"


class _Reject(Exception):
    def __init__(self, status: int, message: str, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.payload = payload


class _Answer(Exception):
    """A reply that is not an error of opus's (a fault, a limit, a redirect)."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers or {}


class _Server(ThreadingHTTPServer):
    standin: ForgeStandin


@dataclass
class _Reply:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read `requests` and `unexpected` instead."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        standin = self.server.standin
        wait = standin._hang_until - time.monotonic()
        if wait > 0:
            with standin.lock:
                standin.held += 1
            standin._released.wait(timeout=wait)
        parts = urlsplit(self.path)
        multi = parse_qs(parts.query)
        query = {k: v[-1] for k, v in multi.items()}
        record: Recorded | None = None
        try:
            body = self._body(method)
            with standin.lock:
                record = Recorded(method, parts.path, query, body,
                                  {k.lower(): v for k, v in self.headers.items()}, multi=multi)
                standin.requests.append(record)
                reply = self._answer(standin, record)
        except _Answer as answer:
            reply = _Reply(answer.status, answer.payload, answer.headers)
        except _Reject as rej:
            standin.unexpected.append(f"{method} {self.path}: {rej.message}")
            reply = _Reply(rej.status, rej.payload or {"message": rej.message})
        if record is not None:
            record.status = reply.status
        self._send(standin, reply)

    def _answer(self, standin: ForgeStandin, record: Recorded) -> _Reply:
        method, path, query, body = record.method, record.path, record.query, record.body
        self._check_headers(standin)
        _conform(standin, record)
        _check_limit(standin)
        _check_moved(standin, method, path, self.path)
        fault = standin.take_fault(method, path)
        if fault is not None and not fault.after:
            raise _Answer(fault.status, {"message": "Bad Gateway (injected fault)"})
        reply = _route(standin, method, path, query, body)
        if record.operation and reply.status < 300:
            # The stand-in's own replies keep to the published shapes too.
            standin.unexpected += conformance.check_response(
                standin.flavor, record.operation, reply.payload)
        if fault is not None:
            raise _Answer(fault.status, {"message": "Bad Gateway (injected fault)"})
        return reply

    def _send(self, standin: ForgeStandin, reply: _Reply) -> None:
        raw = json.dumps(reply.payload).encode() if reply.payload is not None else b""
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        if standin.flavor == "github":
            for key, value in _quota_headers(standin).items():
                self.send_header(key, value)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(raw)  # a client that gave up on a hung reply is gone

    def _body(self, method: str) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if method != "POST":
            if raw:
                raise _Reject(400, f"unexpected body on {method}")
            return None
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            raise _Reject(415, "POST without a JSON content type")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _Reject(400, f"invalid JSON: {exc}") from exc

    def _check_headers(self, standin: ForgeStandin) -> None:
        auth = self.headers.get("Authorization") or ""
        scheme = "Bearer" if standin.flavor == "github" else "token"
        if auth != f"{scheme} {standin.token}":
            raise _Reject(401, "Bad credentials")
        if standin.flavor != "github":
            return
        if self.headers.get("Accept") != "application/vnd.github+json":
            raise _Reject(415, f"wrong Accept {self.headers.get('Accept')!r}")
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28":
            raise _Reject(400, "missing or wrong X-GitHub-Api-Version")
        if not self.headers.get("User-Agent"):
            raise _Reject(403, "Request forbidden by administrative rules. Please make sure "
                               "your request has a User-Agent header")


def _conform(standin: ForgeStandin, record: Recorded) -> None:
    """Refuse a request that is none of the published operations, or not as published."""
    path = record.path
    if standin.prefix and path.startswith(standin.prefix + "/"):
        path = path[len(standin.prefix):]
    operation, problems = conformance.check(
        standin.flavor, record.method, path,
        query=record.multi, headers=record.headers, body=record.body,
    )  # fmt: skip
    record.operation = operation
    if problems:
        raise _Reject(400, "; ".join(problems))


def _quota_headers(standin: ForgeStandin) -> dict[str, str]:
    limit = standin.limit
    primary = limit is not None and not limit.secondary and time.time() < limit.until
    reset = int(limit.until) if primary and limit else int(time.time()) + 3600
    remaining = 0 if primary else standin.remaining
    return {
        "x-ratelimit-limit": str(GITHUB_LIMIT), "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset), "x-ratelimit-used": str(GITHUB_LIMIT - remaining),
        "x-ratelimit-resource": "core",
    }  # fmt: skip


def _check_limit(standin: ForgeStandin) -> None:
    limit = standin.limit
    if limit is None or time.time() >= limit.until:
        standin.remaining = max(0, standin.remaining - 1)
        return
    if limit.secondary:
        headers = {"retry-after": str(max(1, round(limit.until - time.time())))}
        message = SECONDARY_MESSAGE
        doc = LIMITS_DOC + "#about-secondary-rate-limits"
        raise _Answer(limit.status, {"message": message, "documentation_url": doc},
                      headers if limit.retry_after else {})
    raise _Answer(limit.status, {"message": PRIMARY_MESSAGE, "documentation_url": LIMITS_DOC})


def _check_moved(standin: ForgeStandin, method: str, path: str, raw: str) -> None:
    if standin.moved_to is not None:
        location = standin.moved_to + raw
        raise _Answer(301 if method == "GET" else 307, {"message": "Moved Permanently"},
                      {"Location": location})
    for owner, name in standin.old_names:
        old = f"{standin.prefix}/repos/{owner}/{name}"
        if path == old or path.startswith(old + "/"):
            new = f"{standin.prefix}/repos/{standin.owner}/{standin.name}"
            location = standin.api_url + new + raw[len(old):]
            status = 301 if method == "GET" else 307
            raise _Answer(status, {"message": "Moved Permanently", "url": location},
                          {"Location": location})


_ROUTE = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<kind>pulls|issues)"
    r"(?:/(?P<number>\d+)(?P<rest>/.*)?)?$"
)
_BASE_HEAD = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/pulls/(?P<base>[^/]+)/(?P<head>.+)$"
)


_CI_ROUTE = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/"
    r"(?:commits/(?P<ref>[^/]+)/(?P<what>check-runs|status)"
    r"|check-runs/(?P<run>\d+)/annotations|actions/jobs/(?P<job>\d+)/logs)$"
)


def _route(
    standin: ForgeStandin, method: str, path: str, query: dict[str, str], body: Any
) -> _Reply:
    if not path.startswith(standin.prefix + "/repos/"):
        raise _Reject(404, f"no route {path}")
    local = path[len(standin.prefix) :]
    ci = _CI_ROUTE.match(local)
    if ci is not None and method == "GET":
        _same_repo(standin, ci["owner"], ci["name"])
        return _on_ci(standin, ci, query)
    rule = _RULE_ROUTE.match(local)
    if rule is not None and method == "GET":
        _same_repo(standin, rule["owner"], rule["name"])
        return _on_rule(standin, rule, query)
    match = _ROUTE.match(local)
    if match is None:
        pair = _BASE_HEAD.match(local)
        if pair is not None and standin.flavor == "gitea" and method == "GET":
            _same_repo(standin, pair["owner"], pair["name"])
            return _by_base_head(standin, unquote(pair["base"]), unquote(pair["head"]))
        raise _Reject(404, f"no route {path}")
    _same_repo(standin, match["owner"], match["name"])
    number = int(match["number"]) if match["number"] else None
    rest = match["rest"] or ""
    if number is None:
        if match["kind"] != "pulls":
            raise _Reject(404, f"no route {path}")
        return _list_or_open(standin, method, query, body)
    pr = standin.prs.get(number)
    if pr is None:
        raise _Answer(404, {"message": "Not Found"})
    return _on_pr(standin, pr, method, match["kind"] + rest, query=query, body=body)


def _on_ci(standin: ForgeStandin, ci: re.Match[str], query: dict[str, str]) -> _Reply:
    github = standin.flavor == "github"
    if ci["what"] == "status":
        return _Reply(200, standin.ci.combined(unquote(ci["ref"])))
    if ci["what"] == "check-runs" and github:
        found = standin.ci.check_runs(unquote(ci["ref"]))
        size = min(int(query.get("per_page", "30")), 100)
        page = max(1, int(query.get("page", "1")))
        found["check_runs"] = found["check_runs"][(page - 1) * size : page * size]
        return _Reply(200, found)
    if ci["run"] and github:
        notes = standin.ci.annotations(int(ci["run"]))
        if notes is None:
            raise _Answer(404, {"message": "Not Found"})
        return _page(standin, notes, query)
    if ci["job"] and github:
        url = standin.ci.log_url(int(ci["job"]))
        if url is None:
            raise _Answer(404, {"message": "Not Found"})
        return _Reply(302, None, {"Location": url})
    raise _Reject(404, f"no route {ci[0]} on {standin.flavor}")


_RULE_ROUTE = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/"
    r"(?:rules/branches/(?P<ruled>.+)|branches/(?P<protected>.+)/protection/"
    r"required_status_checks|branches/(?P<branch>.+))$"
)


def _on_rule(standin: ForgeStandin, match: re.Match[str], query: dict[str, str]) -> _Reply:
    github = standin.flavor == "github"
    if match["ruled"] and github:
        return _page(standin, standin.rules.branch_rules(unquote(match["ruled"])), query)
    if match["protected"] and github:
        status, payload = standin.rules.required_status_checks(unquote(match["protected"]))
        if status != 200:
            raise _Answer(status, payload)
        return _Reply(status, payload)
    if match["branch"] and not github:
        branch = unquote(match["branch"])
        sha = _branch_sha(standin, branch)
        if sha is None:
            raise _Answer(404, {"message": "The target couldn't be found.", "errors": []})
        return _Reply(200, standin.rules.gitea_branch(branch, sha))
    raise _Reject(404, f"no route {match[0]} on {standin.flavor}")


def _branch_sha(standin: ForgeStandin, branch: str) -> str | None:
    if standin.remote is None:
        return "0" * 40
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        cwd=standin.remote, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.strip() or None


def _same_repo(standin: ForgeStandin, owner: str, name: str) -> None:
    if (owner, name) != (standin.owner, standin.name):
        raise _Answer(404, {"message": "Not Found"})


def _by_base_head(standin: ForgeStandin, base: str, head: str) -> _Reply:
    # Gitea's GetPullRequestByBaseHeadInfo: the first matching row, in no set order.
    for pr in sorted(standin.prs.values(), key=lambda p: p.number):
        if pr.base == base and pr.head == head:
            return _Reply(200, standin.pr_json(pr))
    raise _Answer(404, {"message": "The target couldn't be found.", "errors": []})


def _list_or_open(
    standin: ForgeStandin, method: str, query: dict[str, str], body: Any
) -> _Reply:
    if method == "GET":
        state = query.get("state", "open")
        prs = sorted(standin.prs.values(), key=lambda p: -p.number)
        if state != "all":
            prs = [p for p in prs if p.state == state]
        if standin.flavor == "github" and "head" in query:
            owner, _, branch = query["head"].rpartition(":")
            prs = [p for p in prs if owner == standin.owner and p.head == branch]
        return _page(standin, [standin.pr_json(p) for p in prs], query)
    if method == "POST":
        return _Reply(201, standin.pr_json(_open(standin, body)))
    raise _Reject(405, f"{method} not allowed on pulls")


def _open(standin: ForgeStandin, body: Any) -> StandinPR:
    if not isinstance(body, dict) or not {"head", "base"} <= set(body):
        raise _Reject(422, f"a pull request needs head and base; got {body!r}")
    if standin.flavor == "github" and body.get("draft") is not False:
        raise _Reject(422, "opus must not open drafts")
    taken = next((p for p in standin.prs.values()
                  if p.head == body["head"] and p.base == body["base"] and p.state == "open"),
                 None)  # fmt: skip
    if taken is not None:
        raise _Answer(*_duplicate(standin, taken))
    number = len(standin.prs) + 1
    pr = StandinPR(number, body.get("title", ""), body["head"], body["base"], body.get("body", ""))
    standin.prs[number] = pr
    return pr


def _duplicate(standin: ForgeStandin, taken: StandinPR) -> tuple[int, Any]:
    if standin.flavor == "github":
        return 422, {
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom",
                        "message": f"A pull request already exists for "
                                   f"{standin.owner}:{taken.head}."}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": "422",
        }  # fmt: skip
    return 409, {
        "message": f"pull request already exists for these targets [id: {taken.number}, "
                   f"issue_id: {taken.number}, head_repo_id: 1, base_repo_id: 1, "
                   f"head_branch: {taken.head}, base_branch: {taken.base}]",
        "url": f"{standin.api_url}/api/swagger",
    }  # fmt: skip


def _on_pr(
    standin: ForgeStandin,
    pr: StandinPR,
    method: str,
    what: str,
    *,
    query: dict[str, str],
    body: Any,
) -> _Reply:
    if method == "POST" and what == "issues/comments":
        return _post_comment(standin, pr, body)
    if method != "GET":
        raise _Reject(404, f"no route {method} {what}")
    since = query.get("since", "")
    if what == "pulls":
        return _Reply(200, standin.pr_detail_json(pr))
    if what == "pulls/reviews":
        return _page(standin, pr.reviews, query)
    if what == "pulls/comments" and standin.flavor == "github":
        fresh = [c for c in pr.review_comments if c["updated_at"] >= since]
        return _page(standin, fresh, query)
    review = re.fullmatch(r"pulls/reviews/(\d+)/comments", what)
    if review and standin.flavor == "gitea":
        return _Reply(200, [c for c in pr.review_comments if c["review_id"] == int(review[1])])
    if what == "issues/comments":
        fresh = [c for c in pr.issue_comments if c["updated_at"] >= since]
        if standin.flavor == "gitea":
            return _Reply(200, fresh)  # Gitea: no paging on this endpoint, ever
        return _page(standin, fresh, query)
    raise _Reject(404, f"no route {method} {what}")


def _post_comment(standin: ForgeStandin, pr: StandinPR, body: Any) -> _Reply:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
        raise _Reject(422, f"comment body must be {{'body': str}}; got {body!r}")
    when = _now()
    comment = {"id": standin._new_id(), "body": body["body"], "created_at": when,
               "updated_at": when, "user": {"login": "opus-bot"}}  # fmt: skip
    pr.issue_comments.append(comment)
    return _Reply(201, comment)


def _page(standin: ForgeStandin, items: list[Any], query: dict[str, str]) -> _Reply:
    if standin.flavor == "github":
        size = min(int(query.get("per_page", "30")), 100)
        key = "per_page"
    else:
        size = min(int(query.get("limit", str(standin.max_limit))), standin.max_limit)
        key = "limit"
    page = max(1, int(query.get("page", "1")))
    last = max(1, -(-len(items) // size))
    headers: dict[str, str] = {}
    if standin.flavor == "gitea":
        headers["X-Total-Count"] = str(len(items))
    if standin.links and last > 1:
        headers["Link"] = _links(standin, {**query, key: str(size)}, page, last)
    return _Reply(200, items[(page - 1) * size : page * size], headers)


def _links(standin: ForgeStandin, query: dict[str, str], page: int, last: int) -> str:
    record = standin.requests[-1]
    rels = {"first": 1, "last": last}
    if page < last:
        rels["next"] = page + 1
    if page > 1:
        rels["prev"] = page - 1

    def url(number: int) -> str:
        params = {**query, "page": str(number)}
        joined = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{standin.api_url}{record.path}?{joined}"

    return ", ".join(f'<{url(n)}>; rel="{rel}"' for rel, n in rels.items())
