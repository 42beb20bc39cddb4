"""Exact rolling-window quota per app, in one Table Storage row per app.

The row lists the admissions of the last day. Admitting is read, decide, write-if-unchanged
(ETag): two concurrent admissions cannot both see the last free slot, so N simultaneous
requests with R slots left admit exactly min(N, R).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.tables import Tables

QUOTA_TABLE = "quota"
WINDOWS: dict[str, int] = {"hour": 3600, "day": 86400}
_ROW = "usage"
Entries = list[tuple[float, str]]  # (unix time taken, ticket) of each admission in the last day


@dataclass(frozen=True)
class Limits:
    hour: int
    day: int

    def of(self, window: str) -> int:
        return self.hour if window == "hour" else self.day

    @classmethod
    def for_plan(cls, plan_limits: Mapping[str, Mapping[str, int] | None], plan: str) -> Limits | None:
        """The plan's limits, or None when the plan may not generate video."""
        limits = plan_limits.get(plan)
        if not limits:
            return None
        return cls(hour=int(limits["hour"]), day=int(limits["day"]))


@dataclass(frozen=True)
class Usage:
    """A snapshot of an app's quota at `now`."""

    limits: Limits
    used: dict[str, int]
    resets_at: dict[str, int | None]  # when one more slot frees, per window

    def remaining(self, window: str) -> int:
        return max(self.limits.of(window) - self.used[window], 0)

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-hour": str(self.limits.hour),
            "x-ratelimit-remaining-hour": str(self.remaining("hour")),
            "x-ratelimit-limit-day": str(self.limits.day),
            "x-ratelimit-remaining-day": str(self.remaining("day")),
        }


@dataclass(frozen=True)
class Admission:
    admitted: bool
    usage: Usage
    window: str | None = None  # the exhausted window when refused
    retry_after: int | None = None


class QuotaStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.get(QUOTA_TABLE)

    def admit(self, app_id: str, limits: Limits, ticket: str, now: float) -> Admission:
        """Take one slot for `ticket` (a job id) if both windows allow it (see `decide`).

        Taking the same ticket twice takes one slot: a retried request is not counted again.
        """
        while True:
            entries, etag = self._read(app_id, now)
            admission = decide(entries, limits, ticket, now)
            if not admission.admitted or holds(entries, ticket):
                return admission
            if self._write(app_id, [*entries, (now, ticket)], etag):
                return admission

    def release(self, app_id: str, ticket: str, now: float) -> bool:
        """Give back the slot taken for `ticket`; False when it held none (idempotent)."""
        while True:
            entries, etag = self._read(app_id, now)
            if not holds(entries, ticket):
                return False
            if self._write(app_id, [entry for entry in entries if entry[1] != ticket], etag):
                return True

    def usage(self, app_id: str, limits: Limits, now: float) -> Usage:
        entries, _ = self._read(app_id, now)
        return usage_of(entries, limits, now)

    def _read(self, app_id: str, now: float) -> tuple[Entries, str | None]:
        try:
            entity = self._table.get_entity(app_id, _ROW)
        except ResourceNotFoundError:
            return [], None
        entries = [(float(at), str(ticket)) for at, ticket in json.loads(entity.get("entries") or "[]")]
        # Only the last day matters; dropping older entries keeps the row small.
        fresh = [entry for entry in entries if entry[0] > now - WINDOWS["day"]]
        return fresh, entity.metadata["etag"]

    def _write(self, app_id: str, entries: Entries, etag: str | None) -> bool:
        entity: dict[str, Any] = {
            "PartitionKey": app_id,
            "RowKey": _ROW,
            "entries": json.dumps([[round(at, 3), ticket] for at, ticket in entries], separators=(",", ":")),
        }
        try:
            if etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False  # someone else wrote first: decide again on fresh data
        return True


def holds(entries: Entries, ticket: str) -> bool:
    """Whether `ticket` already holds a slot."""
    return any(entry_ticket == ticket for _, entry_ticket in entries)


def decide(entries: Entries, limits: Limits, ticket: str, now: float) -> Admission:
    """Whether `ticket` may have a slot, given the admissions `entries`, at `now`. Pure.

    A ticket that holds a slot keeps it. Otherwise both rolling windows must have room; a refusal
    names the first full window and when its next slot frees (whole seconds, at least 1, at most
    the window). When admitted, the usage counts the new slot.
    """
    if holds(entries, ticket):
        return Admission(admitted=True, usage=usage_of(entries, limits, now))
    for window, seconds in WINDOWS.items():
        in_window = sorted(at for at, _ in entries if at > now - seconds)
        if len(in_window) >= limits.of(window):
            # The slot that frees first is the one taken longest ago in this window;
            # when the limit was lowered, count from the entry that brings us under it.
            freeing = in_window[len(in_window) - limits.of(window)] if limits.of(window) else None
            wait = seconds if freeing is None else math.ceil(freeing + seconds - now)
            return Admission(
                admitted=False,
                usage=usage_of(entries, limits, now),
                window=window,
                retry_after=min(max(wait, 1), seconds),
            )
    return Admission(admitted=True, usage=usage_of([*entries, (now, ticket)], limits, now))


def usage_of(entries: Entries, limits: Limits, now: float) -> Usage:
    """Slots used per window at `now`, and when one more frees."""
    used: dict[str, int] = {}
    resets_at: dict[str, int | None] = {}
    for window, seconds in WINDOWS.items():
        in_window = sorted(at for at, _ in entries if at > now - seconds)
        used[window] = len(in_window)
        resets_at[window] = math.ceil(in_window[0] + seconds) if in_window else None
    return Usage(limits=limits, used=used, resets_at=resets_at)
