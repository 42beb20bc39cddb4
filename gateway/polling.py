"""When to look at an upstream job again, estimated from its own progress.

Sora reports a progress percentage. From how fast it rises since generation began we estimate
when the job will finish, look again after most of that time has passed, and near the end aim
just past the estimated finish. The same estimate tells API clients when to poll the gateway.
Tuned with `bench/polling.py` against fixed 10-second polling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# While the job shows no progress (still queued upstream) there is nothing to extrapolate from.
QUEUED_CHECK_SECONDS = 45.0
# Look again when this share of the estimated remaining time has passed...
REMAINING_SHARE = 0.7
# ...except near the end, where we aim just past the estimated finish.
END_GAME_SECONDS = 20.0
END_GAME_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class ProgressTrack:
    """What has been seen of one upstream job, in seconds since `origin` (its upstream creation)."""

    origin: float = 0.0  # unix time
    last_idle_at: float = 0.0  # the last check that still showed no progress
    first_progress_at: float | None = None
    previous: tuple[float, int] | None = None  # (elapsed, progress) of the check before the latest
    latest: tuple[float, int] | None = None

    def observe(self, elapsed: float, progress: int) -> ProgressTrack:
        if progress <= 0:
            return ProgressTrack(origin=self.origin, last_idle_at=elapsed)
        return ProgressTrack(
            origin=self.origin,
            last_idle_at=self.last_idle_at,
            first_progress_at=self.first_progress_at if self.first_progress_at is not None else elapsed,
            previous=self.latest,
            latest=(elapsed, progress),
        )

    def remaining_seconds(self) -> float | None:
        """Estimated seconds until done, or None while there is no progress to go by."""
        if self.latest is None or self.first_progress_at is None:
            return None
        elapsed, progress = self.latest
        progress = min(progress, 99)
        # Generation began somewhere between the last idle check and the first with progress.
        began = (self.last_idle_at + self.first_progress_at) / 2
        rate = progress / max(elapsed - began, 1.0)
        if self.previous is not None and progress > self.previous[1] and elapsed > self.previous[0]:
            # Blend in the recent rate: progress curves bend, and the end matters most.
            recent = (progress - self.previous[1]) / (elapsed - self.previous[0])
            rate = (rate + recent) / 2
        return (100 - progress) / rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProgressTrack:
        if not data:
            return cls()
        # JSON turned the (elapsed, progress) tuples into lists; everything else is as written.
        return cls(
            **{**data, "previous": _reading(data.get("previous")), "latest": _reading(data.get("latest"))}
        )


def _reading(value: list[Any] | None) -> tuple[float, int] | None:
    return None if value is None else (float(value[0]), int(value[1]))


@dataclass(frozen=True)
class PollPolicy:
    min_seconds: float
    max_seconds: float

    def to_dict(self) -> dict[str, float]:
        return {"min_seconds": self.min_seconds, "max_seconds": self.max_seconds}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> PollPolicy:
        return cls(min_seconds=float(data["min_seconds"]), max_seconds=float(data["max_seconds"]))

    def next_check_at(self, track: ProgressTrack) -> float:
        """Unix time of the next status check, for telling API clients when to poll."""
        seen_at = track.origin + (track.latest[0] if track.latest else track.last_idle_at)
        return seen_at + self.next_delay(track)

    def next_delay(self, track: ProgressTrack) -> float:
        """Seconds to wait before the next status check."""
        remaining = track.remaining_seconds()
        if remaining is None:
            delay = QUEUED_CHECK_SECONDS
        elif remaining < END_GAME_SECONDS:
            delay = remaining + END_GAME_MARGIN_SECONDS
        else:
            delay = remaining * REMAINING_SHARE
        return min(self.max_seconds, max(self.min_seconds, delay))
