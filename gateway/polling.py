"""When to look at an upstream job again, estimated from its own progress.

Sora reports a progress percentage. From how fast it rises since generation began we estimate
when the job will finish, look again after most of that time has passed, and near the end aim
just past the estimated finish. The same estimate tells API clients when to poll the gateway.
Tuned with `bench/polling.py` against fixed 10-second polling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from gateway import forecast
from gateway.durations import LearnedDurations

# While the job shows no progress (still queued upstream) there is nothing to extrapolate from.
QUEUED_CHECK_SECONDS = 45.0
# Look again when this share of the estimated remaining time has passed...
REMAINING_SHARE = 0.7
# ...except near the end, where we aim just past the estimated finish.
END_GAME_SECONDS = 20.0
END_GAME_MARGIN_SECONDS = 1.0
# A start of rendering is learned from only when the checks around it were this close (seconds,
# or share of the job's total time): a start guessed within minutes would smear the render times.
START_PRECISION_SECONDS = 4.0
START_PRECISION_SHARE = 0.05


@dataclass(frozen=True)
class ProgressTrack:
    """What has been seen of one upstream job, in seconds since `origin` (its upstream creation)."""

    origin: float = 0.0  # unix time
    last_idle_at: float = 0.0  # the last check that still showed no progress
    first_progress_at: float | None = None
    previous: tuple[float, int] | None = None  # (elapsed, progress) of the check before the latest
    latest: tuple[float, int] | None = None
    # Phases, from the provider's status words (absent from tracks recorded by older code):
    last_check_at: float = 0.0  # the newest check, whatever it showed
    last_queued_at: float | None = None  # the newest check that said "queued"
    started_at: float | None = None  # the first check that said it runs (or showed progress)

    def observe(self, elapsed: float, progress: int, status: str | None = None) -> ProgressTrack:
        queued = status == "queued" and progress <= 0
        seen = replace(
            self,
            last_check_at=elapsed,
            last_queued_at=elapsed if queued else self.last_queued_at,
            started_at=self.started_at if self.started_at is not None or queued else elapsed,
        )
        if progress <= 0:
            # No progress (yet, or again): what progress said so far no longer holds.
            return replace(seen, last_idle_at=elapsed, first_progress_at=None, previous=None, latest=None)
        return replace(
            seen,
            first_progress_at=self.first_progress_at if self.first_progress_at is not None else elapsed,
            previous=self.latest,
            latest=(elapsed, progress),
        )

    def render_began_at(self) -> float | None:
        """Estimated start of rendering (left the provider's queue), None while still queued.
        A job never seen queued counts from its creation: a provider that tells no phases
        reports a job as running from the start."""
        if self.started_at is None:
            return None
        if self.last_queued_at is None:
            return 0.0
        return (self.last_queued_at + self.started_at) / 2

    def timed_start(self, ended: float) -> float | None:
        """When rendering began, if the checks around it were close enough to learn from for a
        job that ended at `ended` (see gateway.durations.LearnedDurations.observe), else None."""
        began = self.render_began_at()
        if began is None or self.started_at is None:
            return None
        uncertainty = self.started_at - (self.last_queued_at or 0.0)
        return began if uncertainty <= max(START_PRECISION_SECONDS, START_PRECISION_SHARE * ended) else None

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
        latest = _reading(data.get("latest"))
        if "last_check_at" not in data:
            # A track recorded before phases were kept: its newest check is the later of these.
            data = {
                **data,
                "last_check_at": max(float(data.get("last_idle_at") or 0.0), latest[0] if latest else 0.0),
            }
        return cls(**{**data, "previous": _reading(data.get("previous")), "latest": latest})


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


# -- planning from a forecast (gateway.forecast) ------------------------------------------------

# The spacing rule (an inspection schedule, see `_next_check`): checks per second near a time u
# are sqrt(LAG_WEIGHT * h(u)), h being the hazard of the job ending at u among jobs still
# running then. A higher weight buys less detection lag with more checks.
LAG_WEIGHT = 3.0
# With nothing to go by (a kind of job never seen, no progress): look again after this share of
# the time the job has run so far, so a long job is asked less often.
COLD_SHARE = 0.05
COLD_FIRST_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class Plan:
    """When to look next, in seconds after the newest check, and the expected end (seconds
    since the job's upstream creation; None when there is nothing to base it on)."""

    delay: float
    eta: float | None


def plan(
    policy: PollPolicy,
    track: ProgressTrack,
    learned: LearnedDurations | None,
    *,
    lag_weight: float = LAG_WEIGHT,
) -> Plan:
    """The next check and the expected end of one job, from what was seen of it and what was
    learned of jobs like it."""
    now = track.last_check_at
    levels = forecast.completion_levels(track, learned)
    delay = _next_check(levels, now, lag_weight) if levels else None
    if delay is None:
        if track.remaining_seconds() is not None:
            delay = policy.next_delay(track)
        else:
            began = track.render_began_at()
            ran = now - (began if began is not None else 0.0)
            delay = max(COLD_FIRST_CHECK_SECONDS, COLD_SHARE * ran)
    return Plan(delay=min(policy.max_seconds, max(policy.min_seconds, delay)), eta=forecast.median(levels))


def _next_check(levels: forecast.Levels, now: float, lag_weight: float) -> float | None:
    """Seconds from `now` to the next check: walk the forecast and stop where the rule's checks
    per second, summed from now, reach one. None past the forecast's end."""
    used = 0.0
    previous_level, previous_x = 0.0, now
    for level, x in levels:
        width = x - previous_x
        if width > 0:
            # A check late in the spread is made only by the jobs still running by then.
            hazard = (level - previous_level) / width / (1.0 - (level + previous_level) / 2)
            rate = math.sqrt(lag_weight * hazard)
            if used + rate * width >= 1.0:
                return previous_x + (1.0 - used) / rate - now
            used += rate * width
        previous_level, previous_x = level, x
    return None
