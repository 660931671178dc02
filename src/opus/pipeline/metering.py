"""A stage's spend, recorded call by call (designs/pipeline.md, "Spend, call by call").

`StageMeter` is the `on_spend` callback an agent stage hands its engine: after each billed
model call it writes the stage's totals so far into one failed stage run of the registry
(`JobStore.meter_stage`), in the job's process, before the next call. The stage's end
records its checkpoint or failed run through `record`, into that same row. So whatever
ends the stage — a checkpoint, a failure, a stop, an error of any kind, or a SIGKILL of
the job process — every billed call is in the job's and the day's spend exactly once, and
the budget checks of a resumed job see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opus.domain import UNFINISHED_REASON, Stage, StageRun, Usage
from opus.pipeline.stages import Interrupted
from opus.seams import Clock, JobStore

UNFINISHED = (
    "the stage did not complete: its job process was stopped or killed, or it met an "
    "error (see `opus logs`); what its model calls were billed is kept here"
)
"""The report of a metered run until its stage's end rewrites it: what a reader sees
when nothing could (a SIGKILL)."""


@dataclass
class StageMeter:
    """Keeps one stage run's spend in the registry while the stage runs."""

    store: JobStore
    clock: Clock
    job_id: int
    stage: Stage
    iteration: int
    holder: str | None
    """The worker the job was claimed by: only while it holds the job is spend written.
    None (a job run without a claim) meters nothing: the stage's end records it all."""
    started: datetime
    run_id: int | None = None
    """The registry's run holding what the stage spent so far, once it spent anything."""

    def __call__(self, usage: Usage, cost_usd: float) -> None:
        """Record the stage's totals so far; `Interrupted` when the job's lease is lost."""
        if self.holder is None:
            return
        run = StageRun(
            job_id=self.job_id, stage=self.stage, iteration=self.iteration, ok=False,
            output={"report": UNFINISHED, "stop_reason": UNFINISHED_REASON},
            usage=usage, cost_usd=cost_usd, started_at=self.started,
            finished_at=self.clock.now(),
        )  # fmt: skip
        run_id = self.store.meter_stage(run, holder=self.holder, metered=self.run_id)
        if run_id is None:
            raise Interrupted(
                f"stage {self.stage.value} stopped: lease lost (job {self.job_id} is no "
                f"longer held by {self.holder}); its last call's spend was not recorded"
            )
        self.run_id = run_id

    def record(self, run: StageRun) -> None:
        """Record the stage's end (its checkpoint or failed run, with its final totals) in
        the run that held its spend, or as a new run when nothing was metered."""
        self.store.record_stage(run, metered=self.run_id)
        self.run_id = None
