"""The CI half of the forge stand-in: the checks of each commit, in the published shapes.

GitHub: `GET /commits/{ref}/check-runs` ({total_count, check_runs}), `GET
/commits/{ref}/status` (the combined status), `GET /check-runs/{id}/annotations`, and
`GET /actions/jobs/{id}/logs`, which answers 302 with a short-lived address on another
host — here a second loopback server (`LogHost`) that refuses any request carrying an
`Authorization` header, as signed blob URLs do. Gitea: `GET /commits/{ref}/status`, whose
statuses name their state `status`.

A test either sets a commit's checks (`set`) or gives a `policy` that decides them the
first time a commit is asked about — as a CI run triggered by the push would.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["run", "status"]
_ids = itertools.count(7_000_000)


@dataclass
class StandinCheck:
    """One check of a commit: a check run (`run`, GitHub only) or a commit status."""

    name: str
    conclusion: str | None = "success"
    """run: success, failure, neutral, cancelled, skipped, timed_out, action_required, or
    None while not completed; status: success, failure, error, pending (Gitea: warning)."""
    kind: Kind = "run"
    title: str = ""
    summary: str = ""
    text: str = ""
    annotations: list[tuple[str, int, str]] = field(default_factory=list)
    log: str | None = None
    """A GitHub Actions job's raw log; None: the run is another app's."""
    id: int = field(default_factory=lambda: next(_ids))


Policy = Callable[[str], list[StandinCheck]]


class LogHost:
    """Where job logs are downloaded from after the API's redirect."""

    def __init__(self) -> None:
        self.logs: dict[str, bytes] = {}
        self.requests: list[dict[str, str]] = []
        self.unexpected: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _LogHandler)
        self._server.host = self  # type: ignore[attr-defined]
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def publish(self, text: str) -> str:
        """A signed-looking URL serving `text` once asked."""
        key = uuid.uuid4().hex
        self.logs[key] = text.encode()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/logs/{key}?sig={uuid.uuid4().hex}"


class _LogHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        host: LogHost = self.server.host  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        host.requests.append(headers)
        key = self.path.split("?")[0].rsplit("/", 1)[-1]
        if "authorization" in headers:
            host.unexpected.append("the forge token was sent to the log host")
            self._reply(400, b"<Error>Authorization not allowed with a signature</Error>")
        elif key not in host.logs:
            self._reply(404, b"<Error>BlobNotFound</Error>")
        else:
            self._reply(200, host.logs[key], "text/plain; charset=utf-8")

    def _reply(self, status: int, body: bytes, kind: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CIState:
    """Every commit's checks, and the JSON the forge would answer about them."""

    def __init__(self, flavor: str, api_url: Callable[[], str], repo: Callable[[], str]) -> None:
        self.flavor = flavor
        self.policy: Policy | None = None
        self.by_sha: dict[str, list[StandinCheck]] = {}
        self.asked: list[str] = []
        """Every sha whose checks were read, in order."""
        self.log_host = LogHost()
        self._api_url = api_url
        self._repo = repo

    def set(self, sha: str, checks: list[StandinCheck]) -> None:
        self.by_sha[sha] = checks

    def of(self, sha: str) -> list[StandinCheck]:
        self.asked.append(sha)
        if sha not in self.by_sha and self.policy is not None:
            self.by_sha[sha] = self.policy(sha)
        return self.by_sha.get(sha, [])

    def run(self, ident: int) -> StandinCheck | None:
        return next((c for checks in self.by_sha.values() for c in checks if c.id == ident),
                    None)  # fmt: skip

    # ------------------------------------------------------------------ JSON

    def check_runs(self, sha: str) -> dict[str, Any]:
        runs = [self._run_json(sha, c) for c in self.of(sha) if c.kind == "run"]
        return {"total_count": len(runs), "check_runs": runs}

    def combined(self, sha: str) -> dict[str, Any]:
        statuses = [c for c in self.of(sha) if c.kind == "status"]
        key = "status" if self.flavor == "gitea" else "state"
        items = [self._status_json(c, key) for c in statuses]
        words = {c.conclusion or "pending" for c in statuses}
        red = sorted(words & {"error", "failure"})
        if red:
            state = "failure" if self.flavor == "github" else red[0]
        elif "pending" in words or not words:
            state = "pending"
        else:
            state = "success"
        repo = self._repo()
        return {"state": state, "sha": sha, "total_count": len(items), "statuses": items,
                "repository": {"full_name": repo},
                "commit_url": f"{self._api_url()}/repos/{repo}/commits/{sha}",
                "url": f"{self._api_url()}/repos/{repo}/commits/{sha}/status"}  # fmt: skip

    def annotations(self, ident: int) -> list[dict[str, Any]] | None:
        check = self.run(ident)
        if check is None:
            return None
        return [{"path": path, "start_line": line, "end_line": line, "start_column": None,
                 "end_column": None, "annotation_level": "failure", "title": "",
                 "message": message, "raw_details": "", "blob_href": ""}
                for path, line, message in check.annotations]  # fmt: skip

    def log_url(self, ident: int) -> str | None:
        check = self.run(ident)
        if check is None or check.log is None:
            return None
        return self.log_host.publish(check.log)

    def _run_json(self, sha: str, check: StandinCheck) -> dict[str, Any]:
        repo = self._repo()
        actions = check.log is not None
        html = f"{self._api_url()}/{repo}/actions/runs/{check.id + 1}/job/{check.id}"
        app = ({"id": 15368, "slug": "github-actions", "name": "GitHub Actions"} if actions
               else {"id": 42, "slug": "other-ci", "name": "Other CI"})  # fmt: skip
        return {
            "id": check.id, "head_sha": sha, "node_id": f"CR_{check.id}",
            "external_id": str(uuid.uuid4()), "name": check.name,
            "url": f"{self._api_url()}/repos/{repo}/check-runs/{check.id}",
            "html_url": html, "details_url": html if actions else "https://ci.example/b/1",
            "status": "completed" if check.conclusion else "in_progress",
            "conclusion": check.conclusion, "started_at": "2026-01-01T00:00:00Z",
            "completed_at": "2026-01-01T00:01:00Z" if check.conclusion else None,
            "output": {"title": check.title or None, "summary": check.summary or None,
                       "text": check.text or None,
                       "annotations_count": len(check.annotations),
                       "annotations_url":
                           f"{self._api_url()}/repos/{repo}/check-runs/{check.id}/annotations"},
            "check_suite": {"id": check.id + 2}, "app": app, "pull_requests": [],
        }  # fmt: skip

    def _status_json(self, check: StandinCheck, key: str) -> dict[str, Any]:
        return {
            "id": check.id, key: check.conclusion or "pending", "context": check.name,
            "description": check.summary, "target_url": "https://ci.example/build/1",
            "url": f"{self._api_url()}/statuses/{check.id}",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "creator": {"login": "ci-bot", "id": 9},
        }  # fmt: skip
