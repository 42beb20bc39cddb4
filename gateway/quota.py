"""Exact rolling-window quota per app, in Table Storage, with bounded rows.

Each app's partition holds one state row and one row per ticket:

- the state row keeps the time (milliseconds) of every admission of the last day, sorted,
  packed as 4-byte offsets from a base across several binary properties (an entity may be
  1 MiB, a property 64 KiB): 229,374 admissions a day fit;
- a ticket row ("which job holds a slot, taken when") lets a refund find its slot and keeps a
  retried admission from taking a second one.

An admission is one entity-group transaction: the state row replaced if unchanged (ETag) plus
the ticket row inserted. Two concurrent admissions cannot both see the last free slot, so N
simultaneous requests with R slots left admit exactly min(N, R). The last state seen is kept
per app in process, so a steady stream of admissions writes without reading first; a stale
ETag fails the write (412) and the admission reads, decides and writes again.

Money rides in the same rows (gateway.budgets): the state row carries each calendar window's
reserved and spent totals (integers, micro-units), the ticket row the amount it reserved and
whether it is still open. Admitting reserves in the same transaction that takes the slot, so the
budget holds exactly as the count does; releasing (slot and money back) and settling (the
reservation becomes a charge) are again one conditional transaction over the state row and the
ticket row, and only an open ticket changes the totals, so a retried or repeated settlement
cannot count twice.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import azure_sdk as sdk
from gateway.budgets import BUDGET_WINDOWS, Budget, Money, Totals, crossed, overrun, remaining
from gateway.tables import Tables

if TYPE_CHECKING:
    from azure.data.tables import TableClient

QUOTA_TABLE = "quota"
WINDOWS: dict[str, int] = {"hour": 3600, "day": 86400}
DAY_MS = WINDOWS["day"] * 1000
STATE_ROW = "usage"
TICKET_PREFIX = "ticket-"  # ticket rows sort between these two prefixes
_TICKET_END = "ticket."
_CHUNK_BYTES = 65_536  # the Table Storage limit of one binary property
_CHUNKS = 14  # 14 x 64 KiB, plus the legacy list (at most 64 KiB), stays under the 1 MiB entity limit
_BASE_BYTES = 8
# The most admissions one state row can hold: a day limit above this is served as this.
CAPACITY = (_CHUNKS * _CHUNK_BYTES - _BASE_BYTES) // 4
# Ticket rows of expired admissions are deleted this many at a time (one transaction).
SWEEP_BATCH = 100
_CACHED_APPS = 256
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
    money: Money = field(default_factory=Money)  # the budget windows' totals, as of the snapshot
    budget: Budget | None = None
    crossed: tuple[str, ...] = ()  # the budget windows whose threshold this admission crossed

    def remaining(self, window: str) -> int:
        return max(self.limits.of(window) - self.used[window], 0)

    def budget_remaining(self) -> int | None:
        """What the tightest budget window has left (micro-units); None: no budget."""
        left = [remaining(self.money, self.budget, window) for window in BUDGET_WINDOWS]
        known = [value for value in left if value is not None]
        return min(known) if known else None

    def headers(self) -> dict[str, str]:
        left = self.budget_remaining()
        return {
            "x-ratelimit-limit-hour": str(self.limits.hour),
            "x-ratelimit-remaining-hour": str(self.remaining("hour")),
            "x-ratelimit-limit-day": str(self.limits.day),
            "x-ratelimit-remaining-day": str(self.remaining("day")),
            # In the currency's units, exact to the micro-unit; "unlimited" without a budget.
            "x-budget-remaining": "unlimited" if left is None else f"{left / 1_000_000:.6f}",
        }


@dataclass(frozen=True)
class Admission:
    admitted: bool
    usage: Usage
    window: str | None = None  # the exhausted window when refused
    retry_after: int | None = None
    budget: bool = False  # refused by the money budget (then `window` is "day" or "month")


# --- Pure decisions -------------------------------------------------------------------------
# The store works on sorted admission times in milliseconds; `decide` and `usage_of` keep the
# ticket-carrying form for callers and tests that think in (time, ticket) pairs.


def holds(entries: Entries, ticket: str) -> bool:
    """Whether `ticket` already holds a slot."""
    return any(entry_ticket == ticket for _, entry_ticket in entries)


def decide(entries: Entries, limits: Limits, ticket: str, now: float) -> Admission:
    """Whether `ticket` may have a slot, given the admissions `entries`, at `now`. Pure.

    A ticket that holds a slot keeps it. Otherwise both rolling windows must have room; a refusal
    names the first full window and when its next slot frees (whole seconds, at least 1, at most
    the window). When admitted, the usage counts the new slot.
    """
    times = sorted(to_ms(at) for at, _ in entries)
    if holds(entries, ticket):
        return Admission(admitted=True, usage=usage_at(times, limits, now))
    return decide_at(times, limits, now)


def usage_of(entries: Entries, limits: Limits, now: float) -> Usage:
    """Slots used per window at `now`, and when one more frees."""
    return usage_at(sorted(to_ms(at) for at, _ in entries), limits, now)


def to_ms(at: float) -> int:
    return round(at * 1000)


def _in_window_from(times: Sequence[int], seconds: int, now: float) -> int:
    """Index of the first admission inside the window (now - seconds, now]."""
    return bisect.bisect_right(times, (now - seconds) * 1000)


def decide_at(times: Sequence[int], limits: Limits, now: float) -> Admission:
    """`decide` for a new ticket over sorted admission times (ms). Pure."""
    for window, seconds in WINDOWS.items():
        first = _in_window_from(times, seconds, now)
        used = len(times) - first
        limit = limits.of(window)
        if used >= limit:
            # The slot that frees first is the one taken longest ago in this window;
            # when the limit was lowered, count from the entry that brings us under it.
            wait = seconds if limit <= 0 else math.ceil(times[first + used - limit] / 1000 + seconds - now)
            return Admission(
                admitted=False,
                usage=usage_at(times, limits, now),
                window=window,
                retry_after=min(max(wait, 1), seconds),
            )
    return Admission(admitted=True, usage=usage_at(_with(times, to_ms(now)), limits, now))


def usage_at(times: Sequence[int], limits: Limits, now: float) -> Usage:
    """`usage_of` over sorted admission times (ms). Pure."""
    used: dict[str, int] = {}
    resets_at: dict[str, int | None] = {}
    for window, seconds in WINDOWS.items():
        first = _in_window_from(times, seconds, now)
        used[window] = len(times) - first
        resets_at[window] = math.ceil(times[first] / 1000 + seconds) if first < len(times) else None
    return Usage(limits=limits, used=used, resets_at=resets_at)


def within_capacity(limits: Limits) -> Limits:
    """The limits one state row can keep exactly (a larger day limit is served as CAPACITY)."""
    return Limits(hour=limits.hour, day=min(limits.day, CAPACITY))


def _with(times: Sequence[int], at_ms: int) -> array.array[int]:
    grown = array.array("q", times)
    grown.insert(bisect.bisect_right(grown, at_ms), at_ms)
    return grown


# --- The stored state -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaState:
    """An app's state row as read: sorted admission times and what the row also carries."""

    times: array.array[int] = field(default_factory=lambda: array.array("q"))
    # Admissions written by the gateway before ticket rows existed: ticket -> time (ms).
    # Their tickets live here until they leave the day; new admissions never add to it.
    legacy: dict[str, int] = field(default_factory=dict)
    unswept: int = 0  # expired admissions whose ticket rows are not deleted yet
    etag: str | None = None  # None: no row yet
    money: Money = field(default_factory=Money)  # the budget windows' totals as last written

    def live(self, now: float) -> QuotaState:
        """This state without the admissions older than a day (they count as unswept)."""
        first = _in_window_from(self.times, WINDOWS["day"], now)
        if first == 0:
            return self
        cutoff = self.times[first - 1]
        return QuotaState(
            times=self.times[first:],
            legacy={ticket: at for ticket, at in self.legacy.items() if at > cutoff},
            unswept=self.unswept + first,
            etag=self.etag,
            money=self.money,
        )


