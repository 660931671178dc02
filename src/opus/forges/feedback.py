"""Pure assembly of `PRFeedback` from a forge's reviews and comments.

The REST forges differ in field names only; they normalise their JSON into `Review` and
`Remark` records and this module decides what a human asked for since opus last pushed.

A review is new when it reviewed the commit the PR's head is at now (`commit_id`, which
both GitHub and Gitea return): opus's last push, or a human's after it. Forges stamp
whole seconds, so time alone cannot tell a review from the push's own second; a reviewer's
latest verdict is the one with the highest review id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from opus.errors import ForgeError
from opus.forges.http import after, is_ours, parse_time
from opus.seams import PRFeedback, PullRequest, ReviewComment

PRState = Literal["open", "merged", "closed"]
APPROVED = "APPROVED"
"""Both GitHub and Gitea name an approving review so."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Review:
    """One submitted review: who, its verdict, when, and its summary text."""

    reviewer: str
    changes_requested: bool
    at: datetime | None
    body: str
    counts: bool = True
    """False for reviews that express no verdict (plain comments, pending, dismissed)."""
    id: int = 0
    commit: str | None = None
    """The commit the review was given on (`commit_id`), when the forge says."""
    approved: bool = False


@dataclass(frozen=True)
class Remark:
    """One comment: on a line of the diff (path, line) or on the PR as a whole."""

    path: str | None
    line: int | None
    body: str
    at: datetime | None


def pr_state(*, merged: bool, state: str) -> PRState:
    """merged beats closed; anything not closed is open."""
    if merged:
        return "merged"
    return "closed" if state == "closed" else "open"


def to_pull_request(item: Any, forge: str) -> PullRequest:
    """A `PullRequest` from the JSON both GitHub and Gitea return for a pull."""
    try:
        return PullRequest(
            number=int(item["number"]),
            url=str(item["html_url"]),
            branch=str(item["head"]["ref"]),
            base=str(item["base"]["ref"]),
            state=pr_state(
                merged=bool(item.get("merged") or item.get("merged_at")),
                state=str(item["state"]),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ForgeError(f"{forge} returned a pull request without {exc}; "
                         "check that `pr.api_url` points at its API") from exc


def head_sha(item: Any) -> str | None:
    """The commit a pull's head is at (`head.sha`), if the JSON says."""
    head = item.get("head") if isinstance(item, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    return str(sha) if sha else None


def head_ref(item: Any) -> str | None:
    """The head branch name of a pull's JSON, if it has one."""
    head = item.get("head") if isinstance(item, dict) else None
    return str(head.get("ref")) if isinstance(head, dict) else None


def review_from(item: dict[str, Any], *, changes: str, verdicts: frozenset[str]) -> Review:
    """A `Review` from a review's JSON: `changes` is the forge's name for "request
    changes", `verdicts` the states that replace a reviewer's earlier verdict."""
    state = str(item.get("state", ""))
    user = item.get("user") or {}
    return Review(
        reviewer=str(user.get("login", "?")),
        changes_requested=state == changes and not item.get("dismissed"),
        at=parse_time(item.get("submitted_at")),
        body=str(item.get("body") or ""),
        counts=state in verdicts,
        id=int(item.get("id") or 0),
        commit=str(item["commit_id"]) if item.get("commit_id") else None,
        approved=state == APPROVED and not item.get("dismissed"),
    )


def remark_from(item: dict[str, Any], *line_keys: str) -> Remark:
    """A `Remark` from a comment's JSON; the line is the first of `line_keys` set."""
    line = next((item[key] for key in line_keys if isinstance(item.get(key), int)), None)
    path = item.get("path")
    return Remark(
        path=str(path) if path else None,
        line=line or None,
        body=str(item.get("body") or ""),
        at=parse_time(item.get("updated_at") or item.get("created_at")),
    )


def build_feedback(
    state: PRState,
    reviews: Iterable[Review],
    remarks: Iterable[Remark],
    since: datetime | None,
    *,
    head: str | None = None,
) -> PRFeedback:
    """What humans said since opus delivered at `since`: changes requested when a
    reviewer's latest verdict asks for changes and is new (see `is_new`); comments and
    review texts from the second of `since` on.
    """
    latest: dict[str, Review] = {}
    for review in sorted((r for r in reviews if r.counts), key=_review_order):
        latest[review.reviewer] = review
    asking = [r for r in latest.values() if r.changes_requested and is_new(r, since, head)]
    texts = [
        ReviewComment(path=None, line=None, body=r.body.strip())
        for r in asking
        if r.body.strip()
    ]
    said = [
        ReviewComment(path=m.path, line=m.line, body=m.body.strip())
        for m in remarks
        if after(m.at, since) and m.body.strip() and not is_ours(m.body)
    ]
    summary = "\n\n".join(f"{r.reviewer}: {r.body.strip()}" for r in asking if r.body.strip())
    verdicts = list(latest.values())
    return PRFeedback(
        state=state,
        changes_requested=bool(asking),
        comments=tuple(texts + said),
        summary=summary,
        approved=any(r.approved for r in verdicts)
        and not any(r.changes_requested for r in verdicts),
        head=head,
    )


def is_new(review: Review, since: datetime | None, head: str | None) -> bool:
    """Whether `review` came after the delivery at `since` of the PR now at `head`.

    A review of another commit than the head is older than the head's push; one of the
    head counts from the push's second on (a same-second review is kept).
    """
    if since is None:
        return True
    if head is not None and review.commit is not None and review.commit != head:
        return False
    return after(review.at, since)


def _review_order(review: Review) -> tuple[int, datetime]:
    # Ids grow with every review; undated ones sort first so any dated verdict overrides.
    return (review.id, review.at or _EPOCH)
