"""What the vault index keeps of a valid FR out of flight, and its plain-data form.

The plain form (lists, text and numbers) is what the index's parse cache stores on disk
(`parse_cache`): it is read back with type checks, never by unpickling a class.
"""

from __future__ import annotations

from dataclasses import dataclass

from opus.domain import FeatureRequest, FRStatus

Plain = list[object]
"""`[id, status, job, depends_on, digest]`: JSON's lists, text and numbers."""


@dataclass(frozen=True, slots=True)
class Settled:
    """A valid FR out of flight as the index keeps it (see `opus.vault.index`)."""

    id: str
    status: FRStatus
    job: int | None
    depends_on: tuple[str, ...]
    digest: int
    """The first 64 bits of the FR's content hash. With the status and job (which the
    hash leaves out) it tells two versions of the note's FR record apart."""

    @classmethod
    def of(cls, fr: FeatureRequest) -> Settled:
        return cls(fr.id, fr.status, fr.job, fr.depends_on, int(fr.content_hash[:16], 16))

    def plain(self) -> Plain:
        return [self.id, self.status.value, self.job, list(self.depends_on), self.digest]

    @classmethod
    def from_plain(cls, value: object) -> Settled:
        """The record `plain` gave; `ValueError` for anything else (a hand-edited or
        damaged file must not become a wrong verdict)."""
        if not isinstance(value, list) or len(value) != 5:
            raise ValueError(f"not a settled FR: {value!r:.80}")
        fr_id, status, job, deps, digest = value
        if (not isinstance(fr_id, str) or not isinstance(status, str)
                or not (job is None or type(job) is int) or type(digest) is not int
                or not isinstance(deps, list) or not all(isinstance(d, str) for d in deps)):
            raise ValueError(f"not a settled FR: {value!r:.80}")
        return cls(fr_id, FRStatus(status), job, tuple(deps), digest)
