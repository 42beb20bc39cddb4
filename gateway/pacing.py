"""Pacing of upstream job creations, shared by every app and every gateway instance.

Azure's Sora quota is a few creations per minute per deployment. Rather than fire and get 429s,
each accepted job reserves the next free creation time in one Table Storage row and waits for it
on a durable timer. Reservations happen in acceptance order, so jobs start in that order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.tables import Tables

PACING_TABLE = "pacing"
_PARTITION = "upstream"
_ROW = "schedule"


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
    def __init__(self, tables: Tables, pace: Pace) -> None:
        self._table = tables.get(PACING_TABLE)
        self._pace = pace

    def reserve(self, now: float) -> float:
        """The time at which the caller may create its upstream job (one conditional write)."""
        if not self._pace.interval:
            return now
        while True:
            try:
                entity = self._table.get_entity(_PARTITION, _ROW)
            except ResourceNotFoundError:
                entity = None
            next_free = float(entity["next_at"]) if entity else now
            start_at = max(now, next_free)
            row = {"PartitionKey": _PARTITION, "RowKey": _ROW, "next_at": start_at + self._pace.interval}
            try:
                if entity is None:
                    self._table.create_entity(row)
                else:
                    self._table.update_entity(
                        row,
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another job reserved first; take the slot after it
            return start_at
