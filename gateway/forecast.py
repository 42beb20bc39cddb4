"""When a running job will end, from what was seen of it and what was learned of jobs like it.

The forecast is a distribution of the job's end (seconds since its upstream creation), given
that it had not ended at its newest check, as points (probability, time). It is built from:

- the learned record (gateway.durations): once the job is seen to start rendering closely (the
  last "queued" check and the first "running" one a few seconds apart), that start plus a render
  time longer than it has rendered; otherwise the total time of jobs like it, longer than it has
  run;
- progress, where the provider reports it: an extrapolated end (gateway.polling.ProgressTrack)
  with a spread that shrinks as the job nears its end and as readings grow, weighed against the
  record by precision.

Pure: no clock, no I/O. The planner (gateway.polling.plan) chooses checks by it and shows its
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
# The few seconds in which rendering is known to have begun are split into this many equally
# likely starts.
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
    spread = max(1.0, _progress_doubt(track) * remaining, PROGRESS_FLOOR_SHARE * (now - began))
    if levels:
        median, learned_spread = _middle(levels)
        precision = 1 / spread**2 + 1 / learned_spread**2
        end = (end / spread**2 + median / learned_spread**2) / precision
        spread = math.sqrt(1 / precision)
    return _normal_levels(end, spread, now)


def _progress_doubt(track: ProgressTrack) -> float:
    """Relative spread of the time left as extrapolated from progress: how far curves bend,
    and how little an early reading says. A reading of p % stands for anything up to p + 1 %,
    and rendering began somewhere between the last idle check and the first with progress, so
    the rate is only known to within both shares (1 % after 5 s could be a 2-minute job or an
    8-minute one)."""
    assert track.latest is not None
    assert track.first_progress_at is not None
    elapsed, progress = track.latest
    rendering = max(1.0, elapsed - (track.last_idle_at + track.first_progress_at) / 2)
    unsure_start = (track.first_progress_at - track.last_idle_at) / 2
    return math.sqrt(PROGRESS_SPREAD**2 + (1 / max(progress, 1)) ** 2 + (unsure_start / rendering) ** 2)


def median(levels: Levels) -> float | None:
    return levels[len(levels) // 2][1] if levels else None


def _learned_levels(track: ProgressTrack, learned: LearnedDurations, now: float) -> Levels:
    render = learned.render
    if track.timed_start(now) is not None and trusted(render):
        # Seen to start rendering closely enough (between the last check that said queued and
        # the first that did not): its start plus a render time.
        low = track.last_queued_at if track.last_queued_at is not None else 0.0
        assert track.started_at is not None
        return _weighted_levels(_ends_after(_spread_evenly(low, track.started_at), render, now))
    # Otherwise the total time of jobs like it. The queue waits on record are not used: only
    # waits seen closely are recorded, and those are mostly the long ones (a short wait is
    # usually over before the first check), so they would forecast every job as a late one.
    if not trusted(learned.total):
        return []
    return _weighted_levels(_ends_after([0.0], learned.total, now))


def _spread_evenly(low: float, high: float) -> list[float]:
    if high <= low:
        return [high]
    return [low + (i + 0.5) / START_POINTS * (high - low) for i in range(START_POINTS)]


def _ends_after(starts: list[float], lasts: DurationSketch, now: float) -> list[tuple[float, float]]:
    """Ends (time, weight) of a job that began at one of `starts` (equally likely) and lasts as
    the sketch says, given it had not ended by `now`: from each start, the durations longer
    than it has run, weighed by how likely the job was to run that long from there."""
    ends: list[tuple[float, float]] = []
    total = lasts.total
    for start in starts:
        ran = max(0.0, now - start)
        alive = 1.0 - lasts.cdf_weight(ran) / total
        if alive <= 0.0:
            continue
        weight = alive / (LEVEL_COUNT * len(starts))
        ends.extend((start + last, weight) for last in lasts.quantiles(_LEVELS, above=ran))
    return ends


def _weighted_levels(ends: list[tuple[float, float]]) -> Levels:
    """Levels of weighted ends; empty when (almost) none is left, the job having run past
    nearly every end on record: nothing learned applies then."""
    total = sum(weight for _, weight in ends)
    if total * LEVEL_COUNT < 1.0:
        return []
    ends = sorted(ends)  # the caller's list stays as it was
    levels, cumulative, index = [], 0.0, 0
    for level in _LEVELS:
        while index < len(ends) - 1 and cumulative + ends[index][1] < level * total:
            cumulative += ends[index][1]
            index += 1
        levels.append((level, ends[index][0]))
    return levels


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