def encode_state(app_id: str, state: QuotaState) -> dict[str, Any]:
    """The state row: times packed as 4-byte offsets from an 8-byte base, 64 KiB per property."""
    times = state.times
    if len(times) > CAPACITY:
        raise ValueError(f"{len(times)} admissions exceed the row's capacity of {CAPACITY}")
    base = times[0] if times else 0
    packed = base.to_bytes(_BASE_BYTES, "little", signed=True)
    offsets = array.array("I", (at - base for at in times))
    if offsets.itemsize != 4:  # pragma: no cover - every platform CPython supports has 4-byte "I"
        raise RuntimeError("unsigned int is not 4 bytes here")
    packed += offsets.tobytes() if _little_endian() else _swapped(offsets)
    entity: dict[str, Any] = {
        "PartitionKey": app_id,
        "RowKey": STATE_ROW,
        "format": 2,
        "unswept": state.unswept,
    }
    for index in range(0, len(packed), _CHUNK_BYTES):
        entity[f"t{index // _CHUNK_BYTES:02d}"] = packed[index : index + _CHUNK_BYTES]
    if state.legacy:
        entity["legacy"] = json.dumps(sorted(state.legacy.items(), key=lambda item: item[1]))
    for window in BUDGET_WINDOWS:
        totals = state.money.of(window)
        if totals.start:
            entity[f"b{window}"] = totals.start
            entity[f"b{window}_reserved"] = _int64(totals.reserved)
            entity[f"b{window}_spent"] = _int64(totals.spent)
            if totals.announced:
                entity[f"b{window}_announced"] = True
    return entity


