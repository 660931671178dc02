"""Which of a commit's checks opus acts on, pure: the required ones.

A check is required when the forge's rule for the PR's base branch names it (GitHub
branch protection and rulesets, Gitea branch protection), or — when the forge names none
(an unprotected branch, a token that may not read the rule) — when it is reported at all.
`pr.optional_checks` (shell-style patterns) takes checks out of the required set either
way: a flaky coverage upload can fail without sending the job back to the coder.

A required check the commit has not reported yet counts as pending, as on the forge
(GitHub shows it "Expected — waiting for status to be reported"): "ready to merge" waits
for it. A failing check that is not required is only named (the round's comment, the
job's log), never acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from opus.forges.checks import overall
from opus.seams import Check, CIReport, RequiredChecks


@dataclass(frozen=True)
class Scoped:
    """A commit's checks split into what opus acts on and what it only names."""

    report: CIReport
    """The required checks, with those not reported yet as pending."""
    optional_failing: tuple[Check, ...] = ()
    """Checks that failed but are not required."""
    source: str = "every check reported"
    """Why these are the required ones, for messages."""


def scope(
    report: CIReport, required: RequiredChecks | None, optional: Sequence[str] = ()
) -> Scoped:
    """`report` narrowed to the required checks (see the module)."""

    def is_optional(name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in optional)

    if required is None or not required.names:
        kept = [c for c in report.checks if not is_optional(c.name)]
        source = "every check reported" + (" but `pr.optional_checks`" if optional else "")
    else:
        kept = [c for c in report.checks
                if _named(c.name, required) and not is_optional(c.name)]  # fmt: skip
        kept += [_expected(name, required.source) for name in required.names
                 if not is_optional(name) and not any(_matches(c.name, name, required)
                                                      for c in report.checks)]  # fmt: skip
        source = f"required by the {required.source}"
    names = {id(c) for c in kept}
    others = tuple(c for c in report.checks if id(c) not in names and c.state == "failure")
    narrowed = CIReport(sha=report.sha, state=overall(kept), checks=tuple(kept))
    return Scoped(narrowed, others, source)


def not_required_line(scoped: Scoped) -> str:
    """`not required, left alone: coverage (failure)`, or "" when none failed."""
    if not scoped.optional_failing:
        return ""
    names = ", ".join(f"{c.name} ({c.conclusion})" for c in scoped.optional_failing)
    return f"not required, left alone: {names}"


def _named(name: str, required: RequiredChecks) -> bool:
    return any(_matches(name, wanted, required) for wanted in required.names)


def _matches(name: str, wanted: str, required: RequiredChecks) -> bool:
    return fnmatchcase(name, wanted) if required.patterns else name == wanted


def _expected(name: str, source: str) -> Check:
    return Check(name=name, state="pending", conclusion="expected",
                 summary=f"required by the {source}; not reported on this commit yet")  # fmt: skip
