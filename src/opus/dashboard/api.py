"""The JSON API, `/api/v1/…` (documented in designs/dashboard.md).

Reads are GETs any page may make (on a non-loopback bind only with the token); the
actions are POSTs that need the token (bearer header, or a session with its CSRF token).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from opus.dashboard import data
from opus.dashboard.actions import perform, plan_texts
from opus.dashboard.auth import CSRF_HEADER, csrf_ok
from opus.dashboard.context import ctx_of
from opus.dashboard.live import event_stream
from opus.errors import NotFound, StoreError, UsageError

NO_TOKEN = ("this needs the dashboard token: log in with the URL `opus dashboard --url` "
            "prints, or send `Authorization: Bearer <token>`")


class _JSON(JSONResponse):
    """JSON whose times (a daemon's `started_at`, …) are ISO strings, as `--json` prints."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=_iso).encode("utf-8")


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _json(body: Any, status: int = 200) -> JSONResponse:
    return _JSON(body, status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def _guarded(handler: Any) -> Any:
    """Refuse readers without the token where reading needs it; map errors to statuses."""
    async def endpoint(request: Request) -> Response:
        if not ctx_of(request).may_read(request):
            return _error(401, NO_TOKEN)
        try:
            result: Response = await handler(request)
            return result
        except NotFound as err:
            return _error(404, str(err))
        except UsageError as err:
            return _error(409, str(err))
        except StoreError as err:
            return _error(503, str(err))
        except ValueError as err:
            return _error(400, f"bad request: {err}")
    return endpoint


async def _board(request: Request) -> Response:
    windows = data.windows_of(request.query_params)
    return _json(await run_in_threadpool(data.board_dict, ctx_of(request), windows))


async def _jobs(request: Request) -> Response:
    states = request.query_params.getlist("state")
    jobs = await run_in_threadpool(data.jobs_list, ctx_of(request), states)
    return _json({"jobs": jobs})


async def _job(request: Request) -> Response:
    job_id = int(request.path_params["job_id"])
    return _json(await run_in_threadpool(data.job_dict, ctx_of(request), job_id))


async def _events(request: Request) -> Response:
    job_id = int(request.path_params["job_id"])
    after = int(request.query_params.get("after", "0"))
    ctx = ctx_of(request)
    if await run_in_threadpool(ctx.source.job, job_id) is None:
        raise NotFound(f"no job {job_id}")
    return _json({"events": await run_in_threadpool(data.events_list, ctx, job_id, after)})


async def _log(request: Request) -> Response:
    job_id = int(request.path_params["job_id"])
    return _json(await run_in_threadpool(data.log_dict, ctx_of(request), job_id))


async def _metrics(request: Request) -> Response:
    return _json(await run_in_threadpool(data.metrics_dict, ctx_of(request)))


async def _daemons(request: Request) -> Response:
    return _json(await run_in_threadpool(data.daemons_dict, ctx_of(request)))


async def _stream(request: Request) -> Response:
    ctx = ctx_of(request)
    return StreamingResponse(
        event_stream(ctx.feed, ctx.stopping), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _act(request: Request) -> Response:
    ctx = ctx_of(request)
    if not csrf_ok(ctx.access(request), request.headers.get(CSRF_HEADER)):
        return _error(403, NO_TOKEN + " (and, from a page, its CSRF token)")
    action = str(request.path_params["action"])
    job = request.path_params.get("job_id")
    texts = await _answers(request) if action == "answer" else []
    message = await run_in_threadpool(perform, ctx, action, job, texts)
    return _json({"ok": True, "message": message})


async def _answers(request: Request) -> list[str]:
    """`{"answers": [...]}` (one per question, in order) or `{"decision": "approve" |
    "changes" | "reject", "comments": "..."}` for a plan."""
    try:
        body = await request.json()
    except ValueError as err:
        raise ValueError("the body must be JSON: {\"answers\": [...]} or {\"decision\": "
                         "\"approve\"}") from err
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if "decision" in body:
        return plan_texts(str(body["decision"]), str(body.get("comments") or ""))
    return [str(answer) for answer in body.get("answers") or []]


ROUTES = [
    Route("/api/v1/board", _guarded(_board)),
    Route("/api/v1/jobs", _guarded(_jobs)),
    Route("/api/v1/jobs/{job_id:int}", _guarded(_job)),
    Route("/api/v1/jobs/{job_id:int}/events", _guarded(_events)),
    Route("/api/v1/jobs/{job_id:int}/log", _guarded(_log)),
    Route("/api/v1/metrics", _guarded(_metrics)),
    Route("/api/v1/daemons", _guarded(_daemons)),
    Route("/api/v1/stream", _guarded(_stream)),
    Route("/api/v1/jobs/{job_id:int}/{action:str}", _guarded(_act), methods=["POST"]),
    Route("/api/v1/{action:str}", _guarded(_act), methods=["POST"]),
]
