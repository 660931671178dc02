"""Which planned FRs may be enqueued, and in which order (pure functions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opus.domain import FRStatus, Priority
from opus.scheduling import dependency_id, schedule
from tests.registry.factory import make_fr

P, D = FRStatus.PLANNED, FRStatus.DONE


def test_priority_then_age_then_id() -> None:
    frs = [
        make_fr("FR-1", priority=Priority.LOW),
        make_fr("FR-2"),
        make_fr("FR-3", priority=Priority.CRITICAL),
        make_fr("FR-4"),
        make_fr("FR-5"),
        make_fr("FR-6"),
    ]
    ages = {"FR-1": 1.0, "FR-2": 300.0, "FR-3": 500.0, "FR-4": 100.0, "FR-5": 100.0}
    result = schedule(frs, {}, ages=ages)
    # FR-6 has no known age: after the medium ones that have one.
    assert [fr.id for fr in result.ready] == ["FR-3", "FR-4", "FR-5", "FR-2", "FR-6", "FR-1"]
    assert result.blocked == ()


def test_only_planned_notes_are_scheduled() -> None:
    frs = [make_fr("FR-1", status=FRStatus.DRAFT), make_fr("FR-2"),
           make_fr("FR-3", status=FRStatus.IN_PROGRESS)]
    result = schedule(frs, {})
    assert [fr.id for fr in result.ready] == ["FR-2"]
    assert result.blocked == ()


def test_blocked_by_a_dependency_that_is_not_done() -> None:
    frs = [make_fr("FR-2", depends_on=("FR-1", "[[FR-0]]", "FR-9"))]
    statuses = {"FR-1": FRStatus.IN_PROGRESS, "FR-0": D}
    result = schedule(frs, statuses)
    assert result.ready == ()
    (blocked,) = result.blocked
    assert blocked.fr.id == "FR-2"
    assert blocked.waiting_on == ("FR-1", "FR-9")
    assert blocked.reason == "waits for FR-1 (in-progress), FR-9 (no such note)"
    assert blocked.held == {"FR-9": "no such note"}, "FR-1 gets done without a person"


def test_dependencies_that_wait_for_a_person_are_held() -> None:
    deps = {"FR-1": FRStatus.CANCELLED, "FR-3": FRStatus.FAILED, "FR-4": FRStatus.DRAFT,
            "FR-5": FRStatus.INVALID, "FR-6": FRStatus.REVIEW, "FR-7": P}
    (blocked,) = schedule([make_fr("FR-2", depends_on=tuple(deps))], deps).blocked
    assert blocked.held == {"FR-1": "cancelled", "FR-3": "failed", "FR-4": "draft",
                            "FR-5": "invalid"}


def test_unblocked_once_the_dependency_is_done() -> None:
    frs = [make_fr("FR-1"), make_fr("FR-2", depends_on=("FR-1",))]
    before = schedule(frs, {})
    assert [fr.id for fr in before.ready] == ["FR-1"]
    assert [b.fr.id for b in before.blocked] == ["FR-2"]
    assert before.blocked[0].reason == "waits for FR-1 (planned)"
    after = schedule([frs[1]], {"FR-1": D})
    assert [fr.id for fr in after.ready] == ["FR-2"]


def test_a_dependency_cycle_is_named() -> None:
    frs = [make_fr("FR-1", depends_on=("FR-2",)), make_fr("FR-2", depends_on=("[[FR-1]]",)),
           make_fr("FR-3", depends_on=("FR-1",))]
    result = schedule(frs, {})
    reasons = {b.fr.id: b.reason for b in result.blocked}
    assert reasons["FR-1"].startswith("dependency cycle FR-1 → FR-2 → FR-1")
    assert "dependency cycle" in reasons["FR-2"]
    assert reasons["FR-3"] == "waits for FR-1 (planned)"
    assert result.ready == ()


def test_dependency_ids_accept_wiki_links() -> None:
    assert dependency_id("FR-045") == "FR-045"
    assert dependency_id(" [[FR-045]] ") == "FR-045"
    assert dependency_id("[[FR-045|rate limits]]") == "FR-045"


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Priority)), st.floats(0, 1e9), st.booleans()),
        max_size=30,
    )
)
def test_every_planned_fr_is_ready_or_blocked_in_urgency_order(
    specs: list[tuple[Priority, float, bool]],
) -> None:
    frs = [make_fr(f"FR-{n}", priority=p, depends_on=("FR-X",) if dep else ())
           for n, (p, _, dep) in enumerate(specs)]
    ages = {f"FR-{n}": age for n, (_, age, _) in enumerate(specs)}
    result = schedule(frs, {"FR-X": P}, ages=ages)
    free = {fr.id for fr, (_, _, dep) in zip(frs, specs, strict=True) if not dep}
    assert {fr.id for fr in result.ready} == free
    assert len(result.ready) + len(result.blocked) == len(frs)
    keys = [(fr.priority.rank, ages[fr.id]) for fr in result.ready]
    assert keys == sorted(keys)