def _int64(value: int) -> Any:
    # Micro-units pass 2**31 at about 2,147 units of currency: always stored as Edm.Int64.
    return sdk.EntityProperty(value, sdk.EdmType.INT64)


def _integer(value: Any) -> int:
    """An Int64 as read (the SDK hands it over as an EntityProperty) or an Int32."""
    return int(getattr(value, "value", value) or 0)


def decode_money(entity: Mapping[str, Any]) -> Money:
    totals = {
        window: Totals(
            start=str(entity.get(f"b{window}") or ""),
            reserved=_integer(entity.get(f"b{window}_reserved")),
            spent=_integer(entity.get(f"b{window}_spent")),
            announced=bool(entity.get(f"b{window}_announced")),
        )
        for window in BUDGET_WINDOWS
    }
    return Money(day=totals["day"], month=totals["month"])


def decode_state(entity: Mapping[str, Any], etag: str | None) -> QuotaState:
    """A state row in either format: packed times (format 2) or the old JSON list of entries."""
    if "format" not in entity:
        # Written before the row was packed: [[unix seconds, ticket], ...]. Keep the tickets
        # as legacy ones; the next write stores the row packed.
        pairs = [(to_ms(float(at)), str(ticket)) for at, ticket in json.loads(entity.get("entries") or "[]")]
        times = array.array("q", sorted(at for at, _ in pairs))
        return QuotaState(times=times, legacy={ticket: at for at, ticket in pairs}, etag=etag)
    packed = b"".join(bytes(entity[name]) for name in sorted(k for k in entity if _is_chunk(k)))
    # No chunk at all (never written so, but harmless): no base, no offsets, no times.
    base = int.from_bytes(packed[:_BASE_BYTES], "little", signed=True)
    offsets = array.array("I")
    offsets.frombytes(packed[_BASE_BYTES:])
    if not _little_endian():  # pragma: no cover - big-endian hosts only
        offsets.byteswap()
    times = array.array("q", (base + offset for offset in offsets))
    legacy = {str(ticket): int(at) for ticket, at in json.loads(entity.get("legacy") or "[]")}
    return QuotaState(
        times=times,
        legacy=legacy,
        unswept=int(entity.get("unswept") or 0),
        etag=etag,
        money=decode_money(entity),
    )


def _is_chunk(name: str) -> bool:
    return len(name) == 3 and name[0] == "t" and name[1:].isdigit()


def _little_endian() -> bool:
    return array.array("I", [1]).tobytes()[0] == 1


def _swapped(offsets: array.array[int]) -> bytes:  # pragma: no cover - big-endian hosts only
    copy = array.array("I", offsets)
    copy.byteswap()
    return copy.tobytes()


def ticket_row_key(ticket: str) -> str:
    """A ticket's row: hashed, so any ticket text makes a valid RowKey."""
    return TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


# --- The store ------------------------------------------------------------------------------


