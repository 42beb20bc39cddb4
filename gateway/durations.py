"""How long finished jobs took, learned per provider, model, size and duration.

Status checks are cheap to skip and costly to make late: knowing how long a kind of job usually
takes lets the pipeline look first near its likely end and tell the app when it will be ready.
Each kind of job (provider account, provider model, size, seconds) has one small Table Storage
row holding three `DurationSketch`es: time in the provider's queue, render time, and the total
from upstream creation to completion.

A sketch is a histogram over log-spaced buckets (4 % wide, 1 s to about 5 h), so its size is
bounded whatever the traffic (at most BUCKETS numbers, in practice a few dozen), and each job's
weight decays as newer jobs arrive, so the record follows a provider that speeds up or slows
down. Quantiles are read from it, conditional on "still not done after x seconds", which is
what a running job needs.

Learning is best effort: a recording lost to storage trouble or to a crowd of writers is logged,
never raised into a job.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gateway import azure_sdk as sdk
from gateway.tables import DURATIONS_TABLE, Tables, write_if_unchanged

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

FLOOR_SECONDS = 1.0
BUCKET_RATIO = 1.04
BUCKETS = 250  # 1.04 ** 250 s is about 5.4 h: longer than any job is allowed to run
# Each new job multiplies the weight of those before it by this: the last ~50 jobs carry most of
# the record, so a provider's change of pace shows within a day of ordinary traffic.
DECAY = 0.98
# Buckets whose weight decayed below this are dropped (they no longer move any quantile).
NEGLIGIBLE = 0.01
# Fewer jobs than this and the record is not trusted yet (the caller falls back to progress).
MIN_JOBS = 3
# Weight (in jobs) a recorded bucket lends to each empty stretch beside it (see _knots).
GAP_SHARE = 0.5

_LOG_RATIO = math.log(BUCKET_RATIO)


def _bucket(seconds: float) -> int:
    if seconds <= FLOOR_SECONDS:
        return 0
    return min(BUCKETS - 1, int(math.log(seconds / FLOOR_SECONDS) / _LOG_RATIO))


def _edges(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else FLOOR_SECONDS * BUCKET_RATIO**index
    return low, FLOOR_SECONDS * BUCKET_RATIO ** (index + 1)


@dataclass(frozen=True)
class DurationSketch:
    """A decaying histogram of durations in seconds; `weights` maps bucket index to weight."""

    weights: Mapping[int, float] = field(default_factory=dict)

    @classmethod
    def counting(cls, durations: Iterable[float]) -> DurationSketch:
        """Every duration weighing one, none decayed: a known distribution rather than a record
        that follows a provider's pace (for benchmarks and tests)."""
        weights: dict[int, float] = {}
        for seconds in durations:
            index = _bucket(max(0.0, seconds))
            weights[index] = weights.get(index, 0.0) + 1.0
        return cls(weights)

    @property
    def total(self) -> float:
        return sum(self.weights.values())

    def add(self, seconds: float) -> DurationSketch:
        index = _bucket(max(0.0, seconds))
        decayed = {i: w * DECAY for i, w in self.weights.items() if w * DECAY >= NEGLIGIBLE}
        decayed[index] = decayed.get(index, 0.0) + 1.0
        return DurationSketch(decayed)

    def cdf_weight(self, seconds: float) -> float:
        """Weight of the durations up to `seconds` (see `_knots`)."""
        knots = self._knots
        if not knots or seconds <= knots[0][0]:
            return 0.0
        for (x0, c0), (x1, c1) in itertools.pairwise(knots):
            if seconds < x1:
                return c0 + (c1 - c0) * (seconds - x0) / (x1 - x0)
        return knots[-1][1]

    def quantile(self, q: float, *, above: float = 0.0) -> float | None:
        """The q-quantile of the durations longer than `above` (how long a job that has run
        `above` seconds will take in all); None when nothing recorded lasted that long."""
        found = self.quantiles([q], above=above)
        return found[0] if found else None

    def quantiles(self, levels: Sequence[float], *, above: float = 0.0) -> list[float]:
        """`quantile` at each of the rising `levels` in one pass; empty when nothing recorded
        lasted longer than `above`."""
        knots = self._knots
        total = knots[-1][1] if knots else 0.0
        floor = self.cdf_weight(above) if above > 0 else 0.0
        remaining = total - floor
        if remaining <= 1e-9 * max(total, 1.0):
            return []
        found = []
        segments = iter(itertools.pairwise(knots))
        (x0, c0), (x1, c1) = next(segments)
        for level in levels:
            target = floor + min(max(level, 0.0), 1.0) * remaining
            while (target > c1 or c1 <= c0) and (segment := next(segments, None)) is not None:
                (x0, c0), (x1, c1) = segment
            inside = (target - c0) / (c1 - c0) if c1 > c0 else 1.0
            found.append(max(above, x0 + (x1 - x0) * min(1.0, inside)))
        return found

    @cached_property
    def _knots(self) -> list[tuple[float, float]]:
        """The cumulative weight as a broken line through (duration, weight up to it): even
        inside each bucket, and between two recorded buckets with an empty stretch between
        them, a share of a job's weight from each side (GAP_SHARE of at most one job) spread
        over the stretch. A few jobs on record must not promise that nothing ends between
        them; many jobs in one bucket say where the weight is, and keep nearly all of it."""
        indices = sorted(self.weights)
        if not indices:
            return []
        knots = [(_edges(indices[0])[0], 0.0)]
        cumulative = 0.0
        for position, index in enumerate(indices):
            low, high = _edges(index)
            weight = self.weights[index]
            share = GAP_SHARE * min(weight, 1.0)
            gap_before = position > 0 and _edges(indices[position - 1])[1] < low
            gap_after = position + 1 < len(indices) and _edges(indices[position + 1])[0] > high
            if gap_before:
                previous = self.weights[indices[position - 1]]
                cumulative += GAP_SHARE * min(previous, 1.0) + share
                knots.append((low, cumulative))
            cumulative += weight - share * gap_before - share * gap_after
            knots.append((high, cumulative))
        return knots

    def to_json(self) -> str:
        return json.dumps({str(i): round(w, 4) for i, w in sorted(self.weights.items())})

    @classmethod
    def from_json(cls, text: str | None) -> DurationSketch:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({int(i): float(w) for i, w in raw.items() if 0 <= int(i) < BUCKETS and float(w) > 0})


