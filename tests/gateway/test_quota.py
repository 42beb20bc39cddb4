"""Rolling-window quota, against Azurite, with time passed in explicitly."""

from __future__ import annotations

import array
import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from azure.core.exceptions import HttpResponseError
from azure.data.tables import UpdateMode

from gateway.quota import (
    CAPACITY,
    QUOTA_TABLE,
    STATE_ROW,
    SWEEP_BATCH,
    Limits,
    QuotaState,
    QuotaStore,
    encode_state,
    to_ms,
)
from gateway.tables import Tables

T0 = 1_800_000_000.0
LIMITS = Limits(hour=5, day=20)


def test_sixth_request_in_an_hour_waits_exactly_for_the_oldest_slot(tables: Tables) -> None:
    quota = QuotaStore(tables)
    for i in range(5):
        assert quota.admit("app", LIMITS, f"job{i}", now=T0 + i * 60).admitted

    refused = quota.admit("app", LIMITS, "job5", now=T0 + 600.5)

    assert not refused.admitted
    assert refused.window == "hour"
    # The first slot was taken at T0 and frees at T0 + 3600.
    assert refused.retry_after == 3600 - 600
    assert refused.usage.headers()["x-ratelimit-remaining-hour"] == "0"
    assert refused.usage.headers()["x-ratelimit-remaining-day"] == "15"
    retried = quota.admit("app", LIMITS, "job4", now=T0 + 600.5)  # holds a slot: full is no refusal
    assert (retried.admitted, retried.usage.used, retried.usage.limits) == (
        True,
        {"hour": 5, "day": 5},
        LIMITS,
    )
    assert quota.admit("app", LIMITS, "job5", now=T0 + 3600.001).admitted


def test_day_window_counts_across_hours(tables: Tables) -> None:
    quota = QuotaStore(tables)
    limits = Limits(hour=5, day=8)
    for i in range(8):
        assert quota.admit("app", limits, f"job{i}", now=T0 + i * 3601).admitted
    refused = quota.admit("app", limits, "late", now=T0 + 8 * 3601)
    assert refused.window == "day"
    assert refused.retry_after == 86400 - 8 * 3601
    assert 1 <= (refused.retry_after or 0) <= 86400


def test_the_same_ticket_takes_one_slot(tables: Tables) -> None:
    quota = QuotaStore(tables)
    quota.admit("app", LIMITS, "job", now=T0)
    again = quota.admit("app", LIMITS, "job", now=T0 + 1)
    assert again.admitted
    assert again.usage.used == {"hour": 1, "day": 1}
    assert again.usage.limits == LIMITS


def test_release_gives_the_slot_back_once(tables: Tables) -> None:
    quota = QuotaStore(tables)
    for i in range(5):
        quota.admit("app", LIMITS, f"job{i}", now=T0)
    assert quota.release("app", "job3", now=T0 + 5)
    assert not quota.release("app", "job3", now=T0 + 6)
    assert quota.admit("app", LIMITS, "job5", now=T0 + 7).admitted
    assert not quota.admit("app", LIMITS, "job6", now=T0 + 8).admitted


def test_apps_do_not_share_slots(tables: Tables) -> None:
    quota = QuotaStore(tables)
    for i in range(5):
        quota.admit("app_a", LIMITS, f"job{i}", now=T0)
    assert quota.admit("app_b", LIMITS, "job0", now=T0).admitted


def test_concurrent_admissions_never_exceed_the_limit(tables: Tables) -> None:
    quota = QuotaStore(tables)
    quota.admit("app", LIMITS, "earlier", now=T0)  # 4 slots left

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: quota.admit("app", LIMITS, f"job{i}", now=T0 + 1), range(20)))

    assert sum(result.admitted for result in results) == 4
    assert quota.usage("app", LIMITS, now=T0 + 2).used["hour"] == 5


