"""Login, sessions and CSRF; the token from the environment or the state dir; binds."""

from __future__ import annotations

import re
import stat

import pytest

from opus.cli import main
from opus.dashboard.auth import TOKEN_FILE
from opus.dashboard.listen import Listen, parse_listen
from opus.domain import JobState
from opus.errors import ConfigError, UsageError
from tests.dashboard.helpers import TOKEN, Project, web_client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_login_then_act_with_the_pages_csrf_token(project: Project) -> None:
    web = web_client(project.context())
    failed = project.ids["FR-4"]
    assert web.get("/login", params={"token": "wrong"}).status_code == 403
    login = web.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/?done=login"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie

    page = web.get(f"/jobs/{failed}").text
    assert 'data-action="retry"' in page
    forged = web.post(f"/jobs/{failed}/retry", data={"csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert project.store.get(failed).state is JobState.FAILED

    done = web.post(f"/jobs/{failed}/retry", data={"csrf": csrf_of(page), "next": "//evil"},
                    follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/jobs/{failed}?done=retry"
    assert project.store.get(failed).state is JobState.QUEUED

    web.post("/logout")
    assert 'data-action="cancel"' not in web.get(f"/jobs/{failed}").text


def test_a_new_token_ends_old_sessions(project: Project) -> None:
    web = web_client(project.context())
    web.get("/login", params={"token": TOKEN})
    assert "token held" in web.get("/").text
    other = web_client(project.context(environ={"OPUS_DASHBOARD_TOKEN": "n3w-t0ken"}),
                       cookies=dict(web.cookies))
    assert "token held" not in other.get("/").text


def test_state_dir_token_written_by_url_and_read_by_a_running_board(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPUS_DASHBOARD_TOKEN", raising=False)
    web = web_client(project.context(environ={}))
    assert "read-only (run" in web.get("/").text
    config = str(project.root / "opus.toml")
    assert main(["--config", config, "dashboard", "--url", "--listen", "127.0.0.1:7999"]) == 0
    url = capsys.readouterr().out.strip()
    token_file = project.settings.state_dir / TOKEN_FILE
    token = token_file.read_text().strip()
    assert url == f"http://127.0.0.1:7999/login?token={token}" and len(token) >= 40
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert main(["--config", config, "dashboard", "--url"]) == 0  # the same token again
    assert capsys.readouterr().out.strip().endswith(f"/login?token={token}")
    # the running board picks the new token up without a restart
    assert web.get("/login", params={"token": token}, follow_redirects=False).status_code == 303
    assert "token held" in web.get("/").text


def test_non_loopback_bind_needs_a_token(project: Project) -> None:
    with pytest.raises(UsageError, match="not loopback, without a token"):
        project.context(environ={}, listen=Listen("0.0.0.0", 0))
    web = web_client(project.context(listen=Listen("0.0.0.0", 0)))
    assert web.get("/", follow_redirects=False).headers["location"] == "/login"
    assert web.get("/api/v1/board").status_code == 401
    web.get("/login", params={"token": TOKEN})
    assert web.get("/api/v1/board").status_code == 200


@pytest.mark.parametrize("text", ["7900", "host:", ":80", "[::1]", "h:x"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ConfigError, match="not host:port"):
        parse_listen(text)


def test_a_port_over_65535_is_named() -> None:
    with pytest.raises(ConfigError, match="port 99999 is over 65535; pick a port from 1"):
        parse_listen("127.0.0.1:99999")


def test_listen_addresses() -> None:
    assert parse_listen("[::1]:7900") == Listen("::1", 7900)
    assert parse_listen("[::1]:7900").loopback and parse_listen("localhost:1").loopback
    assert parse_listen("127.0.0.2:80").loopback
    assert not parse_listen("0.0.0.0:80").loopback
    assert not parse_listen("example.invalid:80").loopback
    assert parse_listen("[::1]:7900").url() == "http://[::1]:7900"