@dataclass(frozen=True)
class JobKind:
    """What a job's duration depends on: where it runs and what it makes."""

    provider: str
    model: str
    size: str
    seconds: str

    @property
    def row_key(self) -> str:
        # Model names may hold '/' (fal's apps), which a RowKey may not: hashed, and the parts
        # are kept in the row beside it.
        text = "\n".join((self.provider, self.model, self.size, self.seconds))
        return hashlib.sha256(text.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class LearnedDurations:
    """What is known of one kind of job. `queue` and `render` hold only jobs whose start of
    rendering was seen closely (see `observe`); `total` holds every finished job."""

    queue: DurationSketch = field(default_factory=DurationSketch)
    render: DurationSketch = field(default_factory=DurationSketch)
    total: DurationSketch = field(default_factory=DurationSketch)
    jobs: int = 0

    def observe(self, total: float, *, began: float | None = None) -> LearnedDurations:
        """Add one finished job: `total` seconds from creation to completion; `began`, when
        known closely, the seconds it waited in the provider's queue."""
        timed = began is not None and 0 <= began <= total
        return LearnedDurations(
            queue=self.queue.add(began) if timed and began is not None else self.queue,
            render=self.render.add(total - began) if timed and began is not None else self.render,
            total=self.total.add(total),
            jobs=self.jobs + 1,
        )


def trusted(sketch: DurationSketch) -> bool:
    """Enough jobs in the sketch to plan by: MIN_JOBS' worth of (decayed) weight."""
    return sketch.total >= MIN_JOBS * DECAY ** (MIN_JOBS - 1) - 1e-9


_PARTITION = "kind"
# How long a process trusts a record it read: each status check asks, and a record moved by one
# job more does not need to be seen within the minute.
CACHE_SECONDS = 60.0
# Conditional writes lost to other writers before one job's durations are given up (logged).
_ATTEMPTS = 24
_jitter = random.SystemRandom()


class DurationStore:
    """The learned durations in Table Storage: one row per JobKind."""

    def __init__(self, tables: Tables, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tables = tables  # reached on first use, never when the store is built
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[JobKind, tuple[float, LearnedDurations]] = {}

    @property
    def _table(self) -> TableClient:
        return self._tables.get(DURATIONS_TABLE)

    def learned(self, kind: JobKind) -> LearnedDurations:
        """The record of `kind` (empty when none); read at most every CACHE_SECONDS per process.
        Never raises: storage trouble reads as "nothing learned" (the caller falls back)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(kind)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            entity: Mapping[str, Any] | None = self._table.get_entity(_PARTITION, kind.row_key)
        except sdk.ResourceNotFoundError:
            entity = None
        except Exception as error:
            log.warning("durations of %s unreadable: %s", kind.model, type(error).__name__)
            return cached[1] if cached is not None else LearnedDurations()
        record = _record_of(entity)
        with self._lock:
            self._cache[kind] = (now, record)
        return record

    def record(self, kind: JobKind, total: float, *, began: float | None = None) -> None:
        """Add one finished job (see LearnedDurations.observe); best effort, never raises."""
        written: list[LearnedDurations] = []

        def after(current: Mapping[str, Any] | None) -> dict[str, Any]:
            written.append(_record_of(current).observe(total, began=began))
            return _entity_of(kind, written[-1])

        try:
            # A short, growing, random pause after a lost race keeps racing writers out of step.
            write_if_unchanged(
                self._table,
                _PARTITION,
                kind.row_key,
                after,
                attempts=_ATTEMPTS,
                after_lost_race=lambda attempt: time.sleep(_jitter.uniform(0, 0.005 * (attempt + 1))),
            )
        except Exception as error:
            log.warning("durations of %s not recorded: %s", kind.model, type(error).__name__)
            return
        with self._lock:
            self._cache[kind] = (self._clock(), written[-1])


def _record_of(entity: Mapping[str, Any] | None) -> LearnedDurations:
    if entity is None:
        return LearnedDurations()
    return LearnedDurations(
        queue=DurationSketch.from_json(entity.get("queue")),
        render=DurationSketch.from_json(entity.get("render")),
        total=DurationSketch.from_json(entity.get("total")),
        jobs=int(entity.get("jobs") or 0),
    )


def _entity_of(kind: JobKind, record: LearnedDurations) -> dict[str, Any]:
    return {
        "PartitionKey": _PARTITION,
        "RowKey": kind.row_key,
        "provider": kind.provider,
        "model": kind.model,
        "size": kind.size,
        "seconds": kind.seconds,
        "jobs": record.jobs,
        "queue": record.queue.to_json(),
        "render": record.render.to_json(),
        "total": record.total.to_json(),
    }
