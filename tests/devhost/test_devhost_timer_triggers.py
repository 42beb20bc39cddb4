"""Timer-triggered functions and the NCRONTAB schedules they use."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.timers import CronSchedule, IntervalSchedule, parse_schedule
from tests.devhost.devhost_testkit import StartHost

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_ticks: list[tuple[float, bool, str]] = []
_ticks_lock = threading.Lock()


@app.timer_trigger(schedule="* * * * * *", arg_name="timer", run_on_startup=True)
def every_second(timer: func.TimerRequest) -> None:
    with _ticks_lock:
        _ticks.append((time.monotonic(), timer.past_due, type(timer).__name__))


missed_app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_missed: list[bool] = []


@missed_app.timer_trigger(schedule="*/2 * * * * *", arg_name="timer")
async def every_other_second(timer: func.TimerRequest) -> None:
    _missed.append(timer.past_due)


def test_timer_function_runs_on_startup_and_on_schedule(start_host: StartHost) -> None:
    started = time.monotonic()
    host = start_host(app)
    time.sleep(2.3)
    host.stop()
    with _ticks_lock:
        ticks = [tick for tick in _ticks if tick[0] >= started]
    assert len(ticks) >= 3  # on startup, then about every second
    assert ticks[0][0] - started < 1.0
    assert all(kind == "TimerRequest" for _, _, kind in ticks)
    assert ticks[0][1] is False


def test_missed_occurrence_runs_once_past_due_after_a_restart(start_host: StartHost, tmp_path: Path) -> None:
    state = tmp_path / "timers"
    first = start_host(missed_app, state_dir=state)
    time.sleep(0.2)
    first.stop()
    runs_before = len(_missed)
    time.sleep(2.2)  # the stored next occurrence passes while no host runs
    start_host(missed_app, state_dir=state)
    deadline = time.monotonic() + 2
    while len(_missed) == runs_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _missed[runs_before] is True


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", "2024-03-01T12:03:10", "2024-03-01T12:05:00"),
        ("*/15 * * * * *", "2024-03-01T12:03:10", "2024-03-01T12:03:15"),
        ("0 30 9 * * Mon-Fri", "2024-03-01T10:00:00", "2024-03-04T09:30:00"),  # Friday -> Monday
        ("0 0 0 1 Jan *", "2024-03-01T00:00:00", "2025-01-01T00:00:00"),
        ("5,10 0 0 * * 0", "2024-03-01T00:00:00", "2024-03-03T00:00:05"),  # Sunday as 0
        ("0 0 12 * * 7", "2024-03-01T00:00:00", "2024-03-03T12:00:00"),  # Sunday as 7
        ("0 0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
    ],
)
def test_ncrontab_next_occurrence(expression: str, after: str, expected: str) -> None:
    assert CronSchedule.parse(expression).next_after(at(after)) == at(expected)


def test_timespan_schedule_and_invalid_expressions() -> None:
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at("2024-03-01T00:00:00")) == at("2024-03-01T00:00:30")
    with pytest.raises(ValueError, match="6 fields"):
        parse_schedule("*/5 * * * *")
