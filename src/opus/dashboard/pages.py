"""The HTML pages: board, job, metrics, login, and the forms behind their buttons.

Each page is rendered whole on the server; a `fragments/…` route renders the part that
changes, which htmx swaps in when the event stream says the registry changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from opus.dashboard import charts, data
from opus.dashboard.actions import perform, plan_texts
from opus.dashboard.auth import CSRF_FIELD, SESSION_COOKIE, csrf_ok, new_session, token_ok
from opus.dashboard.context import DashboardContext, ctx_of
from opus.dashboard.render import money, render
from opus.errors import NotFound, StoreError, UsageError
from opus.status import View

SESSION_MAX_AGE_S = 30 * 24 * 3600
MAX_FORM_BYTES = 256 * 1024
"""Answers can be long; anything larger is not a form these pages send."""
DONE = {"retry": "Re-queued.", "cancel": "Cancelled.", "pause": "Paused.", "resume": "Resumed.",
        "answer": "Answered: the job goes on.", "login": "Logged in: the buttons work now."}
Page = Callable[[Request], Awaitable[Response]]


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _common(request: Request, ctx: DashboardContext) -> dict[str, Any]:
    access = ctx.access(request)
    settings = ctx.settings
    return {"access": access, "has_token": ctx.tokens.current() is not None,
            "view": View(vault_root=settings.vault_path, base_dir=settings.base_dir),
            "done": DONE.get(request.query_params.get("done", "")), "path": request.url.path}


def _page(handler: Page) -> Page:
    """Send readers without the token to the login page where reading needs it; show
    an error page for an unknown job, a wrong state or a database that cannot be read."""
    async def endpoint(request: Request) -> Response:
        ctx = ctx_of(request)
        if not ctx.may_read(request):
            return RedirectResponse("/login", status_code=303)
        try:
            return await handler(request)
        except NotFound as err:
            return _error(request, ctx, 404, str(err))
        except UsageError as err:
            return _error(request, ctx, 409, str(err))
        except StoreError as err:
            return _error(request, ctx, 503, str(err))
        except ValueError as err:
            return _error(request, ctx, 400, f"bad request: {err}")
    return endpoint


def _error(request: Request, ctx: DashboardContext, status: int, message: str) -> Response:
    body = render("error.html", message=ctx.redactor.clean(message), status=status,
                  **_common(request, ctx))
    return _html(body, status)


async def _board(request: Request) -> Response:
    ctx = ctx_of(request)
    windows = data.windows_of(request.query_params)
    board = await run_in_threadpool(data.board, ctx, windows)  # the records: no dict copies
    fragment = request.url.path.startswith("/fragments/")
    return _html(render("_board.html" if fragment else "board.html", board=board,
                        clean=ctx.redactor.clean, pagers=data.pagers(board, windows),
                        query=data.window_query(windows), **_common(request, ctx)))


async def _job(request: Request) -> Response:
    ctx = ctx_of(request)
    detail = await run_in_threadpool(data.job_dict, ctx, int(request.path_params["job_id"]))
    fragment = request.url.path.startswith("/fragments/")
    return _html(render("_job.html" if fragment else "job.html", d=detail,
                        **_common(request, ctx)))


def _charts(figures: dict[str, Any]) -> dict[str, str]:
    day = [(day[5:], float(n)) for day, n in figures["jobs_per_day"].items()]
    cost = [(day[5:], float(usd)) for day, usd in figures["cost_per_day_usd"].items()]
    return {
        "jobs": charts.bar_chart(charts.Bars("jobs per day", day, fmt=lambda v: f"{v:.0f}")),
        "outcomes": charts.bar_chart(charts.Bars(
            "outcomes", [("opened a PR", float(figures["succeeded"])),
                         ("failed", float(figures["failed"]))], fmt=lambda v: f"{v:.0f}")),
        "cost": charts.bar_chart(charts.Bars(
            "cost per day", cost, fmt=money, limit=figures["daily_usd"],
            limit_label="budget.daily_usd")),
        "stages": charts.bar_chart(charts.Bars(
            "median duration per stage", list(figures["median_stage_s"].items()),
            fmt=lambda v: f"{v:.1f}s")),
        "rounds": charts.bar_chart(charts.Bars(
            "rounds per FR", [(fr, float(n)) for fr, n in figures["rounds_per_fr"].items()],
            fmt=lambda v: f"{v:.0f}")),
    }


async def _metrics(request: Request) -> Response:
    ctx = ctx_of(request)
    figures = await run_in_threadpool(data.metrics_dict, ctx)
    fragment = request.url.path.startswith("/fragments/")
    return _html(render("_metrics.html" if fragment else "metrics.html", m=figures,
                        charts=_charts(figures), **_common(request, ctx)))


async def _form(request: Request) -> dict[str, list[str]]:
    """An url-encoded form (what these pages post), read without a multipart parser."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _one(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def _texts(form: dict[str, list[str]]) -> list[str]:
    """The answers (one `answer` field per question) or a plan's `decision`."""
    if _one(form, "decision"):
        return plan_texts(_one(form, "decision"), _one(form, "comments"))
    return form.get("answer", [])


def _logged_in(ctx: DashboardContext) -> Response:
    token = ctx.tokens.current()
    assert token is not None
    response = RedirectResponse("/?done=login", status_code=303)
    response.set_cookie(SESSION_COOKIE, new_session(token), max_age=SESSION_MAX_AGE_S,
                        httponly=True, samesite="strict", path="/")
    return response


async def _login(request: Request) -> Response:
    ctx = ctx_of(request)
    given = request.query_params.get("token")
    if request.method == "POST":
        given = _one(await _form(request), "token")
    if given is not None and token_ok(ctx.tokens.current(), given):
        return _logged_in(ctx)
    status = 403 if given is not None else 200
    body = render("login.html", wrong=given is not None, **_common(request, ctx))
    return _html(body, status)


async def _logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _back(form_next: str, fallback: str) -> str:
    """Where a form returns: a path on this site only (never `//host` or a full URL)."""
    ok = form_next.startswith("/") and not form_next.startswith("//") and "\\" not in form_next
    return form_next if ok else fallback


async def _act(request: Request) -> Response:
    ctx = ctx_of(request)
    form = await _form(request)
    if not csrf_ok(ctx.access(request), _one(form, CSRF_FIELD)):
        return _error(request, ctx, 403, "this needs the dashboard token: open the login URL "
                      "that `opus dashboard --url` prints, then try again from the page")
    action = str(request.path_params["action"])
    job = request.path_params.get("job_id")
    await run_in_threadpool(perform, ctx, action, job, _texts(form))
    target = _back(_one(form, "next"), f"/jobs/{job}" if job else "/")
    return RedirectResponse(f"{target.split('?')[0]}?done={action}", status_code=303)


ROUTES = [
    Route("/", _page(_board)),
    Route("/fragments/board", _page(_board)),
    Route("/jobs/{job_id:int}", _page(_job)),
    Route("/fragments/jobs/{job_id:int}", _page(_job)),
    Route("/metrics", _page(_metrics)),
    Route("/fragments/metrics", _page(_metrics)),
    Route("/login", _login, methods=["GET", "POST"]),
    Route("/logout", _logout, methods=["POST"]),
    Route("/jobs/{job_id:int}/{action:str}", _page(_act), methods=["POST"]),
    Route("/actions/{action:str}", _page(_act), methods=["POST"]),
]