def test_usage_reports_when_the_next_slot_frees(tables: Tables) -> None:
    quota = QuotaStore(tables)
    assert quota.usage("app", LIMITS, now=T0).resets_at == {"hour": None, "day": None}
    quota.admit("app", LIMITS, "job", now=T0 + 10)
    usage = quota.usage("app", LIMITS, now=T0 + 20)
    assert usage.resets_at == {"hour": int(T0) + 3610, "day": int(T0) + 86410}
    assert usage.remaining("hour") == 4


def test_a_day_limit_of_100_000_is_kept_exactly_within_the_entity_limits(tables: Tables) -> None:
    """The old row (a JSON list) overflowed its 64 KiB property at 565 admissions a day."""
    quota = QuotaStore(tables)
    limits = Limits(hour=1_000_000, day=100_000)
    # 100,000 admissions spread over the last day, oldest first: written with the store's own
    # encoding (one row, as 100,000 admissions would leave it), then one through the store.
    oldest = T0 - 86_000.0
    times = array.array("q", (to_ms(oldest + i * 0.8) for i in range(99_999)))
    tables.get(QUOTA_TABLE).create_entity(encode_state("app", QuotaState(times=times)))
    now = oldest + 99_999 * 0.8 + 5
    assert quota.admit("app", limits, "last", now=now).admitted

    refused = quota.admit("app", limits, "one-too-many", now=now + 1)

    assert not refused.admitted
    assert refused.window == "day"
    assert refused.retry_after == math.ceil(oldest + 86_400 - (now + 1))
    assert refused.usage.used["day"] == 100_000
    row = tables.get(QUOTA_TABLE).get_entity("app", STATE_ROW)
    binary = [value for value in row.values() if isinstance(value, bytes)]
    assert all(len(value) <= 65_536 for value in binary)
    assert sum(len(value) for value in binary) + len(str(row.get("legacy", ""))) < 1_000_000
    # A refund frees exactly one slot, and the slot it frees is taken at once.
    assert quota.release("app", "last", now=now + 2)
    assert quota.admit("app", limits, "refunded-slot", now=now + 3).admitted
    assert not quota.admit("app", limits, "still-full", now=now + 4).admitted
    # The oldest admission leaves the day exactly one day after it was taken.
    assert not quota.admit("app", limits, "early", now=oldest + 86_399.999).admitted
    assert quota.admit("app", limits, "on-time", now=oldest + 86_400).admitted


def test_a_day_limit_beyond_one_row_is_served_as_its_capacity(tables: Tables) -> None:
    quota = QuotaStore(tables)
    times = array.array("q", (to_ms(T0 - 80_000 + i * 0.3) for i in range(CAPACITY)))
    tables.get(QUOTA_TABLE).create_entity(encode_state("app", QuotaState(times=times)))
    refused = quota.admit("app", Limits(hour=10**7, day=10**7), "more", now=T0)
    assert (refused.admitted, refused.window, refused.usage.limits.day) == (False, "day", CAPACITY)


def test_a_row_written_by_the_old_code_keeps_its_slots_and_tickets(tables: Tables) -> None:
    old_entries = [[T0 + i, f"old{i}"] for i in range(4)]
    tables.get(QUOTA_TABLE).create_entity(
        {"PartitionKey": "app", "RowKey": "usage", "entries": json.dumps(old_entries)}
    )
    quota = QuotaStore(tables)

    assert quota.usage("app", LIMITS, now=T0 + 10).used == {"hour": 4, "day": 4}
    assert quota.admit("app", LIMITS, "old2", now=T0 + 11).usage.used["hour"] == 4  # held already
    assert quota.admit("app", LIMITS, "new", now=T0 + 12).admitted  # the fifth, stored packed
    assert not quota.admit("app", LIMITS, "sixth", now=T0 + 13).admitted
    assert "entries" not in tables.get(QUOTA_TABLE).get_entity("app", STATE_ROW)
    assert quota.release("app", "old1", now=T0 + 14)  # a refund by an old ticket
    assert not quota.release("app", "old1", now=T0 + 15)
    again = quota.admit("app", LIMITS, "after-refund", now=T0 + 16)
    assert again.admitted
    assert again.usage.used["hour"] == 5
    refused = quota.admit("app", LIMITS, "full", now=T0 + 17)
    assert refused.retry_after == 3600 - 17  # old0, taken at T0, frees first


