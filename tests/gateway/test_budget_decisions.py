"""Budgets' pure parts: calendar windows, the overrun rule, totals rolling over, PLAN_BUDGETS."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.budgets import (
    Budget,
    ChargePolicy,
    Money,
    Totals,
    crossed,
    overrun,
    to_micros,
    usage_document,
    window_end,
    window_key,
)
from gateway.errors import SettingsError
from gateway.jobs import Job
from gateway.pricing import cost_micros, price_per_second, settled_cost
from gateway.settings import Settings

MINIMAL = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "aiml-key"}


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "window", "key", "end"),
    [
        (at(2026, 12, 31, 23, 59, 59), "month", "2026-12", at(2027, 1, 1)),
        (at(2026, 12, 31, 23, 59, 59), "day", "2026-12-31", at(2027, 1, 1)),
        (at(2028, 2, 10), "month", "2028-02", at(2028, 3, 1)),  # a leap February
        (at(2027, 2, 10), "month", "2027-02", at(2027, 3, 1)),
        (at(2027, 3, 1), "month", "2027-03", at(2027, 4, 1)),  # its first second belongs to it
        (at(2027, 3, 1), "day", "2027-03-01", at(2027, 3, 2)),
    ],
)
def test_windows_are_utc_calendar_days_and_months(now: float, window: str, key: str, end: float) -> None:
    assert window_key(window, now) == key
    assert window_end(window, now) == end


def test_reaching_the_limit_exactly_fits_and_one_micro_unit_more_does_not() -> None:
    now = at(2027, 1, 15, 8)
    budget = Budget(month=to_micros(1.0))
    money = Money().reserve(to_micros(0.6), now)
    assert overrun(money, budget, to_micros(0.4), now) is None
    over = overrun(money, budget, to_micros(0.4) + 1, now)
    assert over is not None
    assert (over.window, over.limit, over.resets_at) == ("month", to_micros(1.0), at(2027, 2, 1))
    assert over.retry_after == at(2027, 2, 1) - now
    assert overrun(money, None, 10**12, now) is None  # no budget: no limit


def test_the_day_is_checked_before_the_month() -> None:
    now = at(2027, 1, 15, 8)
    budget = Budget(day=to_micros(1.0), month=to_micros(1.0))
    over = overrun(Money().reserve(to_micros(1.0), now), budget, 1, now)
    assert over is not None
    assert over.window == "day"


def test_spent_counts_as_much_as_reserved() -> None:
    now = at(2027, 1, 15, 8)
    money = (
        Money()
        .reserve(to_micros(1.0), now)
        .settle({"day": "2027-01-15", "month": "2027-01"}, to_micros(1.0), 7)
    )
    assert (money.month.reserved, money.month.spent) == (0, 7)
    assert overrun(money, Budget(month=10), 3, now) is None
    assert overrun(money, Budget(month=10), 4, now) is not None


def test_totals_start_from_zero_in_a_new_window_and_old_settlements_leave_them_alone() -> None:
    january = Money(day=Totals("2027-01-31", 5, 5), month=Totals("2027-01", 50, 50))
    february = january.at(at(2027, 2, 1))
    assert february == Money(day=Totals("2027-02-01"), month=Totals("2027-02"))
    assert february.settle({"day": "2027-01-31", "month": "2027-01"}, 5, 5) == february
    same_month = january.at(at(2027, 1, 31, 12))
    assert same_month == january


def test_the_threshold_is_crossed_once_per_window() -> None:
    now = at(2027, 1, 15, 8)
    budget = Budget(month=100, threshold=0.8)
    below = Money().reserve(79, now)
    assert crossed(below, below.reserve(1, now), budget) == ["month"]
    assert crossed(below.reserve(1, now), below.reserve(2, now), budget) == []  # already over
    assert crossed(Money(), below, budget) == []
    next_month = at(2027, 2, 1)
    assert crossed(below.reserve(1, now), Money().reserve(80, next_month), budget) == ["month"]


def test_usage_document_reports_each_window() -> None:
    now = at(2027, 1, 15, 8)
    money = Money().reserve(to_micros(0.8), now)
    document = usage_document(money, Budget(month=to_micros(2.0)), now)
    assert document["month"] == {
        "start": "2027-01",
        "limit": 2.0,
        "spent": 0.0,
        "reserved": 0.8,
        "remaining": 1.2,
        "resets_at": at(2027, 2, 1),
    }
    assert (document["day"]["limit"], document["day"]["remaining"]) == (None, None)


def test_plan_budgets_are_read_in_micro_units_with_the_default_policy() -> None:
    raw = {"pro": {"month": 100.0, "day": 10.5, "threshold": 0.8, "charge_refused": False}, "business": {}}
    settings = Settings.from_env({**MINIMAL, "PLAN_BUDGETS": json.dumps(raw)})
    assert settings.budget("pro") == Budget(
        day=10_500_000, month=100_000_000, threshold=0.8, charges=ChargePolicy(refused=False, failed=True)
    )
    assert settings.budget("business") == Budget()
    assert settings.budget("free") == Budget()
    assert not Settings.from_env(MINIMAL).budget("pro").limited  # the default: unlimited


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "[]",
        '{"premium": {"month": 1}}',
        '{"pro": 5}',
        '{"pro": {"month": -1}}',
        '{"pro": {"month": "10"}}',
        '{"pro": {"month": true}}',
        '{"pro": {"week": 10}}',
        '{"pro": {"threshold": 0}}',
        '{"pro": {"threshold": 1.5}}',
        '{"pro": {"charge_refused": "no"}}',
    ],
)
def test_a_bad_plan_budget_stops_the_app_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="PLAN_BUDGETS"):
        Settings.from_env({**MINIMAL, "PLAN_BUDGETS": value})


def test_a_completed_job_is_charged_for_the_duration_its_provider_reported() -> None:
    catalog = [
        {
            "id": "veo-3.1",
            "sizes": ["1280x720"],
            "seconds": [4, 8],
            "routes": [
                {"provider": "aimlapi", "provider_model": "google/veo-3.1-t2v", "price_per_second": 0.4},
                {"provider": "aimlapi", "provider_model": "fal-ai/veo3.1", "price_per_second": 0.25},
            ],
        }
    ]
    settings = Settings.from_env({**MINIMAL, "MODEL_CATALOG": json.dumps(catalog)})
    job = Job(
        id="video_1",
        app_id="app_1",
        model="veo-3.1",
        prompt="p",
        seconds="4",
        size="1280x720",
        created_at=0,
        provider="aimlapi",
        provider_model="fal-ai/veo3.1",
    )
    assert settled_cost(settings, job) is None  # nothing reported: the amount reserved
    assert settled_cost(settings, replace(job, reported_seconds="8")) == to_micros(2.0)  # the route's price
    assert settled_cost(settings, replace(job, reported_seconds="8", size="720x1280")) is None  # not priced
    assert cost_micros(
        price_per_second(settings, "veo-3.1", "aimlapi", "google/veo-3.1-t2v", "1280x720"), "4"
    ) == (to_micros(1.6))
