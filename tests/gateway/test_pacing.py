"""Pacing per provider account: each account has its own schedule, at its own pace; against Azurite."""

from __future__ import annotations

from gateway.pacing import Pace, UpstreamPacer
from gateway.tables import Tables

NOW = 1_800_000_000.0


def test_each_account_reserves_on_its_own_schedule_at_its_own_pace(tables: Tables) -> None:
    pacer = UpstreamPacer(tables, {"slow": Pace(2), "fast": Pace(60)}, default=Pace(6))

    slow = [pacer.reserve("slow", NOW) for _ in range(3)]
    fast = [pacer.reserve("fast", NOW) for _ in range(3)]
    other = [pacer.reserve("unlisted", NOW) for _ in range(2)]

    assert slow == [NOW, NOW + 30, NOW + 60]  # 2 a minute
    assert fast == [NOW, NOW + 1, NOW + 2]  # not held up by the slow account's queue
    assert other == [NOW, NOW + 10]  # an account without a pace of its own: the default


def test_an_unpaced_account_starts_at_once(tables: Tables) -> None:
    pacer = UpstreamPacer(tables, {"free": Pace(0)}, default=Pace(2))
    assert [pacer.reserve("free", NOW) for _ in range(3)] == [NOW, NOW, NOW]
