"""Provider health: each provider account's recent outcomes, and a cool-down after failures.

Activities record what each upstream call came to; routes with fallback ask `cooling_down`
before sending a job to an account. State lives in Table Storage, one row per account, so every
gateway instance sees the same cool-down, and each update is a read-modify-write conditioned on
the row's ETag (a lost race reads again), so concurrent activities never lose a count.

Cool-down is a circuit breaker with a half-open state: after `failures_to_cool_down` failures in
a row the account is skipped for `cool_down_seconds`. Once that time has passed it is tried
again, but its run of failures is still at the threshold, so one more failure starts a new
cool-down at once; one accepted create closes the circuit (the run goes back to 0).

Health is advisory: storage trouble while recording or reading is logged and swallowed (a
recording lost, or an account treated as up), never raised into a job.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gateway import azure_sdk as sdk
from gateway.tables import (
    HEALTH_TIMEOUTS,
    PROVIDER_HEALTH_TABLE,
    StorageTimeouts,
    Tables,
    write_if_unchanged,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

OUTCOMES = ("accepted", "refused", "failed", "throttled")

log = logging.getLogger(__name__)

_PARTITION = "provider"
# How long `cooling_down` trusts the row it read last (per process): a hot path asks before
# every create, and a cool-down of about a minute does not need fresher news than this.
CACHE_SECONDS = 2.0
# Weight of the newest sample in the latency moving average (exponential: recent calls count
# most, one slow call does not swing it).
_LATENCY_WEIGHT = 0.2
# Conditional writes lost to other writers before a recording is given up (and logged). Every
# loss means another writer succeeded, so this only runs out under heavy contention on one row.
_ATTEMPTS = 24
# Account names that can be a RowKey as they are; any other name is hashed (the row also keeps
# the name, so `states` reports it as configured).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._~-]{1,200}")
_jitter = random.SystemRandom()


@dataclass(frozen=True)
class ProviderState:
    """One provider account's recent record."""

    provider: str
    accepted: int
    refused: int
    failed: int
    throttled: int
    consecutive_failures: int
    last_outcome: str | None
    last_outcome_at: float | None
    latency_ms: float | None  # moving average of accepted creates' latency
    cooling_down_until: float | None

    def up(self, now: float) -> bool:
        """False while cooling down."""
        return self.cooling_down_until is None or now >= self.cooling_down_until

    @classmethod
    def fresh(cls, provider: str) -> ProviderState:
        """The record of an account nothing was recorded for yet."""
        return cls(provider, 0, 0, 0, 0, 0, None, None, None, None)


