"""Pacing of upstream job creations, shared by every app and every gateway instance.

A provider's quota is a few creations per minute per account. Rather than fire and get 429s,
each accepted job reserves the next free creation time in its provider account's Table Storage
row and waits for it on a durable timer. Reservations happen in acceptance order, so the jobs of
one account start in that order; accounts do not hold each other up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.tables import Tables, write_if_unchanged

PACING_TABLE = "pacing"
_PARTITION = "upstream"


@dataclass(frozen=True)
class Pace:
    creates_per_minute: int

    @property
    def interval(self) -> float:
        return 60.0 / self.creates_per_minute if self.creates_per_minute > 0 else 0.0

    def queue_position(self, start_at: float | None, now: float) -> int | None:
        """How many jobs start before one that is due at `start_at`."""
        if start_at is None or not self.interval:
            return None
        return max(0, math.floor((start_at - now) / self.interval))


class UpstreamPacer:
    """Reserves creation times, one schedule row per provider account (`paces` by account name;
    an account not listed goes at `default`)."""

    def __init__(self, tables: Tables, paces: Mapping[str, Pace], *, default: Pace) -> None:
        self._table = tables.get(PACING_TABLE)
        self._paces = dict(paces)
        self._default = default

    def pace(self, provider: str) -> Pace:
        return self._paces.get(provider, self._default)

    def reserve(self, provider: str, now: float) -> float:
        """The time at which the caller may create its job at `provider` (one conditional write)."""
        pace = self.pace(provider)
        if not pace.interval:
            return now
        row_key = f"schedule-{provider}"

        def after(current: Mapping[str, Any] | None) -> dict[str, Any]:
            # The slot after the last one reserved (another job that reserved first pushes ours on).
            start_at = max(now, float(current["next_at"]) if current else now)
            return {"PartitionKey": _PARTITION, "RowKey": row_key, "next_at": start_at + pace.interval}

        written = write_if_unchanged(self._table, _PARTITION, row_key, after)
        return float(written["next_at"]) - pace.interval
