"""Answering a waiting job's questions and deciding its plan, from the API and the page."""

from __future__ import annotations

from opus.conversation.questions import Question
from opus.conversation.waiting import Waiting, start_waiting
from opus.domain import JobState, Priority
from tests.dashboard.helpers import TOKEN, XSS, Project, web_client
from tests.dashboard.test_auth import csrf_of
from tests.registry.factory import make_fr

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def ask(project: Project) -> int:
    """FR-2 (running) stops to ask two questions."""
    job = project.store.get(project.ids["FR-2"])
    questions = (Question("Which database?", ("sqlite", "postgres"), "sqlite"), Question(XSS))
    start_waiting(project.store, job, Waiting(kind="questions", asked_by="planner",
                                              stage="plan", iteration=0, round=1,
                                              since="2026-01-01T00:00:00+00:00",
                                              questions=questions))
    return job.id


def plan_waits(project: Project) -> int:
    job = project.store.enqueue(make_fr("FR-8", "body", priority=Priority.CRITICAL),
                                project.root)  # claimed before the older FR-1
    claimed = project.store.claim("worker-9", lease_s=86400)
    assert claimed is not None and claimed.id == job.id
    start_waiting(project.store, claimed, Waiting(kind="plan", asked_by="opus", stage="plan",
                                                  iteration=1, round=1, since=""))
    return job.id


def test_questions_answered_through_the_api(any_project: Project) -> None:
    job_id = ask(any_project)
    web = web_client(any_project.context())
    board = web.get("/api/v1/board").json()
    needs = next(lane for lane in board["lanes"] if lane["lane"] == "needs_you")["cards"]
    assert [card["fr"] for card in needs] == ["FR-2"]
    detail = web.get(f"/api/v1/jobs/{job_id}").json()
    assert detail["waiting"]["kind"] == "questions"
    assert [q["question"] for q in detail["waiting"]["questions"]] == ["Which database?", XSS]

    url = f"/api/v1/jobs/{job_id}/answer"
    assert web.post(url, json={"answers": ["pg", "x"]}).status_code == 403  # no token
    short = web.post(url, json={"answers": ["postgres"]}, headers=BEARER)
    assert short.status_code == 409 and "no answer to question 2" in short.json()["error"]
    assert web.post(url, content=b"not json", headers=BEARER).status_code == 400
    done = web.post(url, json={"answers": ["postgres", "plain text"]}, headers=BEARER)
    assert done.status_code == 200, done.text
    assert any_project.store.get(job_id).state is JobState.QUEUED
    answered = web.get(f"/api/v1/jobs/{job_id}").json()
    assert answered["waiting"] is None
    assert [q["answer"] for q in answered["conversation"][0]["questions"]] == [
        "postgres", "plain text"]


def test_plan_decided_through_the_api(project: Project) -> None:
    job_id = plan_waits(project)
    web = web_client(project.context())
    url = f"/api/v1/jobs/{job_id}/answer"
    vague = web.post(url, json={"decision": "changes"}, headers=BEARER)
    assert vague.status_code == 409 and "needs your comments" in vague.json()["error"]
    assert web.post(url, json={"decision": "approve"}, headers=BEARER).status_code == 200
    assert project.store.get(job_id).state is JobState.QUEUED


def test_questions_answered_from_the_page(project: Project) -> None:
    job_id = ask(project)
    web = web_client(project.context())
    readonly = web.get(f"/jobs/{job_id}").text
    assert "Log in to answer here" in readonly and "opus answer FR-2" in readonly
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in readonly and XSS not in readonly
    web.get("/login", params={"token": TOKEN})
    page = web.get(f"/jobs/{job_id}").text
    assert 'data-action="answer"' in page and "recommended: sqlite" in page
    done = web.post(f"/jobs/{job_id}/answer", follow_redirects=False,
                    data={"csrf": csrf_of(page), "answer": ["sqlite", "fine"]})
    assert done.status_code == 303 and done.headers["location"] == f"/jobs/{job_id}?done=answer"
    assert project.store.get(job_id).state is JobState.QUEUED
    assert "Answered: the job goes on." in web.get(done.headers["location"]).text


def test_plan_rejected_from_the_page(project: Project) -> None:
    job_id = plan_waits(project)
    web = web_client(project.context())
    web.get("/login", params={"token": TOKEN})
    page = web.get(f"/jobs/{job_id}").text
    assert 'data-action="approve"' in page and 'data-action="reject"' in page
    web.post(f"/jobs/{job_id}/answer", data={"csrf": csrf_of(page), "decision": "reject",
                                             "comments": "not this way"})
    job = project.store.get(job_id)
    assert job.state is JobState.CANCELLED and job.error == "plan rejected: not this way"
