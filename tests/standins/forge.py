"""A stand-in GitHub / Gitea REST server on 127.0.0.1 for delivery tests.

It implements the pull-request calls opus makes, keeps PRs in memory, and is strict:
every request's method, path, auth header, GitHub media type and API version, and JSON
body are checked; anything unexpected gets a 4xx and is recorded in `unexpected`, so a
test can assert that opus spoke the API exactly. Tests flip PRs to merged or closed and
add reviews and comments through its methods.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Flavor = Literal["github", "gitea"]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    """The HTTP status the stand-in answered with."""


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
class StandinPR:
    number: int
    title: str
    head: str
    base: str
    body: str
    state: str = "open"
    merged_at: str | None = None
    reviews: list[dict[str, Any]] = field(default_factory=list)
    review_comments: list[dict[str, Any]] = field(default_factory=list)
    issue_comments: list[dict[str, Any]] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ForgeStandin:
    """The server plus its state. Use as a context manager; `api_url` is what opus gets."""

    def __init__(
        self, flavor: Flavor, *, token: str = "t0ken", owner: str = "acme", name: str = "widgets"
    ) -> None:
        self.flavor = flavor
        self.token = token
        self.owner = owner
        self.name = name
        self.prs: dict[int, StandinPR] = {}
        self.requests: list[Recorded] = []
        self.unexpected: list[str] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
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
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ test controls

    def posts(self, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

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

    def merge(self, number: int) -> None:
        with self.lock:
            self.prs[number].state = "closed"
            self.prs[number].merged_at = _now()

    def close(self, number: int) -> None:
        with self.lock:
            self.prs[number].state = "closed"

    def review(
        self,
        number: int,
        verdict: str,
        *,
        reviewer: str = "alice",
        body: str = "",
        comments: tuple[tuple[str, int, str], ...] = (),
        at: str | None = None,
    ) -> None:
        """Submit a review (GitHub: CHANGES_REQUESTED/APPROVED; Gitea: REQUEST_CHANGES...)."""
        with self.lock:
            pr = self.prs[number]
            review_id = 100 + len(pr.reviews)
            when = at or _now()
            pr.reviews.append({
                "id": review_id, "user": {"login": reviewer}, "state": verdict,
                "body": body, "submitted_at": when, "comments_count": len(comments),
            })  # fmt: skip
            for path, line, text in comments:
                key = "line" if self.flavor == "github" else "position"
                pr.review_comments.append({
                    "review_id": review_id, "path": path, key: line, "body": text,
                    "created_at": when, "updated_at": when,
                })  # fmt: skip

    def add_comment(self, number: int, body: str, *, at: str | None = None) -> None:
        with self.lock:
            when = at or _now()
            self.prs[number].issue_comments.append(
                {"body": body, "created_at": when, "updated_at": when, "user": {"login": "bob"}}
            )

    # ------------------------------------------------------------------ JSON views

    def pr_json(self, pr: StandinPR) -> dict[str, Any]:
        data: dict[str, Any] = {
            "number": pr.number,
            "html_url": f"{self.api_url}/{self.owner}/{self.name}/pull/{pr.number}",
            "title": pr.title, "body": pr.body, "state": pr.state,
            "merged_at": pr.merged_at,
            "head": {"ref": pr.head, "repo": {"full_name": f"{self.owner}/{self.name}"}},
            "base": {"ref": pr.base},
        }  # fmt: skip
        if self.flavor == "gitea":
            data["merged"] = pr.merged_at is not None
        return data


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Fault(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Server(ThreadingHTTPServer):
    standin: ForgeStandin


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
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        record: Recorded | None = None
        try:
            body = self._body(method)
            with standin.lock:
                record = Recorded(method, parts.path, query, body)
                standin.requests.append(record)
                self._check_headers(standin)
                fault = standin.take_fault(method, parts.path)
                if fault is not None and not fault.after:
                    raise _Fault(fault.status)
                status, payload = _route(standin, method, parts.path, query, body)
                if fault is not None:
                    raise _Fault(fault.status)
        except _Fault as failed:
            status, payload = failed.status, {"message": "Bad Gateway (injected fault)"}
        except _Reject as rej:
            standin.unexpected.append(f"{method} {self.path}: {rej.message}")
            status, payload = rej.status, {"message": rej.message}
        if record is not None:
            record.status = status
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

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


_ROUTE = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<kind>pulls|issues)"
    r"(?:/(?P<number>\d+)(?P<rest>/.*)?)?$"
)


def _route(
    standin: ForgeStandin, method: str, path: str, query: dict[str, str], body: Any
) -> tuple[int, Any]:
    if not path.startswith(standin.prefix + "/repos/"):
        raise _Reject(404, f"no route {path}")
    match = _ROUTE.match(path[len(standin.prefix) :])
    if match is None:
        raise _Reject(404, f"no route {path}")
    if (match["owner"], match["name"]) != (standin.owner, standin.name):
        raise _Reject(404, "Not Found")
    number = int(match["number"]) if match["number"] else None
    rest = match["rest"] or ""
    if number is None:
        if match["kind"] != "pulls":
            raise _Reject(404, f"no route {path}")
        return _list_or_open(standin, method, query, body)
    pr = standin.prs.get(number)
    if pr is None:
        raise _Reject(404, "Not Found")
    return _on_pr(standin, pr, method, match["kind"] + rest, query=query, body=body)


def _list_or_open(
    standin: ForgeStandin, method: str, query: dict[str, str], body: Any
) -> tuple[int, Any]:
    if method == "GET":
        if query.get("state") != "all":
            raise _Reject(400, "opus must list PRs with state=all")
        prs = sorted(standin.prs.values(), key=lambda p: -p.number)
        if standin.flavor == "github":
            head = query.get("head")
            if head is None or ":" not in head:
                raise _Reject(400, "GitHub head filter must be owner:branch")
            owner, branch = head.split(":", 1)
            prs = [p for p in prs if owner == standin.owner and p.head == branch]
        return 200, _page(standin, [standin.pr_json(p) for p in prs], query)
    if method == "POST":
        return 201, standin.pr_json(_open(standin, body))
    raise _Reject(405, f"{method} not allowed on pulls")


def _open(standin: ForgeStandin, body: Any) -> StandinPR:
    keys = {"title", "head", "base", "body"} | ({"draft"} if standin.flavor == "github" else set())
    if not isinstance(body, dict) or set(body) != keys:
        raise _Reject(422, f"pull request body must have exactly {sorted(keys)}; got {body!r}")
    if standin.flavor == "github" and body["draft"] is not False:
        raise _Reject(422, "opus must not open drafts")
    if any(p.head == body["head"] and p.state == "open" for p in standin.prs.values()):
        raise _Reject(422, f"A pull request already exists for {standin.owner}:{body['head']}.")
    number = len(standin.prs) + 1
    pr = StandinPR(number, body["title"], body["head"], body["base"], body["body"])
    standin.prs[number] = pr
    return pr


def _on_pr(
    standin: ForgeStandin,
    pr: StandinPR,
    method: str,
    what: str,
    *,
    query: dict[str, str],
    body: Any,
) -> tuple[int, Any]:
    if method == "POST" and what == "issues/comments":
        return _post_comment(pr, body)
    if method != "GET":
        raise _Reject(404, f"no route {method} {what}")
    since = query.get("since", "")
    if what == "pulls":
        return 200, standin.pr_json(pr)
    if what == "pulls/reviews":
        return 200, _page(standin, pr.reviews, query)
    if what == "pulls/comments" and standin.flavor == "github":
        fresh = [c for c in pr.review_comments if c["updated_at"] >= since]
        return 200, _page(standin, fresh, query)
    review = re.fullmatch(r"pulls/reviews/(\d+)/comments", what)
    if review and standin.flavor == "gitea":
        return 200, [c for c in pr.review_comments if c["review_id"] == int(review[1])]
    if what == "issues/comments":
        fresh = [c for c in pr.issue_comments if c["updated_at"] >= since]
        return 200, _page(standin, fresh, query)
    raise _Reject(404, f"no route {method} {what}")


def _post_comment(pr: StandinPR, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or set(body) != {"body"} or not body["body"]:
        raise _Reject(422, f"comment body must be {{'body': str}}; got {body!r}")
    when = _now()
    pr.issue_comments.append(
        {"body": body["body"], "created_at": when, "updated_at": when,
         "user": {"login": "opus-bot"}}
    )  # fmt: skip
    return 201, {"id": len(pr.issue_comments), "body": body["body"]}


def _page(standin: ForgeStandin, items: list[Any], query: dict[str, str]) -> list[Any]:
    size_key = "per_page" if standin.flavor == "github" else "limit"
    if size_key not in query:
        raise _Reject(400, f"list request without {size_key}")
    size, page = int(query[size_key]), int(query.get("page", "1"))
    return items[(page - 1) * size : page * size]
