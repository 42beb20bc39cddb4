"""A job's status and progress as a pure function of how long ago it was created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["queued", "in_progress", "completed", "failed"]

QUEUED_SHARE = 0.15
"""Share of the job's time spent `queued` before rendering starts."""

FAIL_SHARE = 0.6
"""Share of the job's time after which a `#sim:fail` job fails."""


@dataclass(frozen=True)
class Phase:
    status: Status
    progress: int
    finished_after: float | None
    """Seconds after creation at which the job completed or failed; None while running."""


def phase_at(elapsed: float, job_seconds: float, fails: bool) -> Phase:
    """Where a job of `job_seconds` is `elapsed` seconds after creation."""
    if fails and elapsed >= FAIL_SHARE * job_seconds:
        fail_after = FAIL_SHARE * job_seconds
        return Phase("failed", _progress(fail_after, job_seconds), fail_after)
    if elapsed >= job_seconds:
        return Phase("completed", 100, job_seconds)
    if elapsed < QUEUED_SHARE * job_seconds:
        return Phase("queued", 0, None)
    return Phase("in_progress", _progress(elapsed, job_seconds), None)


def _progress(elapsed: float, job_seconds: float) -> int:
    queued = QUEUED_SHARE * job_seconds
    rendering = job_seconds - queued
    if rendering <= 0:
        return 0
    share = min(max((elapsed - queued) / rendering, 0.0), 1.0)
    # Real generators move fast early and crawl near the end; blend linear with an ease-out
    # so progress is monotonic but visibly not a straight line. Capped at 99: 100 = completed.
    eased = 0.55 * share + 0.45 * (1.0 - (1.0 - share) ** 3)
    return min(99, int(eased * 100))
