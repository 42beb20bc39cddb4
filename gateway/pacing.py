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

from gateway import azure_sdk as sdk
from gateway.tables import Tables

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
        while True:
            try:
                entity = self._table.get_entity(_PARTITION, row_key)
            except sdk.ResourceNotFoundError:
                entity = None
            next_free = float(entity["next_at"]) if entity else now
            start_at = max(now, next_free)
            row = {"PartitionKey": _PARTITION, "RowKey": row_key, "next_at": start_at + pace.interval}
            try:
                if entity is None:
                    self._table.create_entity(row)
                else:
                    self._table.update_entity(
                        row,
                        mode=sdk.UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=sdk.MatchConditions.IfNotModified,
                    )
            except (sdk.ResourceExistsError, sdk.ResourceModifiedError):
                continue  # another job reserved first; take the slot after it
            return start_at
