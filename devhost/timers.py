"""Timer-triggered functions: NCRONTAB schedules (with seconds) and TimeSpan intervals.

Like the Functions host's schedule monitor, the next occurrence is persisted; when the host was
down at that moment the function runs once at start with `past_due` set. An invocation never
overlaps the previous one of the same function. Schedules are evaluated in UTC.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import time
from dataclasses import dataclass

from devhost import rpc
from devhost.functions import IndexedFunction, Invoker
from devhost.history import format_timestamp, parse_timestamp, utc_now
from devhost.store import Store

log = logging.getLogger("devhost.timer")

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?$")
# Searching minute by minute bounds the work for schedules that never match (e.g. Feb 30).
_SEARCH_LIMIT = dt.timedelta(days=366 * 5)


def _field_values(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    def value(token: str) -> int:
        return names[token] if token in names else int(token)

    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = value(first), value(last)
        else:
            start = value(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(v for v in values if low <= v <= high)


def _weekday_values(text: str) -> frozenset[int]:
    # Sunday may be written 0 or 7.
    values = _field_values(text, 0, 7, _DAYS)
    return frozenset((v % 7) for v in values)


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ValueError(f"NCRONTAB needs 6 fields (with seconds), got {expression!r}")
        return cls(
            seconds=_field_values(fields[0], 0, 59, {}),
            minutes=_field_values(fields[1], 0, 59, {}),
            hours=_field_values(fields[2], 0, 23, {}),
            days=_field_values(fields[3], 1, 31, {}),
            months=_field_values(fields[4], 1, 12, _MONTHS),
            weekdays=_weekday_values(fields[5]),
            day_restricted=fields[3] not in ("*", "?"),
            weekday_restricted=fields[5] not in ("*", "?"),
        )

    def _day_matches(self, moment: dt.datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
        day_ok = moment.day in self.days
        weekday_ok = weekday in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        candidate = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = moment + _SEARCH_LIMIT
        while candidate < limit:
            if candidate.month not in self.months or not self._day_matches(candidate):
                candidate = (candidate + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + dt.timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + dt.timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second not in self.seconds:
                candidate += dt.timedelta(seconds=1)
                continue
            return candidate
        raise ValueError("the schedule has no occurrence in the next five years")


@dataclass(frozen=True)
class IntervalSchedule:
    """The TimeSpan form ("00:05:00") some plans allow instead of a cron expression."""

    interval: dt.timedelta

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return moment + self.interval


def resolve_setting(text: str) -> str:
    """A schedule written as %NAME% names an app setting, as in the Functions host."""
    match = re.fullmatch(r"%([^%]+)%", text.strip())
    if match is None:
        return text
    value = os.environ.get(match.group(1))
    if value is None:
        raise ValueError(f"the app setting {match.group(1)} for the schedule is not set")
    return value


def parse_schedule(text: str) -> CronSchedule | IntervalSchedule:
    match = _TIMESPAN.match(text.strip())
    if match:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        interval = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= dt.timedelta(0):
            raise ValueError(f"a timer interval must be positive, got {text!r}")
        return IntervalSchedule(interval)
    return CronSchedule.parse(text)


class TimerTriggers:
    def __init__(self, functions: list[IndexedFunction], invoker: Invoker, store: Store) -> None:
        self._functions = functions
        self._invoker = invoker
        self._store = store
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        for function in self._functions:
            try:
                schedule = parse_schedule(resolve_setting(str(function.trigger.get("schedule", ""))))
            except ValueError as error:
                log.error("timer function %s is not scheduled: %s", function.name, error)
                continue
            self._tasks.append(loop.create_task(self._run(function, schedule)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, function: IndexedFunction, schedule: CronSchedule | IntervalSchedule) -> None:
        stored = self._store.next_occurrence(function.name)
        now = utc_now()
        if function.trigger.get("runOnStartup"):
            await self._invoke(function, past_due=False, last=None, upcoming=schedule.next_after(now))
        elif stored is not None and parse_timestamp(stored) <= now:
            await self._invoke(function, past_due=True, last=None, upcoming=schedule.next_after(now))
        while True:
            upcoming = schedule.next_after(utc_now())
            self._store.set_next_occurrence(function.name, format_timestamp(upcoming))
            await asyncio.sleep(max(0.0, (upcoming - utc_now()).total_seconds()))
            following = schedule.next_after(upcoming)
            late = (utc_now() - upcoming).total_seconds() > 1.0
            await self._invoke(function, past_due=late, last=upcoming, upcoming=following)

    async def _invoke(
        self, function: IndexedFunction, past_due: bool, last: dt.datetime | None, upcoming: dt.datetime
    ) -> None:
        payload = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {
                "Last": format_timestamp(last) if last else None,
                "Next": format_timestamp(upcoming),
                "LastUpdated": format_timestamp(utc_now()),
            },
            "IsPastDue": past_due,
        }
        started = time.monotonic()
        try:
            request = rpc.TypedData(json=json.dumps(payload))
            await self._invoker.invoke(function, {function.trigger_parameter: request})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer function %s failed", function.name)
            return
        log.info(
            "timer function %s ran (past_due=%s, %d ms)",
            function.name,
            past_due,
            (time.monotonic() - started) * 1000,
        )
