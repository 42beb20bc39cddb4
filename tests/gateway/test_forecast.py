"""The forecast of a job's end (gateway/forecast.py) and the plan made from it
(gateway.polling.plan): pure, in seconds since the job's upstream creation."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from gateway.durations import LearnedDurations
from gateway.forecast import completion_levels, median
from gateway.polling import (
    COLD_FIRST_CHECK_SECONDS,
    COLD_SHARE,
    LIKELY_END_TRUST,
    PollPolicy,
    ProgressTrack,
    _next_check,
    likely_end,
    plan,
)

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


def test_the_first_check_goes_near_the_likely_end_not_before_any_job_ends() -> None:
    # Jobs like it end 118..126 s after creation: a check before 118 s would find every job
    # still running (pure cost), one long after would make them all wait.
    step = plan(POLICY, track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    assert 117 <= 4 + step.delay <= 124
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


def test_a_queued_job_is_forecast_from_the_totals_not_from_the_waits_seen() -> None:
    # Only waits seen closely are recorded, and the short ones are over before the first check:
    # here the three short waits went unseen (began=None), the two long ones were seen. Going
    # by the waits on record, every queued job would be forecast at about 165 s; the totals
    # say most end near 110 s (as the benchmark's queued jobs did).
    seen_long = learned((105.0, None), (110.0, None), (115.0, None), (160.0, 60.0), (170.0, 70.0))
    eta = median(completion_levels(track((0, "queued", 0), (30, "queued", 0)), seen_long))
    assert eta is not None
    assert eta < 140


def test_a_wide_start_is_not_guessed_evenly_but_read_from_the_totals() -> None:
    # Seen queued at 0 s and running at 90 s: it began somewhere in 90 s. Evenly spread, its
    # end would be smeared over 118..212 s; jobs like it end near 122 s, so that is the forecast.
    wide = track((0, "queued", 0), (90, "in_progress", 0))
    levels = completion_levels(wide, STEADY)
    assert median(levels) == pytest.approx(122, abs=4)


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


def test_the_plan_keeps_to_the_shortest_wait_and_a_forecast_may_pass_the_longest() -> None:
    narrow = PollPolicy(min_seconds=5.0, max_seconds=20.0)
    # A forecast bounds the wait itself: the first check goes near the likely end, 20 s or not.
    step = plan(narrow, track((0, "queued", 0), (4, "in_progress", 0)), STEADY)
    assert step.delay > 100
    nearly_done = track((0, "queued", 0), (4, "in_progress", 0), (121, "in_progress", 0))
    assert plan(PollPolicy(min_seconds=0.1, max_seconds=20.0), nearly_done, STEADY).delay < 4.0
    assert 5.0 <= plan(narrow, nearly_done, STEADY).delay < 6.0
    # Without one, the policy's longest wait holds.
    cold = plan(narrow, track((0, "in_progress", 0), (1000, "in_progress", 0)), None)
    assert cold.delay == 20.0


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


def uniform(now: float, low: float, high: float) -> list[tuple[float, float]]:
    """Levels of an end equally likely anywhere in [now + low, now + high]."""
    return [(level, now + low + (high - low) * level) for level in ((i + 0.5) / 48 for i in range(48))]


def lognormal(now: float, median_s: float, sigma: float) -> list[tuple[float, float]]:
    """Levels of an end after `now` whose duration from creation is lognormal."""
    normal = NormalDist(math.log(median_s), sigma)
    ends = [math.exp(normal.inv_cdf((i + 0.5) / 480)) for i in range(480)]
    later = [end for end in ends if end > now]
    return [((i + 0.5) / 48, later[int((i + 0.5) / 48 * len(later))]) for i in range(48)]


def test_no_check_is_planned_before_the_first_end_forecast() -> None:
    # Nothing ends in the next 100 s: a check there finds the job running, every time.
    for weight in (0.01, 1.0, 100.0):
        delay = _next_check(uniform(500.0, 100, 200), 500.0, weight)
        assert delay is not None
        assert 100 <= delay <= 200


def test_a_higher_lag_weight_never_checks_later() -> None:
    delays = [_next_check(uniform(0.0, 100, 200), 0.0, weight) for weight in (0.001, 0.1, 1.0, 10.0)]
    assert delays == sorted(delays, reverse=True)  # type: ignore[type-var]
    assert delays[0] == pytest.approx(200, abs=3)  # lag nearly free: one check, at the end
    assert delays[-1] < 110  # lag dear: right where ends begin


def test_checks_thin_out_in_a_long_tail() -> None:
    # Lognormal durations (median 100 s, long tail): near the middle the hazard is high and the
    # checks close; far in the tail few of the jobs still running end in any one second.
    near = _next_check(lognormal(100.0, 100.0, 0.5), 100.0, 1.0)
    tail = _next_check(lognormal(400.0, 100.0, 0.5), 400.0, 1.0)
    assert near is not None
    assert tail is not None
    assert tail > 3 * near


def test_the_shortest_wait_holds_between_planned_checks() -> None:
    # Ends packed into one second: the plan may not look again sooner than the policy allows.
    delay = _next_check(uniform(0.0, 10, 11), 0.0, 100.0, min_gap=3.0)
    assert delay is not None
    assert delay >= 3.0


def test_a_job_seen_done_is_learned_mostly_where_its_forecast_put_it() -> None:
    # Jobs like it end near 122 s. Seen running at 4 s and done at 200 s, it most likely ended
    # near 122 s: halfway (102 s) would teach the record a duration no job had, and the
    # forecast alone could never learn that jobs end earlier than it says.
    running = track((0, "queued", 0), (4, "in_progress", 0))
    forecast_end = median(completion_levels(running, STEADY))
    assert forecast_end is not None
    ended = likely_end(running, STEADY, 200.0)
    assert ended == pytest.approx(LIKELY_END_TRUST * forecast_end + (1 - LIKELY_END_TRUST) * 102, abs=2)
    assert 102 < ended < forecast_end


def test_without_a_forecast_a_job_seen_done_is_learned_halfway() -> None:
    running = track((0, "queued", 0), (4, "in_progress", 0))
    assert likely_end(running, None, 200.0) == 102.0
    # A forecast that puts no end between the two checks says nothing about where it fell.
    assert likely_end(running, STEADY, 60.0) == 32.0


def test_with_progress_and_no_record_the_plan_goes_by_the_progress_alone() -> None:
    # A kind never seen: 10 % at 50 s (idle at 45 s), 50 % at 90 s: some 40 s to go.
    reading = track(
        (0, "queued", 0), (45, "in_progress", 0), (50, "in_progress", 10), (90, "in_progress", 50)
    )
    remaining = reading.remaining_seconds()
    assert remaining is not None
    step = plan(POLICY, reading, None)
    assert step.eta == pytest.approx(90 + remaining, rel=0.05)
    assert POLICY.min_seconds <= step.delay < remaining
    assert plan(POLICY, track((0, "queued", 0), (45, "in_progress", 0)), None).eta is None


def test_the_learned_end_is_the_middle_forecast_point_between_the_two_checks() -> None:
    running = track((0, "queued", 0), (4, "in_progress", 0))
    inside = [x for _, x in completion_levels(running, STEADY) if 4 < x <= 200]
    assert len(inside) > 3  # distinct points, so the middle one is told apart from others
    expected = LIKELY_END_TRUST * inside[len(inside) // 2] + (1 - LIKELY_END_TRUST) * 102
    assert likely_end(running, STEADY, 200.0) == pytest.approx(expected, abs=1e-9)
