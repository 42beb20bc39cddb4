"""When to look at an upstream job again, and when it will likely be done.

With a forecast of the job's end (gateway.forecast: learned durations of jobs like it, and its
own progress where the provider reports some) the checks are planned to cost the least in
checks plus LAG_WEIGHT times the expected detection lag: the first near the likely end, closer
together where most jobs end, further apart in a long tail (`_next_check`); progress alone makes
a forecast too. Without either (a kind never seen, no progress) a job is checked more rarely the
longer it runs. The same plan tells API clients when to poll the gateway. Tuned with
`bench/polling.py` against fixed 10-second polling. (`PollPolicy.next_delay`, the policy before
learned durations, still times the checks of orchestrations recorded before the planner.)
"""

from __future__ import annotations

import itertools
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

# What one second of detection lag is worth in status checks (the planner's one trade-off):
# higher buys less lag with more checks. bench/polling.py sweeps it.
LAG_WEIGHT = 2.0
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
    eta = forecast.median(levels)
    planned = _next_check(levels, now, lag_weight, policy.min_seconds) if levels else None
    if planned is not None:
        # A forecast bounds the wait by itself (its checks stop at its end), so the policy's
        # longest wait does not apply: a ten-minute job is first looked at near its end.
        return Plan(delay=max(policy.min_seconds, planned), eta=eta)
    # Nothing to go by: a kind never seen and no progress (progress alone makes a forecast).
    began = track.render_began_at()
    ran = now - (began if began is not None else 0.0)
    delay = max(COLD_FIRST_CHECK_SECONDS, COLD_SHARE * ran)
    return Plan(delay=min(policy.max_seconds, max(policy.min_seconds, delay)), eta=eta)


# How far `likely_end` goes by the forecast rather than halfway between the two checks.
LIKELY_END_TRUST = 0.75


def likely_end(track: ProgressTrack, learned: LearnedDurations | None, seen_done_at: float) -> float:
    """When a job seen done at `seen_done_at` (seconds since creation) most likely ended, for
    the record: between its check before and that one, mostly where the forecast made at the
    check before put it. Planned checks can lie minutes apart (a long job's first check is near
    its likely end), so halfway alone would teach the record durations no job had; the forecast
    alone could never learn that jobs end earlier than it says (no check looks there), so a
    share of halfway keeps pulling the record toward what the checks saw."""
    low = track.last_check_at
    middle = (low + seen_done_at) / 2
    inside = [x for _, x in forecast.completion_levels(track, learned) if low < x <= seen_done_at]
    if not inside:
        return middle
    return LIKELY_END_TRUST * inside[len(inside) // 2] + (1 - LIKELY_END_TRUST) * middle


def _next_check(levels: forecast.Levels, now: float, lag_weight: float, min_gap: float = 0.0) -> float | None:
    """Seconds from `now` to the next check, None when the forecast is empty.

    The checks from now on are chosen together, to cost the least in expected checks plus
    `lag_weight` times the expected detection lag (seconds): a dynamic programme over candidate
    times, from the forecast's end back to now. Each check is paid only by the jobs still
    running at the one before it, so the first check goes where enough of them will have ended
    to be worth it, and checks thin out again in a long tail."""
    slices = _slices(levels, now)
    if not slices:
        return None
    times = _candidate_times(slices, now, min_gap)
    done, weighted = _cumulative(slices, times)  # P(ended by t), E[end; ended by t]
    last = len(times) - 1
    cost = [0.0] * len(times)  # cost[i]: the least expected cost from a check at times[i] on
    following = [last] * len(times)
    for i in range(last - 1, -1, -1):
        running = 1.0 - done[i]
        best, choice = math.inf, last
        for j in range(i + 1, len(times)):
            at = times[j] if j < last else max(times[j], times[i] + min_gap)
            if at < times[i] + min_gap:
                continue
            # Lag of the jobs ending between the two checks: each waits until `at`.
            lag = at * (done[j] - done[i]) - (weighted[j] - weighted[i])
            paid = running + lag_weight * lag
            if paid >= best:
                break  # lag only grows with a later check, and cost[j] is never below 0
            if paid + cost[j] < best:
                best, choice = paid + cost[j], j
        cost[i], following[i] = best, choice
    first = following[0]
    return (times[first] if first < last else max(times[first], now + min_gap)) - now


def _slices(levels: forecast.Levels, now: float) -> list[tuple[float, float, float]]:
    """The forecast as slices (low, high, probability) of even density: each level point is
    the middle of an equal share, so the edges lie halfway between points."""
    xs = [x for _, x in levels]
    if not xs:
        return []
    share = 1.0 / len(xs)
    first_gap = (xs[1] - xs[0]) / 2 if len(xs) > 1 else 1.0
    last_gap = (xs[-1] - xs[-2]) / 2 if len(xs) > 1 else 1.0
    edges = [
        max(now, xs[0] - first_gap),
        *((a + b) / 2 for a, b in itertools.pairwise(xs)),
        xs[-1] + last_gap,
    ]
    slices, carried = [], 0.0
    for low, high in itertools.pairwise(edges):
        carried += share
        if high > low:  # points that coincide make one slice
            slices.append((low, high, carried))
            carried = 0.0
    if carried and slices:
        low, high, probability = slices[-1]
        slices[-1] = (low, high, probability + carried)
    return slices if slices else [(xs[0], xs[0] + 1.0, 1.0)]


# Candidate check times: at least this many across the forecast, and every slice edge.
CANDIDATES = 96


def _candidate_times(slices: list[tuple[float, float, float]], now: float, min_gap: float) -> list[float]:
    """`now`, then times from the forecast's first edge to its last: every slice edge, with
    gaps wider than a step filled in evenly (nothing before the first edge: no job ends there)."""
    start, end = slices[0][0], slices[-1][1]
    step = max(min_gap / 2, (end - start) / CANDIDATES, 0.25)
    times = [now] if start > now else []
    for low, high, _ in slices:
        pieces = max(1, math.ceil((high - low) / step))
        times.extend(low + (high - low) * k / pieces for k in range(pieces))
    times.append(end)
    return times


def _cumulative(
    slices: list[tuple[float, float, float]], times: list[float]
) -> tuple[list[float], list[float]]:
    """At each time: the probability the job has ended, and the integral of end x density up to
    it (for expected lags), with the density even within each slice."""
    done, weighted = [], []
    below_p = below_w = 0.0
    index = 0
    for t in times:
        while index < len(slices) and slices[index][1] <= t:
            low, high, probability = slices[index]
            below_p += probability
            below_w += probability * (low + high) / 2
            index += 1
        p, w = below_p, below_w
        if index < len(slices) and slices[index][0] < t:
            low, high, probability = slices[index]
            part = probability * (t - low) / (high - low)
            p += part
            w += part * (low + t) / 2
        done.append(p)
        weighted.append(w)
    return done, weighted
