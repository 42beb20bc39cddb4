"""When a running job will end, from what was seen of it and what was learned of jobs like it.

The forecast is a distribution of the job's end (seconds since its upstream creation), given
that it had not ended at its newest check, as points (probability, time). It is built from:

- the learned record (gateway.durations): once the job is seen rendering, its start (somewhere
  between the last "queued" check and the first "running" one) plus a render time; while it is
  queued, a queue wait longer than it has waited so far plus a render time; when the phases are
  not known well enough, the total time of jobs like it;
- progress, where the provider reports it: an extrapolated end (gateway.polling.ProgressTrack)
  with a spread that shrinks as the job nears its end, weighed against the record by precision.

Pure: no clock, no I/O. The planner (gateway.polling.plan) spaces checks by it and shows its
median as the ETA.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

from gateway.durations import DurationSketch, LearnedDurations, trusted

if TYPE_CHECKING:
    from gateway.polling import ProgressTrack

Levels = list[tuple[float, float]]  # (probability, seconds since creation), rising

# Points of a distribution a forecast is made of.
LEVEL_COUNT = 48
_LEVELS = tuple((i + 0.5) / LEVEL_COUNT for i in range(LEVEL_COUNT))
# Where the start of rendering is only known to lie in an interval, the interval is split into
# this many equally likely starts.
START_POINTS = 12
# Relative spread of a progress-based estimate of the time left (how far curves bend).
PROGRESS_SPREAD = 0.25
PROGRESS_FLOOR_SHARE = 0.01


def completion_levels(track: ProgressTrack, learned: LearnedDurations | None) -> Levels:
    """The job's end as (probability, time) points, given it had not ended at its newest
    check; empty when nothing is known (a kind never seen, no progress) or when the job has
    run past everything on record."""
    now = track.last_check_at
    levels = _learned_levels(track, learned, now) if learned is not None else []
    remaining = track.remaining_seconds()
    if remaining is None or track.latest is None:
        return levels
    # Progress tells where this job stands; the record how jobs like it spread. Two normal
    # estimates of the end, each weighed by its precision.
    end = track.latest[0] + remaining
    # Curves bend and stall near the end (a job may sit at 99 % for a while): however close the
    # extrapolation says the end is, it is not trusted closer than a share of the time run.
    began = track.render_began_at() or 0.0
    spread = max(1.0, PROGRESS_SPREAD * remaining, PROGRESS_FLOOR_SHARE * (now - began))
    if levels:
        median, learned_spread = _middle(levels)
        precision = 1 / spread**2 + 1 / learned_spread**2
        end = (end / spread**2 + median / learned_spread**2) / precision
        spread = math.sqrt(1 / precision)
    return _normal_levels(end, spread, now)


def median(levels: Levels) -> float | None:
    return levels[len(levels) // 2][1] if levels else None


def _learned_levels(track: ProgressTrack, learned: LearnedDurations, now: float) -> Levels:
    render = learned.render
    if track.started_at is not None and trusted(render):
        # Rendering began between the last check that said queued and the first that did not.
        low = track.last_queued_at if track.last_queued_at is not None else 0.0
        starts = _spread_evenly(low, track.started_at)
        return _conditional(_sums(starts, render), now)
    if track.started_at is None and trusted(learned.queue) and trusted(render):
        waits = [learned.queue.quantile(level, above=now) for level in _levels(START_POINTS)]
        starts = [wait for wait in waits if wait is not None]
        if len(starts) == len(waits):  # else queued longer than any job on record
            return _conditional(_sums(starts, render), now)
    if not trusted(learned.total):
        return []
    ends = [learned.total.quantile(level, above=now) for level in _LEVELS]
    if None in ends:
        return []
    return [(level, end) for level, end in zip(_LEVELS, ends, strict=True) if end is not None]


def _levels(count: int) -> list[float]:
    return [(i + 0.5) / count for i in range(count)]


def _spread_evenly(low: float, high: float) -> list[float]:
    if high <= low:
        return [high]
    return [low + level * (high - low) for level in _levels(START_POINTS)]


def _sums(starts: list[float], render: DurationSketch) -> list[float]:
    """Equally likely ends: each start plus each of the render time's levels."""
    lasts = [render.quantile(level) or 0.0 for level in _LEVELS]
    return sorted(start + last for start in starts for last in lasts)


def _conditional(ends: list[float], now: float) -> Levels:
    """Levels of the ends after `now` (the job had not ended then); empty when (almost) none is."""
    later = [end for end in ends if end > now]
    if len(later) * LEVEL_COUNT < len(ends):
        return []  # past nearly every end on record: nothing learned applies
    step = len(later) / LEVEL_COUNT
    return [(level, later[min(len(later) - 1, int(level * len(later)))]) for level in _LEVELS if step]


def _middle(levels: Levels) -> tuple[float, float]:
    """Median and a normal-equivalent spread (from the quartiles) of level points."""
    xs = [x for _, x in levels]
    quarter = len(xs) // 4
    return xs[len(xs) // 2], max(1.0, (xs[-quarter - 1] - xs[quarter]) / 1.349)


def _normal_levels(mean: float, spread: float, now: float) -> Levels:
    normal = NormalDist(mean, spread)
    done = normal.cdf(now)
    if done > 0.999:
        return []  # should have ended by now: the estimate has nothing more to say
    return [(level, max(now, normal.inv_cdf(done + level * (1 - done)))) for level in _LEVELS]