def test_stores_in_different_processes_stay_exact(tables: Tables) -> None:
    """Each store remembers the last state it saw; a stale one must never over-admit."""
    first, second = QuotaStore(tables), QuotaStore(tables)
    assert first.admit("app", LIMITS, "a", now=T0).admitted
    assert second.admit("app", LIMITS, "b", now=T0 + 1).admitted  # first's copy is stale now
    assert first.admit("app", LIMITS, "c", now=T0 + 2).usage.used["hour"] == 3
    assert second.release("app", "a", now=T0 + 3)
    for ticket in ("d", "e", "f"):
        assert first.admit("app", LIMITS, ticket, now=T0 + 4).admitted
    assert not second.admit("app", LIMITS, "g", now=T0 + 5).admitted
    assert first.admit("app", LIMITS, "f", now=T0 + 6).admitted  # a retried ticket: no new slot
    assert second.usage("app", LIMITS, now=T0 + 7).used == {"hour": 5, "day": 5}


def test_a_refusal_seen_on_a_stale_copy_is_checked_against_storage(tables: Tables) -> None:
    first, second = QuotaStore(tables), QuotaStore(tables)
    for i in range(5):
        first.admit("app", LIMITS, f"job{i}", now=T0)
    assert not first.admit("app", LIMITS, "refused", now=T0 + 1).admitted
    assert second.release("app", "job0", now=T0 + 2)
    assert first.admit("app", LIMITS, "freed", now=T0 + 3).admitted


def test_ticket_rows_of_expired_admissions_are_swept(tables: Tables) -> None:
    quota = QuotaStore(tables)
    limits = Limits(hour=1000, day=1000)
    for i in range(SWEEP_BATCH + 10):
        quota.admit("app", limits, f"old{i}", now=T0 + i)
    later = T0 + 86_400 + SWEEP_BATCH + 20
    quota.admit("app", limits, "expires-them", now=later)  # counts them as unswept
    quota.admit("app", limits, "sweeps", now=later + 1)  # the write that finds the count due

    rows = list(tables.get(QUOTA_TABLE).query_entities("PartitionKey eq 'app' and RowKey ne 'usage'"))
    assert len(rows) == 2 + 10  # the two live tickets, and what one sweep of 100 left
    # Only expired tickets went: both live ones are still there ("expires-them" sorts before
    # every "old" ticket, so a sweep that ignored the day would have taken it).
    tickets = {str(row["ticket"]) for row in rows}
    assert {"expires-them", "sweeps"} <= tickets
    assert all(ticket.startswith("old") for ticket in tickets - {"expires-them", "sweeps"})
    assert not quota.release("app", "old105", now=later + 2)  # an expired slot is not given back
    assert quota.release("app", "expires-them", now=later + 3)  # a live one is


