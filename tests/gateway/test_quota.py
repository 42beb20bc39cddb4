"""Rolling-window quota, against Azurite, with time passed in explicitly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gateway.quota import Limits, QuotaStore
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
