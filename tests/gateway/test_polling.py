"""The polling policy (gateway/polling.py), pure: estimates from progress, and the next delay."""

from __future__ import annotations

import json

import pytest

from gateway.polling import (
    END_GAME_MARGIN_SECONDS,
    QUEUED_CHECK_SECONDS,
    REMAINING_SHARE,
    PollPolicy,
    ProgressTrack,
)

POLICY = PollPolicy(min_seconds=3.0, max_seconds=60.0)


def seen(*readings: tuple[float, int], origin: float = 1000.0) -> ProgressTrack:
    track = ProgressTrack(origin=origin)
    for elapsed, progress in readings:
        track = track.observe(elapsed, progress)
    return track


# --- what a track remembers ------------------------------------------------------------------------


def test_checks_without_progress_only_move_the_last_idle_time() -> None:
    track = seen((5, 0), (12, 0))
    assert (track.last_idle_at, track.first_progress_at, track.latest) == (12, None, None)
    assert track.remaining_seconds() is None  # nothing to extrapolate from


def test_the_first_progress_is_remembered_and_readings_shift() -> None:
    track = seen((5, 0), (15, 20), (20, 50))
    assert track.first_progress_at == 15
    assert (track.previous, track.latest) == ((15, 20), (20, 50))
    assert track.last_idle_at == 5


def test_progress_falling_back_to_zero_starts_over() -> None:
    track = seen((5, 0), (15, 20), (25, 0))
    assert (track.last_idle_at, track.first_progress_at, track.previous, track.latest) == (
        25,
        None,
        None,
        None,
    )


# --- the estimate --------------------------------------------------------------------------------


def test_one_reading_extrapolates_from_the_midpoint_of_the_start() -> None:
    # Generation began between the idle check at 5 s and the first progress at 15 s: at 10 s.
    # 20 % in 5 s is 4 %/s, so 80 % more takes 20 s.
    assert seen((5, 0), (15, 20)).remaining_seconds() == pytest.approx(20.0)


def test_two_readings_blend_the_overall_and_the_recent_rate() -> None:
    # Overall 50 % in 10 s = 5 %/s; recently 30 % in 5 s = 6 %/s; blended 5.5 %/s for 50 % more.
    assert seen((5, 0), (15, 20), (20, 50)).remaining_seconds() == pytest.approx(50 / 5.5)


def test_a_stalled_recent_reading_uses_the_overall_rate_only() -> None:
    assert seen((5, 0), (15, 20), (20, 20)).remaining_seconds() == pytest.approx(80 / 2.0)


def test_a_reading_of_100_still_leaves_a_little_to_wait_for() -> None:
    # Progress is capped at 99 for the estimate: the job is done only when the upstream says so.
    assert seen((0, 0), (10, 100)).remaining_seconds() == pytest.approx(1 / (99 / 5))


def test_time_since_the_start_is_at_least_a_second() -> None:
    # The first progress arrives right at the estimated start: the rate must not divide by ~0.
    assert seen((10, 0), (10, 10)).remaining_seconds() == pytest.approx(90 / 10)


# --- the next delay ------------------------------------------------------------------------------


def test_a_job_without_progress_is_checked_at_the_queued_interval() -> None:
    assert POLICY.next_delay(seen((5, 0))) == QUEUED_CHECK_SECONDS


def test_far_from_the_end_most_of_the_remaining_time_passes_first() -> None:
    track = seen((0, 0), (10, 10))  # 10 % in the 5 s since the start at 5 s: 45 s to go
    assert POLICY.next_delay(track) == pytest.approx(45 * REMAINING_SHARE)


def test_near_the_end_the_check_aims_just_past_the_finish() -> None:
    track = seen((5, 0), (15, 20), (20, 50))  # about 9 s to go
    assert POLICY.next_delay(track) == pytest.approx(50 / 5.5 + END_GAME_MARGIN_SECONDS)


@pytest.mark.parametrize(
    ("policy", "track", "expected"),
    [
        (PollPolicy(3.0, 30.0), seen((5, 0)), 30.0),  # the queued interval, capped
        (PollPolicy(3.0, 60.0), seen((0, 0), (100, 1)), 60.0),  # hours to go, capped
        (PollPolicy(3.0, 60.0), seen((0, 0), (2, 98)), 3.0),  # a second to go, floored
        (PollPolicy(50.0, 60.0), seen((5, 0)), 50.0),  # the floor also lifts the queued interval
    ],
    ids=["queued-capped", "long-capped", "short-floored", "queued-floored"],
)
def test_the_delay_stays_within_the_policys_bounds(
    policy: PollPolicy, track: ProgressTrack, expected: float
) -> None:
    assert policy.next_delay(track) == pytest.approx(expected)


def test_the_next_check_is_timed_from_the_latest_reading() -> None:
    with_progress = seen((5, 0), (15, 20), (20, 50))
    assert POLICY.next_check_at(with_progress) == pytest.approx(1000 + 20 + POLICY.next_delay(with_progress))
    idle = seen((7, 0))
    assert POLICY.next_check_at(idle) == pytest.approx(1000 + 7 + QUEUED_CHECK_SECONDS)


# --- across the orchestration's JSON boundary ------------------------------------------------------


def test_a_track_survives_json() -> None:
    track = seen((5, 0), (15, 20), (20, 50), origin=1234.5)
    restored = ProgressTrack.from_dict(json.loads(json.dumps(track.to_dict())))
    assert restored == track
    assert restored.remaining_seconds() == track.remaining_seconds()
    assert ProgressTrack.from_dict(None) == ProgressTrack()


def test_a_policy_survives_json() -> None:
    assert PollPolicy.from_dict(json.loads(json.dumps(POLICY.to_dict()))) == POLICY


def test_one_percent_is_progress() -> None:
    track = seen((5, 0), (10, 1))
    assert (track.first_progress_at, track.latest) == (10, (10, 1))


def test_without_a_first_progress_time_there_is_no_estimate() -> None:
    assert ProgressTrack(latest=(10.0, 50)).remaining_seconds() is None


def test_a_reading_at_the_same_time_as_the_one_before_is_not_a_recent_rate() -> None:
    # 30 % in 10 s since the start at 0 s; no time passed since the reading of 20 %.
    track = ProgressTrack(first_progress_at=0.0, previous=(10.0, 20), latest=(10.0, 30))
    assert track.remaining_seconds() == pytest.approx(70 / 3)


def test_twenty_seconds_to_go_is_not_yet_the_end() -> None:
    track = ProgressTrack(first_progress_at=0.0, latest=(80.0, 80))  # 80 % in 80 s: 20 s to go
    assert track.remaining_seconds() == pytest.approx(20.0)
    assert POLICY.next_delay(track) == pytest.approx(20 * REMAINING_SHARE)
