"""The command line's progress line: the time-left estimate and what it shows (pure functions)."""

from __future__ import annotations

import io

import pytest

from cli.progress import Progress, TimeLeft, describe


def test_time_left_extrapolates_from_the_first_moving_reading() -> None:
    eta = TimeLeft()
    assert eta.update(0, 100.0) is None  # queued: nothing to go on
    assert eta.update(10, 110.0) is None  # the origin
    # 30 points in 6 s: 5 points a second, 60 points to go.
    assert eta.update(40, 116.0) == pytest.approx(12.0)
    assert eta.update(40, 117.0) == pytest.approx(60 * 7 / 30)
    assert eta.update(100, 120.0) is None  # done


def test_time_left_needs_movement() -> None:
    eta = TimeLeft()
    eta.update(20, 10.0)
    assert eta.update(20, 30.0) is None


def test_the_line_shows_queue_position_and_time_left() -> None:
    line = describe({"status": "in_progress", "progress": 40, "queue_position": 2}, 20.4, 11.6)
    assert line == "in_progress  40%  queue position 2  ~12s left  20s elapsed"
    assert "left" not in describe({"status": "queued", "progress": 0}, 3.0)


def test_a_terminal_bar_carries_the_estimate_once_progress_moves() -> None:
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    progress = Progress(stream, "video_1")
    progress.update({"status": "in_progress", "progress": 10})
    assert "left" not in stream.getvalue()
    progress.time_left.origin = (10, progress.time_left.origin[1] - 5.0)  # type: ignore[index]
    progress.update({"status": "in_progress", "progress": 60})
    assert "s left" in stream.getvalue().rsplit("\r", 1)[-1]
    assert "[##################------------]" in stream.getvalue()
