"""Undecided questions in FR bodies written like design notes (`opus.conversation.questions`)."""

from __future__ import annotations

from opus.conversation.questions import Question, find_open_questions
from tests.conversation.design_notes import ALL_DECIDED, PENDING_LIST, RATE_LIMITING


def test_design_note_with_three_questions_two_undecided() -> None:
    found = find_open_questions(RATE_LIMITING)
    assert [q.question for q in found] == [
        "Which store holds the counters?",
        "Which status code for a limited request?",
    ]
    first = found[0]
    assert first.options == (
        "Option A: Redis, shared by every worker (we already run it for sessions)",
        "Option B: in-process memory (simple, but four workers means four buckets)",
    )
    assert first.recommendation == "Option A, since production runs four workers."
    assert found[1].recommendation == "429 with a Retry-After header"


def test_a_fully_decided_note_asks_nothing() -> None:
    assert find_open_questions(ALL_DECIDED) == []


def test_pending_items_in_a_heading_under_a_label_and_as_a_list() -> None:
    found = find_open_questions(PENDING_LIST)
    assert [q.question for q in found] == [
        "delimiter", "whether to include totals", "file name pattern", "time zone of the dates",
    ]


def test_list_shaped_questions_with_an_empty_decision() -> None:
    body = (
        "## Open questions\n\n"
        "1. **Cache the results?**\n   - yes\n   - no\n   Recommendation: yes\n   Decision:\n"
        "2. **Log the hits?**\n   Decision: no\n"
    )
    assert find_open_questions(body) == [Question("Cache the results?", ("yes", "no"), "yes")]


def test_no_such_section_and_configured_headings() -> None:
    body = "## Unknowns\n\n### Which port?\nDecision:\n"
    assert find_open_questions(body) == []
    found = find_open_questions(body, question_headings=["Unknowns"])
    assert [q.question for q in found] == ["Which port?"]


def test_a_question_without_a_decision_line_is_not_asked() -> None:
    body = "## Open Questions\n\n### Should we also do X?\nMaybe later.\n"
    assert find_open_questions(body) == []
