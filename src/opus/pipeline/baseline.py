"""The baseline: the test command on the untouched base, before any token is spent.

A repo whose tests already fail (or cannot run here) would otherwise cost coder rounds
that no code change can win. `pipeline.baseline` decides: `fail` stops the job with the
output tail, `warn` goes on (an FR that fixes failing tests), `skip` does not run it.
The result and its time are kept in the job's spec and shown in the PR body.
"""

from __future__ import annotations

import re
from typing import Any

from opus.pipeline.tester import TestOutcome

TAIL_LINES = 40
# pytest's summary: "737 passed, 2 skipped in 41.20s" (with or without the === bars).
_PYTEST_COUNTS = re.compile(
    r"(\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)"
    r"(?:, \d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?))*)"
    r" in [\d.]+s"
)
# node:test / tap: "# pass 12" and "# fail 0".
_TAP = re.compile(r"^# (pass|fail) (\d+)$", re.MULTILINE)


def record(outcome: TestOutcome) -> dict[str, Any]:
    """What the job keeps of a baseline run."""
    return {
        "command": outcome.command,
        "passed": outcome.passed,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.timed_out,
        "duration_s": round(outcome.duration_s, 3),
        "summary": summary_line(outcome),
    }


def summary_line(outcome: TestOutcome) -> str:
    """One line for the PR body, e.g. "baseline: 737 passed in 41 s"."""
    counts = _counts(outcome.output_tail)
    verdict = counts or ("passed" if outcome.passed else _failure(outcome))
    return f"baseline: {verdict} in {_seconds(outcome.duration_s)} s"


def failure_message(outcome: TestOutcome, base: str) -> str:
    """Why the job stops: the tests fail on `base` before any change, and how."""
    tail = "\n".join(outcome.output_tail.rstrip().splitlines()[-TAIL_LINES:])
    hint = f"; {outcome.hint}" if outcome.hint else ""
    return (
        f"the tests fail on `{base}` before any change (`{outcome.command}` "
        f"{_failure(outcome)}){hint}; fix them on `{base}`, or set "
        "`pipeline.baseline = \"warn\"` for an FR that fixes them\n"
        f"{tail}"
    )


def _counts(output: str) -> str:
    found = _PYTEST_COUNTS.findall(output)
    if found:
        return str(found[-1])
    tap = dict(_TAP.findall(output))
    if tap:
        return f"{tap.get('pass', '0')} passed, {tap.get('fail', '0')} failed"
    return ""


def _failure(outcome: TestOutcome) -> str:
    return "timed out" if outcome.timed_out else f"exited {outcome.exit_code}"


def _seconds(duration_s: float) -> str:
    return f"{duration_s:.1f}" if duration_s < 10 else f"{duration_s:.0f}"