class ProviderHealth:
    def __init__(
        self,
        tables: Tables,
        *,
        clock: Callable[[], float] = time.time,
        failures_to_cool_down: int = 3,
        cool_down_seconds: float = 60.0,
    ) -> None:
        if failures_to_cool_down < 1 or not cool_down_seconds > 0:
            raise ValueError("failures_to_cool_down must be >= 1 and cool_down_seconds > 0")
        # The table is reached on first use, not here: building the store (at a getter's first
        # call) must not fail or wait when storage is down.
        self._tables = tables
        self._clock = clock
        self._threshold = failures_to_cool_down
        self._cool_down = cool_down_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ProviderState]] = {}  # name -> (monotonic read time, state)

    @property
    def _table(self) -> TableClient:
        return self._tables.get(PROVIDER_HEALTH_TABLE)

    def record(self, provider: str, outcome: str, latency_ms: float | None = None) -> None:
        """Count one outcome of a call to `provider` (best effort: never raises for storage).

        "accepted" ends a run of failures and any cool-down (and feeds `latency_ms` into the
        average); "failed" extends the run and starts a cool-down when it reaches the threshold;
        "refused" and "throttled" only count. An unknown outcome is a caller's bug: ValueError.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        try:
            state = self._update(provider, outcome, latency_ms)
        except Exception as error:  # whatever storage does, the job goes on
            # The account name and the error's type only: no message, which could carry a URL.
            log.warning(
                "provider health: %s outcome of %s not recorded: %s", outcome, provider, type(error).__name__
            )
            return
        self._remember(state)

    def cooling_down(self, provider: str) -> bool:
        """True while `provider` is cooling down, as last read within CACHE_SECONDS (this
        process's own recordings are seen at once). Never raises: when storage cannot answer
        (one short try), the account counts as not cooling down."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(provider)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return not cached[1].up(now)
        try:
            state = self._read(provider, HEALTH_TIMEOUTS)
        except Exception as error:
            log.warning("provider health: state of %s unreadable: %s", provider, type(error).__name__)
            # Remembered too, so an outage costs one short try per account per CACHE_SECONDS.
            state = cached[1] if cached is not None else ProviderState.fresh(provider)
        self._remember(state)
        return not state.up(now)

    def states(self, *, timeouts: StorageTimeouts | None = None) -> dict[str, ProviderState]:
        """Every account with a record, by name (read fresh; storage errors are raised, so a
        health probe can tell storage is down). `timeouts` bounds the read, e.g. HEALTH_TIMEOUTS."""
        options: dict[str, Any] = timeouts.call_options() if timeouts is not None else {}
        entities = self._table.query_entities(f"PartitionKey eq '{_PARTITION}'", **options)
        found = {state.provider: state for state in map(_state_of_entity, entities)}
        for state in found.values():
            self._remember(state)
        return found

    # -- storage ---------------------------------------------------------------------------

    def _read(self, provider: str, timeouts: StorageTimeouts | None = None) -> ProviderState:
        options: dict[str, Any] = timeouts.call_options() if timeouts is not None else {}
        try:
            entity = self._table.get_entity(_PARTITION, _row_key(provider), **options)
        except sdk.ResourceNotFoundError:
            return ProviderState.fresh(provider)
        return _state_of_entity(entity)

    def _update(self, provider: str, outcome: str, latency_ms: float | None) -> ProviderState:
        states: list[ProviderState] = []

        def after(current: Mapping[str, Any] | None) -> dict[str, Any]:
            before = _state_of_entity(current) if current is not None else ProviderState.fresh(provider)
            states.append(self._apply(before, outcome, latency_ms, self._clock()))
            return _entity_of_state(states[-1])

        # A short, growing, random pause after a lost race keeps a crowd of writers out of step.
        write_if_unchanged(
            self._table,
            _PARTITION,
            _row_key(provider),
            after,
            attempts=_ATTEMPTS,
            after_lost_race=lambda attempt: time.sleep(_jitter.uniform(0, 0.005 * (attempt + 1))),
        )
        return states[-1]

    def _apply(
        self, state: ProviderState, outcome: str, latency_ms: float | None, now: float
    ) -> ProviderState:
        counts: dict[str, Any] = {outcome: getattr(state, outcome) + 1}
        counted = replace(state, **counts, last_outcome=outcome, last_outcome_at=now)
        if outcome == "accepted":
            average = counted.latency_ms
            if latency_ms is not None and latency_ms >= 0:
                sample = float(latency_ms)
                average = sample if average is None else average + _LATENCY_WEIGHT * (sample - average)
                average = round(average, 1)
            return replace(counted, consecutive_failures=0, cooling_down_until=None, latency_ms=average)
        if outcome == "failed":
            run = counted.consecutive_failures + 1
            # At or past the threshold every failure (re)starts the cool-down: the half-open
            # retry after a cool-down fails into a new one at once.
            until = now + self._cool_down if run >= self._threshold else counted.cooling_down_until
            return replace(counted, consecutive_failures=run, cooling_down_until=until)
        return counted

    def _remember(self, state: ProviderState) -> None:
        with self._lock:
            self._cache[state.provider] = (time.monotonic(), state)


def _row_key(provider: str) -> str:
    if _PLAIN_NAME.fullmatch(provider):
        return provider
    return "sha256-" + hashlib.sha256(provider.encode()).hexdigest()


_COUNTS = ("accepted", "refused", "failed", "throttled", "consecutive_failures")
_MOMENTS = ("last_outcome_at", "latency_ms", "cooling_down_until")


def _entity_of_state(state: ProviderState) -> dict[str, Any]:
    row: dict[str, Any] = {"PartitionKey": _PARTITION, "RowKey": _row_key(state.provider)}
    row["provider"] = state.provider
    row.update({name: getattr(state, name) for name in _COUNTS})
    # None is left out (REPLACE drops the property): absent reads back as None.
    if state.last_outcome is not None:
        row["last_outcome"] = state.last_outcome
    for name in _MOMENTS:
        value = getattr(state, name)
        if value is not None:
            row[name] = float(value)
    return row


def _state_of_entity(entity: Any) -> ProviderState:
    def count(name: str) -> int:
        value = entity.get(name, 0)
        return int(getattr(value, "value", value) or 0)  # an Int64 reads back as EntityProperty

    def moment(name: str) -> float | None:
        value = entity.get(name)
        return None if value is None else float(value)

    last = entity.get("last_outcome")
    return ProviderState(
        provider=str(entity.get("provider") or entity["RowKey"]),
        accepted=count("accepted"),
        refused=count("refused"),
        failed=count("failed"),
        throttled=count("throttled"),
        consecutive_failures=count("consecutive_failures"),
        last_outcome=None if last is None else str(last),
        last_outcome_at=moment("last_outcome_at"),
        latency_ms=moment("latency_ms"),
        cooling_down_until=moment("cooling_down_until"),
    )
