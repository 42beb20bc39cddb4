"""The forecast of a job's end (gateway/forecast.py) and the plan made from it
(gateway.polling.plan): pure, in seconds since the job's upstream creation."""

from __future__ import annotations

import pytest

from gateway.durations import LearnedDurations
from gateway.forecast import completion_levels, median
from gateway.polling import COLD_FIRST_CHECK_SECONDS, COLD_SHARE, PollPolicy, ProgressTrack, _next_check, plan

POLICY = PollPolicy(min_seconds=3.0, max_seconds=600.0)


def learned(*jobs: tuple[float, float | None]) -> LearnedDurations:
    """A record of (total, began) jobs."""
    record = LearnedDurations()
    for total, began in jobs:
        record = record.observe(total, began=began)
    return record


def track(*checks: tuple[float, str, int]) -> ProgressTrack:
    seen = ProgressTrack(origin=1_000.0)
    for elapsed, status, progress in checks:
        seen = seen.observe(elapsed, progress, status)
    return seen


# 10 jobs rendering 118..122 s after a 5 s queue.
STEADY = learned(*((125.0 + i % 5 - 2, 5.0) for i in range(10)))


def test_a_kind_never_seen_has_no_forecast_and_is_checked_more_rarely_as_it_runs() -> None:
    assert completion_levels(track((0, "in_progress", 0)), LearnedDurations()) == []
    first = plan(POLICY, track((0, "in_progress", 0)), None)
    assert first.eta is None
    assert first.delay == COLD_FIRST_CHECK_SECONDS
    later = plan(POLICY, track((0, "in_progress", 0), (400, "in_progress", 0)), None)
    assert later.delay == pytest.approx(COLD_SHARE * 400)


def test_a_running_job_is_forecast_from_its_start_plus_the_render_time() -> None:
    # Seen queued at 0 s and running at 4 s: it began at about 2 s, so it ends near 122 s.
    levels = completion_levels(track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    assert median(levels) == pytest.approx(122, abs=4)
    assert all(x > 4 for _, x in levels)  # it had not ended at the newest check
    assert [p for p, _ in levels] == sorted(p for p, _ in levels)


def test_the_first_check_waits_a_long_stretch_not_a_few_seconds() -> None:
    # The rule's first step spends its one check on the stretch before the likely end: far
    # from it, a check is cheap insurance (and a progress reading, where there is one).
    step = plan(POLICY, track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    assert 40 < 4 + step.delay < 118
    assert step.eta == pytest.approx(122, abs=4)


def test_checks_tighten_around_the_expected_end() -> None:
    early = plan(POLICY, track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    near = plan(POLICY, track((0, "queued", 0), (4, "in_progress", 0), (117, "in_progress", 0)), STEADY)
    assert near.delay < early.delay / 5


def test_a_job_running_past_everything_on_record_backs_off() -> None:
    late = track((0, "queued", 0), (4, "in_progress", 0), (600, "in_progress", 0))
    assert completion_levels(late, STEADY) == []
    step = plan(POLICY, late, STEADY)
    assert step.eta is None
    assert step.delay == pytest.approx(COLD_SHARE * (600 - 2))


def test_a_queued_job_is_forecast_from_the_queue_wait_plus_the_render_time() -> None:
    queued_long = learned(*((100.0 + wait, wait) for wait in (5.0, 10.0, 15.0, 60.0, 70.0)))
    # Still queued at 30 s: it is one of the long waits (60-70 s), then renders 100 s. (The
    # totals alone would say about 115 s: most jobs like it were done by then.)
    eta = median(completion_levels(track((0, "queued", 0), (30, "queued", 0)), queued_long))
    assert eta == pytest.approx(165, abs=8)


def test_without_phases_the_total_is_used() -> None:
    opaque = learned(*((200.0 + i, 0.0) for i in range(5)))
    eta = median(completion_levels(track((0, "in_progress", 0), (50, "in_progress", 0)), opaque))
    assert eta == pytest.approx(202, abs=6)


def test_progress_pulls_the_forecast_toward_this_jobs_own_pace() -> None:
    # The record says about 122 s; this job is at 90 % after 50 s of rendering: it runs fast.
    fast = track((0, "queued", 0), (4, "in_progress", 0), (40, "in_progress", 60), (52, "in_progress", 90))
    with_progress = median(completion_levels(fast, STEADY))
    assert with_progress is not None
    assert with_progress < 100


def test_the_plan_keeps_to_the_policys_bounds() -> None:
    narrow = PollPolicy(min_seconds=5.0, max_seconds=20.0)
    step = plan(narrow, track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    assert step.delay == 20.0
    near = plan(narrow, track((0, "queued", 0), (4, "in_progress", 0), (121, "in_progress", 0)), STEADY)
    assert near.delay == 5.0


def test_a_start_is_learned_only_when_the_checks_around_it_were_close() -> None:
    close = track((0, "queued", 0), (3, "in_progress", 0))
    assert close.timed_start(ended=120) == pytest.approx(1.5)
    wide = track((0, "queued", 0), (90, "in_progress", 0))
    assert wide.timed_start(ended=120) is None  # somewhere in 90 s: it would smear render times
    never_queued = track((0, "in_progress", 0))
    assert never_queued.timed_start(ended=120) == 0.0  # running from its creation
    assert track((0, "queued", 0)).timed_start(ended=120) is None


def test_a_track_from_before_phases_reads_its_newest_check() -> None:
    old = {
        "origin": 5.0,
        "last_idle_at": 12.0,
        "first_progress_at": 20.0,
        "previous": None,
        "latest": [30.0, 40],
    }
    restored = ProgressTrack.from_dict(old)
    assert restored.last_check_at == 30.0
    assert restored.started_at is None
    assert restored.last_queued_at is None


def test_checks_are_spread_by_the_hazard_not_the_density() -> None:
    """An end equally likely anywhere in the next 100 s: with checks per second sqrt(w x hazard)
    (hazard 1/(100 - x) at x seconds from now), the first check is due where
    2 sqrt(w) (10 - sqrt(100 - x)) reaches 1: with w = 0.04, at x = 43.75 s. Spread by the
    density alone (1/100 everywhere) it would be due at 50 s, later, as if a check made late
    cost as much as one made early, though only the jobs still running make it."""
    now = 500.0
    levels = [(level, now + 100 * level) for level in ((i + 0.5) / 48 for i in range(48))]
    assert _next_check(levels, now, 0.04) == pytest.approx(43.75, abs=1.0)
