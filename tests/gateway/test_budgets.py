"""Money budgets in the quota store, against Azurite: admission, release, settlement, races."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from gateway.budgets import Budget, to_micros
from gateway.quota import QUOTA_TABLE, STATE_ROW, Limits, QuotaStore, decode_money
from gateway.tables import Tables

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
LIMITS = Limits(hour=1000, day=1000)  # the counts never bind here: only the money does
FEB = int(datetime(2027, 2, 1, tzinfo=UTC).timestamp())


def _money(tables: Tables, app: str = "app") -> tuple[int, int, int, int]:
    """(month reserved, month spent, day reserved, day spent) as stored."""
    money = decode_money(tables.get(QUOTA_TABLE).get_entity(app, STATE_ROW))
    return money.month.reserved, money.month.spent, money.day.reserved, money.day.spent


def test_racing_creates_admit_exactly_the_ones_that_fit(tables: Tables) -> None:
    budget = Budget(month=to_micros(10.0))
    amount = to_micros(0.7)  # 14 fit (9.8), the 15th would make 10.5
    stores = [QuotaStore(tables) for _ in range(4)]  # several instances, each with its own memory
    start = threading.Barrier(24)

    def create(i: int) -> bool:
        start.wait()
        admission = stores[i % 4].admit("app", LIMITS, f"job{i}", T0 + i / 1000, budget=budget, amount=amount)
        return admission.admitted

    with ThreadPoolExecutor(max_workers=24) as pool:
        admitted = list(pool.map(create, range(24)))

    assert admitted.count(True) == 14
    assert _money(tables) == (14 * amount, 0, 14 * amount, 0)
    usage = QuotaStore(tables).usage("app", LIMITS, T0 + 1, budget)
    assert usage.used["hour"] == 14  # a refused create took no slot either
    assert usage.budget_remaining() == to_micros(10.0) - 14 * amount


def test_an_overrun_is_refused_until_the_next_month_and_consumes_nothing(tables: Tables) -> None:
    quota = QuotaStore(tables)
    budget = Budget(month=to_micros(1.0))
    assert quota.admit("app", LIMITS, "a", T0, budget=budget, amount=to_micros(0.6)).admitted
    assert quota.admit(
        "app", LIMITS, "b", T0 + 1, budget=budget, amount=to_micros(0.4)
    ).admitted  # exactly 1.0

    refused = quota.admit("app", LIMITS, "c", T0 + 2, budget=budget, amount=1)

    assert (refused.admitted, refused.budget, refused.window) == (False, True, "month")
    assert refused.retry_after == FEB - int(T0 + 2)
    assert refused.usage.used["hour"] == 2
    assert _money(tables)[:2] == (to_micros(1.0), 0)
    rows = tables.get(QUOTA_TABLE).query_entities("PartitionKey eq 'app' and RowKey ne 'usage'")
    assert sorted(row["ticket"] for row in rows) == ["a", "b"]
    # The next month starts from nothing.
    assert quota.admit("app", LIMITS, "c", FEB + 1, budget=budget, amount=to_micros(1.0)).admitted


def test_a_day_budget_frees_at_the_next_utc_midnight(tables: Tables) -> None:
    quota = QuotaStore(tables)
    budget = Budget(day=to_micros(1.0), month=to_micros(100.0))
    assert quota.admit("app", LIMITS, "a", T0, budget=budget, amount=to_micros(1.0)).admitted
    refused = quota.admit("app", LIMITS, "b", T0 + 5, budget=budget, amount=to_micros(0.5))
    midnight = int(datetime(2027, 1, 16, tzinfo=UTC).timestamp())
    assert (refused.window, refused.retry_after) == ("day", midnight - int(T0 + 5))
    assert quota.admit("app", LIMITS, "b", midnight, budget=budget, amount=to_micros(0.5)).admitted
    assert _money(tables) == (to_micros(1.5), 0, to_micros(0.5), 0)


def test_release_gives_the_money_back_once_and_settle_charges_once(tables: Tables) -> None:
    quota = QuotaStore(tables)
    budget = Budget(month=to_micros(5.0))
    for name in ("kept", "dropped"):
        quota.admit("app", LIMITS, name, T0, budget=budget, amount=to_micros(2.0))

    assert quota.release("app", "dropped", T0 + 1)
    assert not quota.release("app", "dropped", T0 + 2)
    assert quota.settle("app", "dropped", T0 + 2) is None  # released: nothing to charge
    assert quota.settle("app", "kept", T0 + 3, cost=to_micros(1.5)) == to_micros(1.5)  # its actual cost
    assert quota.settle("app", "kept", T0 + 4) == to_micros(1.5)  # a retried settlement: the same
    assert quota.settle("app", "kept", T0 + 4, cost=to_micros(9.0)) == to_micros(1.5)

    assert _money(tables) == (0, to_micros(1.5), 0, to_micros(1.5))
    assert QuotaStore(tables).usage("app", LIMITS, T0 + 5, budget).budget_remaining() == to_micros(3.5)
    # Settled, a later release gives back the slot but not the money already charged.
    assert quota.release("app", "kept", T0 + 6)
    assert _money(tables) == (0, to_micros(1.5), 0, to_micros(1.5))
    assert QuotaStore(tables).usage("app", LIMITS, T0 + 7).used["hour"] == 0


def test_settlement_of_a_previous_month_leaves_the_new_month_alone(tables: Tables) -> None:
    quota = QuotaStore(tables)
    quota.admit("app", LIMITS, "january", FEB - 10, amount=to_micros(2.0))
    quota.admit("app", LIMITS, "february", FEB + 10, amount=to_micros(1.0))
    assert quota.settle("app", "january", FEB + 20)  # the ticket is settled, January's totals are gone
    assert _money(tables) == (to_micros(1.0), 0, to_micros(1.0), 0)
    assert quota.settle("app", "january", FEB + 21) == to_micros(2.0)  # charged once, to January


def test_unsettled_tickets_outlive_the_day_and_are_not_swept(tables: Tables) -> None:
    quota = QuotaStore(tables)
    quota.admit("app", LIMITS, "long", T0, amount=to_micros(1.0))
    quota.admit("app", LIMITS, "free", T0, amount=0)
    quota.settle("app", "settled", T0)
    quota.admit("app", LIMITS, "settled", T0, amount=to_micros(1.0))
    quota.settle("app", "settled", T0 + 1)
    later = T0 + 86_400 + 10

    quota._sweep_tickets("app", later)  # what an admission does once enough slots have expired

    table = tables.get(QUOTA_TABLE)
    assert [row["ticket"] for row in table.query_entities("PartitionKey eq 'app' and RowKey ne 'usage'")] == [
        "long"
    ]
    assert quota.settle("app", "long", later + 2) == to_micros(1.0)
    assert _money(tables)[:2] == (0, to_micros(2.0))


def test_settlements_racing_admissions_lose_nothing(tables: Tables) -> None:
    budget = Budget(month=to_micros(1000.0))
    amount = to_micros(1.25)
    seed = QuotaStore(tables)
    for i in range(30):
        assert seed.admit("app", LIMITS, f"old{i}", T0, budget=budget, amount=amount).admitted
    rng = random.Random(7)  # noqa: S311 - a fixed order of actions, not a secret
    actions: list[tuple[str, int]] = [("admit", i) for i in range(30)]
    actions += [("settle", i) for i in range(15)] + [("release", i) for i in range(15, 30)]
    rng.shuffle(actions)
    stores = [QuotaStore(tables) for _ in range(4)]
    start = threading.Barrier(len(actions))

    def act(numbered: tuple[int, tuple[str, int]]) -> bool:
        n, (what, i) = numbered
        store = stores[n % 4]
        start.wait()
        if what == "admit":
            return store.admit("app", LIMITS, f"new{i}", T0 + 1, budget=budget, amount=amount).admitted
        if what == "settle":
            return store.settle("app", f"old{i}", T0 + 1, cost=to_micros(1.0))
        return store.release("app", f"old{i}", T0 + 1)

    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        results = list(pool.map(act, enumerate(actions)))

    assert all(results)
    # 30 new reservations open, 15 old settled at 1.0 each, 15 old released.
    assert _money(tables) == (30 * amount, 15 * to_micros(1.0), 30 * amount, 15 * to_micros(1.0))
    assert QuotaStore(tables).usage("app", LIMITS, T0 + 2).used["hour"] == 30 + 15


def test_exactly_one_of_racing_admissions_crosses_the_threshold_once_a_month(tables: Tables) -> None:
    budget = Budget(month=to_micros(10.0), threshold=0.5)
    stores = [QuotaStore(tables) for _ in range(4)]
    start = threading.Barrier(12)

    def create(i: int) -> tuple[str, ...]:
        start.wait()
        return (
            stores[i % 4]
            .admit("app", LIMITS, f"job{i}", T0, budget=budget, amount=to_micros(1.0))
            .usage.crossed
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        crossings = list(pool.map(create, range(12)))

    assert sorted(crossings) == [()] * 11 + [("month",)]  # 10 admitted: the fifth crossed 5.0
    quota = QuotaStore(tables)
    for i in range(10):
        quota.release("app", f"job{i}", T0 + 1)  # back under the mark ...
    again = quota.admit("app", LIMITS, "again", T0 + 2, budget=budget, amount=to_micros(6.0))
    assert again.usage.crossed == ()  # ... and over it again: announced once a window
    march = quota.admit("app", LIMITS, "next", FEB + 1, budget=budget, amount=to_micros(6.0))
    assert march.usage.crossed == ("month",)
