"""When to look at an upstream job again, estimated from its own progress.

Sora reports a progress percentage; from how fast it has risen we estimate when the job will
finish and look again shortly before and after that, instead of at a fixed interval. The same
estimate tells API clients when to poll the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

# Typical generation time before any progress is seen (Sora 2, short clips).
PRIOR_DURATION_SECONDS = 90.0
# Look again when this share of the estimated remaining time has passed: early enough to keep
# the detection lag small once the job is nearly done, late enough to skip needless checks.
REMAINING_SHARE = 0.6


@dataclass(frozen=True)
class PollPolicy:
    min_seconds: float
    max_seconds: float

    def to_dict(self) -> dict[str, float]:
        return {"min_seconds": self.min_seconds, "max_seconds": self.max_seconds}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> PollPolicy:
        return cls(min_seconds=float(data["min_seconds"]), max_seconds=float(data["max_seconds"]))

    def next_delay(self, *, elapsed_seconds: float, progress: int) -> float:
        """Seconds to wait before the next status check of a job `elapsed_seconds` old."""
        remaining = estimate_remaining_seconds(elapsed_seconds=elapsed_seconds, progress=progress)
        return min(self.max_seconds, max(self.min_seconds, remaining * REMAINING_SHARE))


def estimate_remaining_seconds(*, elapsed_seconds: float, progress: int) -> float:
    """Seconds until the job is likely done, from its progress so far."""
    if progress <= 0:
        return max(PRIOR_DURATION_SECONDS - elapsed_seconds, 0.0)
    progress = min(progress, 99)
    rate = progress / max(elapsed_seconds, 1.0)
    return (100 - progress) / rate
