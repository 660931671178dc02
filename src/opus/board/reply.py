"""`a` on `opus top --url`: an answer written in `$EDITOR`, for the dashboard's API.

The job's page data (`GET /api/v1/jobs/{id}`) carries what the job waits on; the person
edits it as the question (or plan) note would show it (`opus.conversation.notes`), and
what they saved becomes the body of `POST /api/v1/jobs/{id}/answer`: `{"answers": [...]}`,
or `{"decision": ..., "comments": ...}` for a plan. The dashboard then answers exactly as
`opus answer` does (the registry, the note, the wake).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opus.conversation.notes import plan_reply, read_state, render_plan, render_questions
from opus.conversation.waiting import Answered, Waiting
from opus.errors import UsageError

PLAN_COST = "see the job's page on the dashboard"


def answer_body(
    detail: Mapping[str, Any], texts: Sequence[str] | None, edit: Callable[[str], str]
) -> dict[str, Any]:
    """The answer to post for the job `detail` shows; `texts` as `opus answer --text`
    takes them, else what the person saves in `edit`. `UsageError` if it asks nothing."""
    job = detail["job"]
    if not detail.get("waiting"):
        raise UsageError(f"{job['fr']} is {job['state']}; it waits for no answer")
    waiting = Waiting.from_dict(detail["waiting"])
    if waiting.kind == "plan":
        if texts:
            decision, comments = plan_reply(texts)
        else:
            plan = detail.get("plan") or {}
            state = read_state(edit(render_plan(job["fr"], job["title"], waiting, plan,
                                                [PLAN_COST])))
            decision, comments = state.decision, state.comments
        return {"decision": decision, "comments": comments}
    if texts:
        return {"answers": list(texts)}
    earlier = [Answered.from_dict(item) for item in detail.get("conversation") or ()]
    text = render_questions(job["fr"], job["title"], waiting, earlier)
    return {"answers": list(read_state(edit(text)).answers)}
