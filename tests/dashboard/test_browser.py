"""The board in a real browser: a card, a live move without reload, escaped text, actions
with and without the token — and a real daemon's FR moving Running → In review."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opus.dashboard.server import DashboardServer
from opus.domain import JobState
from tests.dashboard.browser import (
    card_in,
    chromium,
    live,
    mark_page,
    needs_browser,
    same_page,
    screenshot,
    wait_for,
)
from tests.dashboard.helpers import TOKEN, XSS, Project
from tests.dashboard.test_server import free_port
from tests.e2e_daemon.agency import Agency, start_api
from tests.e2e_daemon.harness import Daemons, Workspace, wait_until

pytestmark = [needs_browser, pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "profile") as browser:
        yield browser


def test_board_shows_cards_and_a_registry_change_live(
    served: DashboardServer, project: Project, driver: Any, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver.get(f"{served.url}/")
    wait_for(driver, card_in("queued", "FR-1"), "FR-1 queued on the board")
    wait_for(driver, live, "the event stream to open")
    mark_page(driver)
    project.clock.advance(1)
    assert project.store.claim("worker-2", lease_s=86400) is not None  # FR-1 starts running
    wait_for(driver, card_in("running", "FR-1"), "FR-1 to move to Running")
    assert not card_in("queued", "FR-1")(driver)
    assert same_page(driver), "the page was reloaded"

    title = driver.find_element(By.CSS_SELECTOR, 'article[data-fr="FR-4"] .title')
    assert title.text == XSS  # the text, not a script
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    sources = driver.execute_script(
        "return Array.from(document.scripts).map(s => s.getAttribute('src'))")
    assert sources == ["/static/htmx.min.js", "/static/live.js"]
    screenshot(driver, tmp_path, "board")


def test_retry_with_the_token_and_refused_without(
    served: DashboardServer, project: Project, driver: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    failed = project.ids["FR-4"]
    driver.get(f"{served.url}/jobs/{failed}")
    assert not driver.find_elements(By.CSS_SELECTOR, 'button[data-action="retry"]')
    driver.execute_script(  # a POST forged without the token
        "const f = document.createElement('form'); f.method = 'post';"
        f"f.action = '/jobs/{failed}/retry'; document.body.appendChild(f); f.submit();")
    wait_for(driver, lambda d: "needs the dashboard token" in d.page_source, "the refusal")
    assert project.store.get(failed).state is JobState.FAILED
    screenshot(driver, tmp_path, "refused")

    driver.get(f"{served.url}/login?token={TOKEN}")
    wait_for(driver, lambda d: "token held" in d.page_source, "the login")
    driver.get(f"{served.url}/jobs/{failed}")
    driver.find_element(By.CSS_SELECTOR, 'button[data-action="retry"]').click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-state="queued"]'),
             "the job page to show the job queued")
    assert project.store.get(failed).state is JobState.QUEUED
    screenshot(driver, tmp_path, "retried")


def test_a_daemons_job_moves_from_running_to_in_review(tmp_path: Path, driver: Any) -> None:
    """`opus run` with `dashboard.listen`, the Messages-API stand-in, a held reviewer."""
    agency = Agency()
    api = start_api(agency)
    daemons = Daemons(api.base_url)
    review = threading.Event()
    try:
        ws = Workspace(tmp_path / "ws")
        port = free_port()
        ws.write_config(dashboard={"listen": f"127.0.0.1:{port}"})
        agency.hold("FR-1", "reviewer", review, limit_s=20)
        ws.write_fr("FR-1")
        daemons.start(ws)
        board = f"http://127.0.0.1:{port}/"
        wait_until(lambda: ("FR-1", "reviewer") in agency.waiting, "the review to start", 60)
        driver.get(board)
        wait_for(driver, card_in("running", "FR-1"), "FR-1 Running on the board")
        wait_for(driver, live, "the event stream to open")
        mark_page(driver)
        screenshot(driver, tmp_path, "daemon-running")
        review.set()
        wait_for(driver, card_in("in_review", "FR-1"), "FR-1 to move to In review", 60)
        assert same_page(driver), "the page was reloaded"
        screenshot(driver, tmp_path, "daemon-in-review")
    finally:
        review.set()
        daemons.kill_all()
        api.close()