class _Conflict(Exception):
    """The state row changed since it was read: read again and decide again."""


class QuotaStore:
    def __init__(self, tables: Tables) -> None:
        self._table: TableClient = tables.get(QUOTA_TABLE)
        self._seen: OrderedDict[str, QuotaState] = OrderedDict()
        self._seen_lock = threading.Lock()

    def admit(
        self,
        app_id: str,
        limits: Limits,
        ticket: str,
        now: float,
        *,
        budget: Budget | None = None,
        amount: int = 0,
    ) -> Admission:
        """Take one slot for `ticket` (a job id) if both windows allow it (see `decide`), and
        reserve `amount` (micro-units) if the budget's windows have room for it (see
        `gateway.budgets.overrun`), in one transaction.

        Taking the same ticket twice takes one slot: a retried request is not counted again.
        """
        limits = within_capacity(limits)
        state = self._remembered(app_id)
        fresh = state is None
        replace_ticket = False  # the ticket's row is an expired admission's, to be overwritten
        while True:
            if state is None:
                state = self._read(app_id)
            live = state.live(now)
            if ticket in live.legacy:
                if not fresh:  # legacy tickets only ever leave: confirm it is still there
                    state, fresh = None, True
                    continue
                return Admission(admitted=True, usage=usage_at(live.times, limits, now))
            admission = _with_money(decide_at(live.times, limits, now), live.money, budget, amount, now)
            if not admission.admitted:
                if not fresh:  # a refusal is only as good as the state it saw: confirm it
                    state, fresh = None, True
                    continue
                if self._holds_ticket(app_id, ticket, now):
                    return Admission(admitted=True, usage=admission.usage)
                return admission
            try:
                self._write_admission(
                    app_id, live, ticket, now, amount, admission.usage.money, replace_ticket=replace_ticket
                )
            except _Conflict:
                state, fresh = None, True
                continue
            except _TicketTaken:
                if self._holds_ticket(app_id, ticket, now):
                    return Admission(admitted=True, usage=usage_at(live.times, limits, now))
                replace_ticket = True
                continue
            return admission

    def release(self, app_id: str, ticket: str, now: float) -> bool:
        """Give back the slot taken for `ticket` and its open reservation; False when it held
        neither (idempotent)."""
        while True:
            # Always fresh: "this ticket's slot is not in the row" must not come from a stale copy.
            state = self._read(app_id).live(now)
            try:
                return self._release_once(app_id, state, ticket)
            except _Conflict:  # _commit has forgotten the row; the next turn reads it again
                continue

    def settle(self, app_id: str, ticket: str, now: float, cost: int | None = None) -> int | None:
        """Turn `ticket`'s open reservation into a charge of `cost` micro-units (None: the amount
        reserved). Answers what the ticket was charged, now or by an earlier settlement (so a
        retried settlement charges once), or None when it holds nothing: released, or never
        admitted."""
        while True:
            try:
                row = self._table.get_entity(app_id, ticket_row_key(ticket))
            except sdk.ResourceNotFoundError:
                return None
            if not row.get("open"):
                return _integer(row.get("cost"))  # settled before, or nothing was reserved
            state = self._read(app_id).live(now)
            amount = _integer(row.get("amount"))
            charge = amount if cost is None else cost
            settled = {**row, "open": False, "cost": _int64(charge)}
            update = (
                "update",
                settled,
                {
                    "mode": sdk.UpdateMode.REPLACE,
                    "etag": row.metadata["etag"],
                    "match_condition": sdk.MatchConditions.IfNotModified,
                },
            )
            money = state.money.settle(_ticket_keys(row), amount, charge)
            try:
                self._commit(app_id, _replace_money(state, money), [update])
            except _Conflict:  # the state row or the ticket changed meanwhile: look again
                continue
            return charge

    def usage(self, app_id: str, limits: Limits, now: float, budget: Budget | None = None) -> Usage:
        state = self._read(app_id).live(now)
        usage = usage_at(state.times, within_capacity(limits), now)
        return Usage(usage.limits, usage.used, usage.resets_at, state.money.at(now), budget)

    def _release_once(self, app_id: str, state: QuotaState, ticket: str) -> bool:
        if ticket in state.legacy:
            at = state.legacy[ticket]
            legacy = {held: taken for held, taken in state.legacy.items() if held != ticket}
            self._commit(app_id, _without(state, at, legacy), [])
            return True
        try:
            row = self._table.get_entity(app_id, ticket_row_key(ticket))
        except sdk.ResourceNotFoundError:
            return False
        at = to_ms(float(row["at"]))
        delete = (
            "delete",
            row,
            {"etag": row.metadata["etag"], "match_condition": sdk.MatchConditions.IfNotModified},
        )
        amount = _integer(row.get("amount")) if row.get("open") else 0
        holds_slot = _contains(state.times, at)
        if not holds_slot and not amount:
            # Its slot already left the day (`state` is live: it holds no time older than a day),
            # or it is no longer in the row (the row was reset): nothing to give back.
            self._table.delete_entity(
                row, etag=row.metadata["etag"], match_condition=sdk.MatchConditions.IfNotModified
            )
            return False
        released = _without(state, at, state.legacy) if holds_slot else state
        money = released.money.settle(_ticket_keys(row), amount, 0)
        # A ticket changed meanwhile (settled, released) fails it all as a conflict: looked at again.
        self._commit(app_id, _replace_money(released, money), [delete])
        return True

    def _write_admission(
        self,
        app_id: str,
        state: QuotaState,
        ticket: str,
        now: float,
        amount: int,
        money: Money,
        *,
        replace_ticket: bool,
    ) -> None:
        """Write the admission: its slot, and `money` (the totals with `amount` reserved)."""
        at = to_ms(now)
        ticket_row = {
            "PartitionKey": app_id,
            "RowKey": ticket_row_key(ticket),
            "ticket": ticket,
            "at": at / 1000,
            # What it reserved, in which windows, and whether that is still unsettled.
            "amount": _int64(amount),
            **{f"b{window}": money.of(window).start for window in BUDGET_WINDOWS},
            "open": amount > 0,  # nothing reserved: nothing to settle
        }
        due = state.unswept >= SWEEP_BATCH
        admitted = QuotaState(
            times=_with(state.times, at),
            legacy=state.legacy,
            unswept=0 if due else state.unswept,
            etag=state.etag,
            money=money,
        )
        operation = (
            ("upsert", ticket_row, {"mode": sdk.UpdateMode.REPLACE})
            if replace_ticket
            else ("create", ticket_row)
        )
        self._commit(app_id, admitted, [operation])
        if due:  # this writer took the sweep on (its write reset the count)
            self._sweep_tickets(app_id, now)

    def _commit(self, app_id: str, state: QuotaState, others: list[Any]) -> None:
        """Write `state` if the row is unchanged since read, with `others` in the same transaction."""
        entity = encode_state(app_id, state)
        if state.etag is None:
            write: Any = ("create", entity)
        else:
            conditions = {
                "mode": sdk.UpdateMode.REPLACE,
                "etag": state.etag,
                "match_condition": sdk.MatchConditions.IfNotModified,
            }
            write = ("update", entity, conditions)
        try:
            results = self._table.submit_transaction([write, *others])
        except sdk.TableTransactionError as error:
            self._forget(app_id)
            if error.index != 0 and _is_code(error, "EntityAlreadyExists"):
                raise _TicketTaken from error
            # The row changed since read (412 UpdateConditionNotSatisfied), was created meanwhile
            # (409 EntityAlreadyExists at index 0) or deleted meanwhile (404 ResourceNotFound).
            if error.status_code in (404, 409, 412):
                raise _Conflict from error
            raise
        self._remember(
            app_id, QuotaState(state.times, state.legacy, state.unswept, str(results[0]["etag"]), state.money)
        )

    def _holds_ticket(self, app_id: str, ticket: str, now: float) -> bool:
        """Whether `ticket` holds a live slot (one extra read, only when it matters)."""
        try:
            row = self._table.get_entity(app_id, ticket_row_key(ticket), select=["at"])
        except sdk.ResourceNotFoundError:
            return False
        return to_ms(float(row["at"])) > to_ms(now) - DAY_MS

    def _sweep_tickets(self, app_id: str, now: float) -> None:
        """Delete up to SWEEP_BATCH ticket rows of admissions that left the day (best effort:
        a row left behind is found by a later sweep)."""
        rows = self._table.query_entities(
            "PartitionKey eq @app and RowKey ge @first and RowKey lt @end and at le @cutoff",
            parameters={
                "app": app_id,
                "first": TICKET_PREFIX,
                "end": _TICKET_END,
                "cutoff": now - WINDOWS["day"],
            },
            select=["PartitionKey", "RowKey", "open"],
            results_per_page=SWEEP_BATCH,
        )
        # A ticket whose money is unsettled stays until its job settles or releases it.
        expired = [
            row for _, row in zip(range(SWEEP_BATCH), (r for r in rows if not r.get("open")), strict=False)
        ]
        if not expired:
            return
        # A row changed meanwhile: the next sweep looks again.
        with contextlib.suppress(sdk.HttpResponseError):
            self._table.submit_transaction(
                [
                    (
                        "delete",
                        row,
                        {"etag": row.metadata["etag"], "match_condition": sdk.MatchConditions.IfNotModified},
                    )
                    for row in expired
                ]
            )

    def _read(self, app_id: str) -> QuotaState:
        try:
            entity = self._table.get_entity(app_id, STATE_ROW)
        except sdk.ResourceNotFoundError:
            self._forget(app_id)
            return QuotaState()
        state = decode_state(entity, entity.metadata["etag"])
        self._remember(app_id, state)
        return state

    def _remembered(self, app_id: str) -> QuotaState | None:
        with self._seen_lock:
            return self._seen.get(app_id)

    def _remember(self, app_id: str, state: QuotaState) -> None:
        with self._seen_lock:
            self._seen[app_id] = state
            self._seen.move_to_end(app_id)
            while len(self._seen) > _CACHED_APPS:
                self._seen.popitem(last=False)

    def _forget(self, app_id: str) -> None:
        with self._seen_lock:
            self._seen.pop(app_id, None)


