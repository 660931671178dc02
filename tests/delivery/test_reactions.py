"""The record of what opus did about an open PR (`opus.delivery.reactions`), pure."""

from __future__ import annotations

from opus.delivery.reactions import (
    Reaction,
    escalation,
    find,
    is_ready,
    open_round,
    pending_feedback,
    quiet_delivery,
    reactions,
    reason_line,
    rounds_spent,
    standing,
    with_reaction,
    without_feedback,
)

CI_ROUND = Reaction("ci", "round", "aaa111", "test (failure)", round=2)


def _spec(*items: Reaction, **extra: object) -> dict[str, object]:
    spec: dict[str, object] = {"body": "Say hi.", **extra}
    for item in items:
        spec = with_reaction(spec, item)
    return spec


def test_a_round_is_found_by_kind_and_head_and_counted() -> None:
    spec = _spec(CI_ROUND, Reaction("review", "round", "bbb222", "changes", round=3))
    assert find(spec, "ci", "aaa111", "round") == CI_ROUND
    assert find(spec, "ci", "bbb222", "round") is None
    assert (rounds_spent(spec, "ci"), rounds_spent(spec, "review")) == (1, 1)
    assert spec["body"] == "Say hi."  # the rest of the spec is kept


def test_a_retry_grants_fresh_rounds() -> None:
    spec = _spec(CI_ROUND, Reaction("ci", "round", "ccc", "lint (failure)", round=3),
                 extra_rounds=3)  # fmt: skip
    assert rounds_spent(spec, "ci") == 0
    assert rounds_spent(with_reaction(spec, Reaction("ci", "round", "d", "x", round=4)),
                        "ci") == 1  # fmt: skip


def test_an_escalation_stands_until_cleared_and_ready_follows_the_newest_word() -> None:
    escalated = Reaction("ci", "escalated", "aaa111", "test (failure)")
    spec = _spec(CI_ROUND, escalated)
    assert escalation(spec, "ci") == escalated and standing(spec) == [escalated]
    spec = with_reaction(spec, Reaction("ci", "cleared", "ddd", "CI is green"))
    assert escalation(spec, "ci") is None and standing(spec) == []
    assert not is_ready(spec)
    spec = with_reaction(spec, Reaction("ready", "ready", "ddd", "approved"))
    assert is_ready(spec)
    assert not is_ready(with_reaction(spec, Reaction("ready", "cleared", "eee", "new head")))


def test_the_round_under_way_and_who_hears_of_its_delivery() -> None:
    spec = _spec(CI_ROUND)
    assert open_round(spec, delivered=1) == CI_ROUND  # delivered round 1, CI started 2
    assert open_round(spec, delivered=2) is None  # round 2 was delivered
    assert quiet_delivery(spec)
    assert not quiet_delivery(with_reaction(spec, Reaction("review", "round", "f", "x", 3)))
    assert reason_line(CI_ROUND) == "CI failed on aaa111: test (failure)"


def test_the_coders_message_and_the_key_older_versions_wrote() -> None:
    assert pending_feedback({"round_feedback": "fix CI"}) == "fix CI"
    assert pending_feedback({"human_feedback": "rename it"}) == "rename it"
    assert pending_feedback({}) is None
    assert without_feedback({"round_feedback": "x", "human_feedback": "y", "a": 1}) == {"a": 1}


def test_unreadable_entries_are_skipped_and_the_list_is_bounded() -> None:
    spec = {"reactions": ["junk", {"kind": "ci", "action": "round", "sha": "a", "round": 2}]}
    assert [r.sha for r in reactions(spec)] == ["a"]
    for n in range(80):
        spec = with_reaction(spec, Reaction("ci", "round", f"s{n}", "x", round=n))
    assert len(reactions(spec)) == 50 and reactions(spec)[-1].sha == "s79"