class _TouchedBeforeTheSweep:
    """Injected interleaving (no real writer can be timed into this gap from a test): the table
    client of the store under test, except that just before a batch of deletes (the sweep) another
    writer really updates the first row in it. Azurite then refuses the batch (412), as Azure
    does when a row changed since it was read."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def submit_transaction(self, operations: Any) -> Any:
        operations = list(operations)
        if operations and all(str(operation[0]).lower() == "delete" for operation in operations):
            first = operations[0][1]
            self._table.update_entity(
                {"PartitionKey": first["PartitionKey"], "RowKey": first["RowKey"], "touched": True},
                mode=UpdateMode.MERGE,
            )
            try:
                return self._table.submit_transaction(operations)
            except HttpResponseError:
                self.refused += 1
                raise
        return self._table.submit_transaction(operations)


def test_a_sweep_refused_because_a_row_changed_does_not_fail_the_admission(tables: Tables) -> None:
    quota = QuotaStore(tables)
    limits = Limits(hour=1000, day=1000)
    for i in range(SWEEP_BATCH + 1):
        quota.admit("app", limits, f"old{i}", now=T0 + i)
    touched = _TouchedBeforeTheSweep(quota._table)
    quota._table = cast(Any, touched)

    # A day later: the old admissions have left, so this write finds the sweep due and runs it.
    admitted = quota.admit("app", limits, "sweeps", now=T0 + 86_400 + SWEEP_BATCH + 20)

    assert touched.refused == 1  # the sweep ran and its batch was refused
    assert admitted.admitted
    assert admitted.usage.used["day"] == 1
    # Nothing was deleted (a batch is all or nothing): a later sweep finds the rows again.
    rows = list(tables.get(QUOTA_TABLE).query_entities("PartitionKey eq 'app' and RowKey ne 'usage'"))
    assert len(rows) == SWEEP_BATCH + 1 + 1


class _Watched:
    """The table client of a store under test, watched: it counts the store's reads of the state
    row and its transactions (and how many Azurite refused), fails the test when the store keeps
    retrying, and can run `before` (another writer's real write) just before the store's next
    transaction - an injected interleaving; any refusal that follows is Azurite's real answer."""

    def __init__(self, quota: QuotaStore, before: Callable[[], object] | None = None) -> None:
        self._table = quota._table
        quota._table = cast(Any, self)
        self._before = before
        self.state_reads = 0
        self.transactions = 0
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> Any:
        self.state_reads += row_key == STATE_ROW
        return self._table.get_entity(partition_key, row_key, **kwargs)

    def submit_transaction(self, operations: Any) -> Any:
        self.transactions += 1
        assert self.transactions <= 10, "the store keeps retrying"
        if self._before is not None:
            before, self._before = self._before, None
            before()
        try:
            return self._table.submit_transaction(operations)
        except HttpResponseError:
            self.refused += 1
            raise


def _ticket_rows(tables: Tables) -> dict[str, dict[str, Any]]:
    rows = tables.get(QUOTA_TABLE).query_entities("PartitionKey eq 'app' and RowKey ne 'usage'")
    return {str(row["ticket"]): dict(row) for row in rows}


def test_a_steady_stream_of_admissions_writes_without_reading_first(tables: Tables) -> None:
    QuotaStore(tables).admit("app", LIMITS, "a", now=T0)
    quota = QuotaStore(tables)
    watched = _Watched(quota)

    assert quota.usage("app", LIMITS, now=T0 + 1).used["hour"] == 1  # read, and remembered
    for i, ticket in enumerate("bcd"):
        assert quota.admit("app", LIMITS, ticket, now=T0 + 2 + i).admitted

    # One read in all: each write starts from the state the last one left (its new ETag).
    assert (watched.state_reads, watched.transactions, watched.refused) == (1, 3, 0)
    assert QuotaStore(tables).usage("app", LIMITS, now=T0 + 9).used["hour"] == 4


def test_a_stale_copy_costs_one_refused_write_and_one_read(tables: Tables) -> None:
    first, second = QuotaStore(tables), QuotaStore(tables)
    assert first.admit("app", LIMITS, "a", now=T0).admitted  # first remembers one admission
    for ticket in "bcde":
        assert second.admit("app", LIMITS, ticket, now=T0 + 1).admitted
    watched = _Watched(first)

    # first's copy has room, the row has none: the write is refused (412), first reads and
    # refuses, and does not read once more to confirm what it has just read.
    refused = first.admit("app", LIMITS, "f", now=T0 + 2)

    assert (refused.admitted, refused.window, refused.retry_after) == (False, "hour", 3600 - 2)
    assert (watched.state_reads, watched.transactions, watched.refused) == (1, 1, 1)
    # A store with nothing remembered reads once and refuses on what it read.
    third = QuotaStore(tables)
    watched = _Watched(third)
    assert not third.admit("app", LIMITS, "g", now=T0 + 3).admitted
    assert (watched.state_reads, watched.transactions) == (1, 0)


def test_a_row_created_meanwhile_is_read_and_the_admission_decided_again(tables: Tables) -> None:
    quota = QuotaStore(tables)
    # Both see no row; the other store creates it first, so this store's create is refused
    # (409 EntityAlreadyExists at index 0, the state row): a conflict, not a taken ticket.
    watched = _Watched(quota, before=lambda: QuotaStore(tables).admit("app", LIMITS, "other", now=T0))

    admitted = quota.admit("app", LIMITS, "mine", now=T0 + 1)

    assert admitted.admitted
    assert admitted.usage.used == {"hour": 2, "day": 2}
    assert (watched.state_reads, watched.transactions, watched.refused) == (2, 2, 1)
    assert set(_ticket_rows(tables)) == {"other", "mine"}


def test_a_row_deleted_meanwhile_is_started_again(tables: Tables) -> None:
    """An operator resets an app's quota by deleting its state row."""
    quota = QuotaStore(tables)
    watched = _Watched(quota)
    assert quota.admit("app", LIMITS, "a", now=T0).admitted
    tables.get(QUOTA_TABLE).delete_entity("app", STATE_ROW)

    # The remembered ETag names a row that is gone: 404 ResourceNotFound, read, create.
    assert quota.admit("app", LIMITS, "b", now=T0 + 1).usage.used == {"hour": 1, "day": 1}
    assert (watched.transactions, watched.refused) == (2 + 1, 1)
    # A read that finds no row forgets what the store remembered: no write against a gone row.
    tables.get(QUOTA_TABLE).delete_entity("app", STATE_ROW)
    assert quota.usage("app", LIMITS, now=T0 + 2).used == {"hour": 0, "day": 0}
    assert quota.admit("app", LIMITS, "c", now=T0 + 3).usage.used == {"hour": 1, "day": 1}
    assert (watched.transactions, watched.refused) == (4, 1)
    # A ticket whose slot is no longer in the row gives nothing back; its row goes.
    assert not quota.release("app", "a", now=T0 + 4)
    assert set(_ticket_rows(tables)) == {"b", "c"}


def test_a_release_refused_because_the_row_changed_is_tried_again(tables: Tables) -> None:
    quota = QuotaStore(tables)
    assert quota.admit("app", LIMITS, "a", now=T0).admitted
    # Another store admits between this release's read and its write: the write is refused (412).
    watched = _Watched(quota, before=lambda: QuotaStore(tables).admit("app", LIMITS, "b", now=T0 + 1))

    assert quota.release("app", "a", now=T0 + 2) is True

    assert (watched.transactions, watched.refused) == (2, 1)
    assert QuotaStore(tables).usage("app", LIMITS, now=T0 + 3).used == {"hour": 1, "day": 1}
    assert set(_ticket_rows(tables)) == {"b"}


def test_a_ticket_whose_slot_left_the_day_takes_a_new_one(tables: Tables) -> None:
    quota = QuotaStore(tables)
    watched = _Watched(quota)
    assert quota.admit("app", LIMITS, "job", now=T0).admitted

    # Exactly a day later its slot has just left: its ticket row is still there (409 at index 1,
    # the ticket row), holds nothing live, and is replaced by the new admission's.
    again = quota.admit("app", LIMITS, "job", now=T0 + 86_400)

    assert again.admitted
    assert again.usage.used == {"hour": 1, "day": 1}
    assert (watched.transactions, watched.refused) == (3, 1)
    row = _ticket_rows(tables)["job"]
    assert {name: row[name] for name in ("ticket", "at")} == {"ticket": "job", "at": T0 + 86_400}
    assert quota.release("app", "job", now=T0 + 86_401)  # the new slot is given back
    assert quota.usage("app", LIMITS, now=T0 + 86_402).used == {"hour": 0, "day": 0}


def test_old_tickets_are_confirmed_against_storage_and_given_back_one_by_one(tables: Tables) -> None:
    tables.get(QUOTA_TABLE).create_entity(
        {
            "PartitionKey": "app",
            "RowKey": "usage",
            "entries": json.dumps([[T0 + i, f"old{i}"] for i in range(4)]),
        }
    )
    first, second = QuotaStore(tables), QuotaStore(tables)
    assert first.usage("app", LIMITS, now=T0 + 5).used["hour"] == 4  # first remembers old1

    assert second.release("app", "old1", now=T0 + 6)
    row = tables.get(QUOTA_TABLE).get_entity("app", STATE_ROW)
    assert json.loads(row["legacy"]) == [[f"old{i}", to_ms(T0 + i)] for i in (0, 2, 3)]

    # first's copy still lists old1 as held: it asks storage, where old1 holds nothing now.
    readmitted = first.admit("app", LIMITS, "old1", now=T0 + 7)
    assert readmitted.admitted
    assert second.usage("app", LIMITS, now=T0 + 8).used["hour"] == 4
    held = second.admit("app", LIMITS, "old2", now=T0 + 9)  # still held: no new slot
    assert held == QuotaStore(tables).admit("app", LIMITS, "old2", now=T0 + 9)
    assert (held.admitted, held.usage.limits, held.usage.used["hour"]) == (True, LIMITS, 4)


def test_the_row_counts_expired_admissions_and_sweeps_at_exactly_sweep_batch(tables: Tables) -> None:
    table = tables.get(QUOTA_TABLE)
    limits = Limits(hour=1000, day=1000)
    quota = QuotaStore(tables)
    for i in range(3):
        quota.admit("app", limits, f"old{i}", now=T0 + i)
    quota.admit("app", limits, "new", now=T0 + 86_400 + 10)  # the three have left the day
    assert table.get_entity("app", STATE_ROW)["unswept"] == 3

    # 97 more expired admissions (written as the store would leave them): 100 unswept in all.
    ages = [T0 + 100 + i for i in range(SWEEP_BATCH - 3)]
    state = QuotaState(times=array.array("q", map(to_ms, [*ages, T0 + 86_400 + 10])), unswept=3)
    table.upsert_entity(encode_state("app", state), mode=UpdateMode.REPLACE)
    table.submit_transaction(
        [
            ("create", {"PartitionKey": "app", "RowKey": f"ticket-x{i}", "ticket": f"x{i}", "at": at})
            for i, at in enumerate(ages)
        ]
    )
    assert QuotaStore(tables).admit("app", limits, "sweeps", now=T0 + 86_400 + 200).admitted

    row = table.get_entity("app", STATE_ROW)
    money = {f"b{window}{part}" for window in ("day", "month") for part in ("", "_reserved", "_spent")}
    assert set(row) == {"PartitionKey", "RowKey", "format", "unswept", "t00", *money}
    assert (row["format"], row["unswept"]) == (2, 0)
    assert set(_ticket_rows(tables)) == {"new", "sweeps"}  # the 100 expired ones, in one sweep


def test_the_store_remembers_the_last_256_apps_it_used(tables: Tables) -> None:
    quota = QuotaStore(tables)
    for i in range(256):
        quota._remember(f"app{i}", QuotaState(unswept=i))
    quota._remember("app0", QuotaState(unswept=0))  # used again: now the latest
    quota._remember("app256", QuotaState(unswept=256))  # one too many: the least recent goes

    assert quota._remembered("app1") is None
    assert [cast(QuotaState, quota._remembered(f"app{i}")).unswept for i in (0, 2, 255, 256)] == [
        0,
        2,
        255,
        256,
    ]