class _TicketTaken(Exception):
    """The ticket's row exists: it holds a slot, or held one that has left the day."""


def _is_code(error: sdk.HttpResponseError, *codes: str) -> bool:
    return str(getattr(error, "error_code", "") or "") in codes


def _contains(times: Sequence[int], at: int) -> bool:
    index = bisect.bisect_left(times, at)
    return index < len(times) and times[index] == at


def _without(state: QuotaState, at: int, legacy: dict[str, int]) -> QuotaState:
    """`state` with one admission taken at `at` given back."""
    times = array.array("q", state.times)
    del times[bisect.bisect_left(times, at)]
    return QuotaState(times=times, legacy=legacy, unswept=state.unswept, etag=state.etag, money=state.money)


def _replace_money(state: QuotaState, money: Money) -> QuotaState:
    return QuotaState(state.times, state.legacy, state.unswept, state.etag, money)


def _ticket_keys(row: Mapping[str, Any]) -> dict[str, str]:
    """The budget windows a ticket reserved in (none for tickets written before budgets)."""
    return {window: str(row.get(f"b{window}") or "") for window in BUDGET_WINDOWS}


def _with_money(
    admission: Admission, money: Money, budget: Budget | None, amount: int, now: float
) -> Admission:
    """`admission` (the count's decision) with the money's: refused when `amount` would overrun
    a budget window; the usage carries the totals (with `amount` reserved when admitted)."""
    usage = admission.usage
    if not admission.admitted:
        return Admission(
            False,
            Usage(usage.limits, usage.used, usage.resets_at, money.at(now), budget),
            admission.window,
            admission.retry_after,
        )
    over = overrun(money, budget, amount, now)
    if over is not None:
        # The count would have admitted it: the usage shows the slots without this one.
        used = {window: count - 1 for window, count in usage.used.items()}
        return Admission(
            False,
            Usage(usage.limits, used, usage.resets_at, money.at(now), budget),
            over.window,
            over.retry_after,
            budget=True,
        )
    reserved = money.reserve(amount, now)
    # Decided on the state the write is conditional on: exactly one admission crosses, once a window.
    windows = crossed(money.at(now), reserved, budget)
    return Admission(
        True,
        Usage(usage.limits, usage.used, usage.resets_at, reserved.announce(windows), budget, tuple(windows)),
    )
