"""The HTML pages: escaped note text, rendered and sanitised FRs, no secrets, capped logs,
charts with the API's numbers, security headers."""

from __future__ import annotations

import re

from opus.dashboard.jobview import LOG_TAIL_LINES
from tests.board.conftest import finish_many
from tests.dashboard.helpers import SECRET, XSS, Project, web_client

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def pages(project: Project) -> dict[str, str]:
    web = web_client(project.context())
    urls = ["/", "/fragments/board", "/metrics", "/fragments/metrics", "/login",
            *(f"/jobs/{job}" for job in project.ids.values()),
            *(f"/fragments/jobs/{job}" for job in project.ids.values())]
    found = {}
    for url in urls:
        response = web.get(url)
        assert response.status_code == 200, (url, response.text[:500])
        found[url] = response.text
    return found


def test_note_text_is_escaped_and_no_secret_is_shown(project: Project) -> None:
    for url, html in pages(project).items():
        assert XSS not in html, url
        assert SECRET not in html, url
        assert "<script" not in html.replace('<script src="/static/', ""), url
    board = pages(project)["/"]
    assert f'<p class="title">{ESCAPED}</p>' in board


def test_job_page_shows_the_fr_rendered_and_sanitised(project: Project) -> None:
    html = pages(project)[f"/jobs/{project.ids['FR-2']}"]
    assert "<h1>Running one</h1>" in html and "<em>markdown</em>" in html
    assert f"and {ESCAPED} and <code>code</code>" in html
    for shown in ("stage review", "round 2", "60%", "abababababab", "step one", "3 passed",
                  "approve", "src/a.py:3"):
        assert shown in html, shown
    tail = re.search(r'<section class="log">.*?<pre class="tail">(.*?)</pre>', html, re.S)
    assert tail is not None
    lines = tail.group(1).split("\n")
    assert len(lines) == LOG_TAIL_LINES and lines[-1] == "token [redacted]"


def test_metrics_charts_carry_the_api_numbers(project: Project) -> None:
    web = web_client(project.context())
    figures = web.get("/api/v1/metrics").json()
    html = web.get("/metrics").text
    charts = re.findall(r'<svg class="chart" role="img" aria-label="([^"]+)"(.*?)</svg>', html,
                        re.S)
    values = {name: [float(v) for v in re.findall(r'class="bar" data-label="[^"]*" '
                                                  r'data-value="([^"]+)"', body)]
              for name, body in charts}
    assert values["jobs per day"] == [float(n) for n in figures["jobs_per_day"].values()]
    assert values["cost per day"] == list(figures["cost_per_day_usd"].values())
    assert values["median duration per stage"] == list(figures["median_stage_s"].values())
    assert values["rounds per FR"] == [float(n) for n in figures["rounds_per_fr"].values()]
    assert values["outcomes"] == [figures["succeeded"], figures["failed"]]
    assert 'class="limit" data-value="7.5"' in html  # budget.daily_usd drawn on the cost chart
    assert "success rate <strong" in html and "67%" in html


def test_security_headers_and_offline_assets(project: Project) -> None:
    web = web_client(project.context())
    response = web.get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-store"
    htmx = web.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("var htmx=")
    assert web.get("/static/live.js").status_code == 200
    links = set(re.findall(r'(?:src|href)="([^"]+)"', response.text))
    assert {link for link in links if not link.startswith("/")} == {"https://forge.invalid/pr/3"}
    assert {"/static/htmx.min.js", "/static/live.js", "/static/dashboard.css"} <= links


def test_read_only_without_token_shows_no_buttons(project: Project) -> None:
    web = web_client(project.context(environ={}))
    html = web.get(f"/jobs/{project.ids['FR-4']}").text
    assert 'data-action="retry"' not in html and "opus dashboard --url" in html
    refused = web.post(f"/jobs/{project.ids['FR-4']}/retry", data={"csrf": ""},
                       follow_redirects=False)
    assert refused.status_code == 403


def test_unknown_job_page_is_404(project: Project) -> None:
    response = web_client(project.context()).get("/jobs/4242")
    assert response.status_code == 404 and "no job 4242" in response.text


def test_a_loopback_board_answers_only_to_loopback_names(project: Project) -> None:
    ctx = project.context()
    assert web_client(ctx).get("/").status_code == 200
    for host in ("localhost:7900", "[::1]:7900", "127.0.0.1"):
        assert web_client(ctx).get("/", headers={"host": host}).status_code == 200, host
    rebound = web_client(ctx).get("/api/v1/board", headers={"host": "evil.example:7900"})
    assert rebound.status_code == 400 and "loopback" in rebound.text


def _frs(html: str, lane: str) -> list[str]:
    section = html.split(f'data-lane="{lane}"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'data-fr="([^"]+)"', section)


def test_an_ended_lane_shows_its_latest_ten_its_count_and_pages_to_every_card(
    project: Project,
) -> None:
    finish_many(project.store, project.clock, done=24, failed=0)  # 25 Done in all
    web = web_client(project.context())
    board = web.get("/").text
    assert '<h2>Done <span class="count">25</span></h2>' in board
    assert len(_frs(board, "done")) == 10 and "1\N{EN DASH}10 of 25" in board
    assert 'href="/?done_from=10"' in board and "15 more: 100 a page" in board
    assert 'class="newer"' not in board.split('data-lane="done"')[1].split("</section>")[0]

    seen, url = _frs(board, "done"), "/?done_from=10"
    while url:
        page = web.get(url).text
        assert f'hx-get="/fragments/board{url[1:]}"'.replace("&", "&amp;") in page
        seen += _frs(page, "done")
        older = re.search(r'<a class="older" href="([^"]+)"', page)
        url = older.group(1).replace("&amp;", "&") if older else ""
    assert "21\N{EN DASH}25 of 25" in page and 'href="/?done_from=10"' in page  # newer
    assert len(seen) == len(set(seen)) == 25
    everything = web.get("/?done_n=100").text
    assert _frs(everything, "done") == seen and 'class="pager"' not in everything
    bad = web.get("/?done_n=0")
    assert bad.status_code == 400 and "done_n=0" in bad.text and "1 to 1000" in bad.text
