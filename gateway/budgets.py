"""Money budgets per plan: calendar windows (UTC), exact totals in micro-units, the pure decisions.

Amounts are integers in millionths of the operator's currency, never floats, so sums and
differences are exact however many jobs are reserved, settled and released. A window is a UTC
calendar day or month: its totals are kept per window start (bounded, whatever the traffic), and
it frees at the next window's start, a time the error, `Retry-After` and /v1/usage can state
exactly. The store (`gateway.quota`) keeps the totals in the app's quota state row, so money is
admitted in the same conditional transaction as the count.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

MICROS = 1_000_000  # units of the currency in one micro-unit amount
BUDGET_WINDOWS = ("day", "month")
CURRENCY = "USD"  # the catalog's prices are stated in it (gateway.video_object.estimated_cost)


def to_micros(amount: float) -> int:
    return round(amount * MICROS)


def from_micros(micros: int) -> float:
    return micros / MICROS


def window_key(window: str, now: float) -> str:
    """Which calendar window `now` falls in: '2026-11-27' for a day, '2026-11' for a month."""
    at = datetime.fromtimestamp(now, UTC)
    return at.strftime("%Y-%m-%d") if window == "day" else at.strftime("%Y-%m")


def window_end(window: str, now: float) -> int:
    """When the window holding `now` ends (and its budget frees): the next day's or month's start."""
    at = datetime.fromtimestamp(now, UTC)
    start = datetime(at.year, at.month, at.day if window == "day" else 1, tzinfo=UTC)
    if window == "day":
        return int(start.timestamp()) + 86400
    days = calendar.monthrange(at.year, at.month)[1]
    return int(start.timestamp()) + days * 86400


@dataclass(frozen=True)
class ChargePolicy:
    """Which outcomes cost the app its count slot and its money (see gateway.charges)."""

    refused: bool = True  # the provider refused the request itself (content filter) before accepting it
    failed: bool = True  # the provider accepted the job, then it failed or timed out


@dataclass(frozen=True)
class Budget:
    """A plan's budget: the most each window may commit (micro-units; None: no limit)."""

    day: int | None = None
    month: int | None = None
    threshold: float | None = None  # the share of a window whose crossing is announced (0-1)
    charges: ChargePolicy = field(default_factory=ChargePolicy)

    def limit(self, window: str) -> int | None:
        return self.day if window == "day" else self.month

    @property
    def limited(self) -> bool:
        return self.day is not None or self.month is not None


@dataclass(frozen=True)
class Totals:
    """One window's money: reserved (admitted jobs not yet settled) and spent (settled charges)."""

    start: str = ""  # the window's key (window_key); "" before the first admission
    reserved: int = 0
    spent: int = 0
    announced: bool = False  # its threshold crossing was announced (budget.threshold): once a window

    @property
    def committed(self) -> int:
        return self.reserved + self.spent


@dataclass(frozen=True)
class Money:
    day: Totals = field(default_factory=Totals)
    month: Totals = field(default_factory=Totals)

    def of(self, window: str) -> Totals:
        return self.day if window == "day" else self.month

    def at(self, now: float) -> Money:
        """These totals as of `now`: a window that has ended starts again from zero."""
        day, month = window_key("day", now), window_key("month", now)
        return Money(
            day=self.day if self.day.start == day else Totals(start=day),
            month=self.month if self.month.start == month else Totals(start=month),
        )

    def reserve(self, amount: int, now: float) -> Money:
        money = self.at(now)
        return Money(
            day=replace(money.day, reserved=money.day.reserved + amount),
            month=replace(money.month, reserved=money.month.reserved + amount),
        )

    def settle(self, keys: Mapping[str, str], amount: int, cost: int) -> Money:
        """Turn a reservation of `amount`, made in the windows `keys`, into a charge of `cost` (0:
        released). A window that has ended since is left alone: its totals are gone."""
        totals = {}
        for window in BUDGET_WINDOWS:
            current = self.of(window)
            if current.start and current.start == keys.get(window):
                current = replace(current, reserved=current.reserved - amount, spent=current.spent + cost)
            totals[window] = current
        return Money(day=totals["day"], month=totals["month"])

    def keys(self) -> dict[str, str]:
        return {window: self.of(window).start for window in BUDGET_WINDOWS}

    def announce(self, windows: list[str]) -> Money:
        """These totals with `windows` marked announced."""
        day = replace(self.day, announced=True) if "day" in windows else self.day
        month = replace(self.month, announced=True) if "month" in windows else self.month
        return Money(day=day, month=month)


@dataclass(frozen=True)
class Overrun:
    """Why a reservation does not fit: the first window it would overrun, and when that frees."""

    window: str
    limit: int
    retry_after: int  # whole seconds until the window's end
    resets_at: int


def overrun(money: Money, budget: Budget | None, amount: int, now: float) -> Overrun | None:
    """Whether reserving `amount` more at `now` would take a window past its limit. Pure.

    A window is full when what is reserved plus spent plus `amount` exceeds its limit: reaching
    the limit exactly is allowed, so a budget of 10 takes ten jobs of 1 and not an eleventh.
    """
    if budget is None:
        return None
    money = money.at(now)
    for window in BUDGET_WINDOWS:
        limit = budget.limit(window)
        if limit is not None and money.of(window).committed + amount > limit:
            end = window_end(window, now)
            return Overrun(window=window, limit=limit, retry_after=max(1, end - int(now)), resets_at=end)
    return None


def remaining(money: Money, budget: Budget | None, window: str) -> int | None:
    """What a window has left (micro-units), or None when it has no limit."""
    limit = budget.limit(window) if budget is not None else None
    if limit is None:
        return None
    return max(limit - money.of(window).committed, 0)


def crossed(before: Money, after: Money, budget: Budget | None) -> list[str]:
    """The windows whose committed total reached the budget's threshold between two states and
    whose crossing was not announced yet in that window (a release that takes it back under
    and a later admission that crosses again announce nothing more)."""
    if budget is None or budget.threshold is None:
        return []
    windows = []
    for window in BUDGET_WINDOWS:
        limit = budget.limit(window)
        if limit is None:
            continue
        mark = limit * budget.threshold
        then, now = before.of(window), after.of(window)
        same = then.start == now.start
        if same and then.announced:
            continue
        if (then.committed if same else 0) < mark <= now.committed:
            windows.append(window)
    return windows


def usage_document(money: Money, budget: Budget | None, now: float) -> dict[str, Any]:
    """The `budget` block of /v1/usage: per window, its limit, spent, reserved and remaining."""
    money = money.at(now)
    windows: dict[str, Any] = {}
    for window in BUDGET_WINDOWS:
        totals, limit = money.of(window), (budget.limit(window) if budget else None)
        left = remaining(money, budget, window)
        windows[window] = {
            "start": totals.start,
            "limit": None if limit is None else from_micros(limit),
            "spent": from_micros(totals.spent),
            "reserved": from_micros(totals.reserved),
            "remaining": None if left is None else from_micros(left),
            "resets_at": window_end(window, now),
        }
    return {"currency": CURRENCY, **windows}


BUDGET_FIELDS = ("day", "month", "threshold", "charge_refused", "charge_failed")


class BudgetSpecError(ValueError):
    """Budget fields that cannot work; the message says which and why."""


def parse_budget(spec: Any) -> Budget:
    """A budget from its fields: {"month": amount, "day": amount, "threshold": share,
    "charge_refused": bool, "charge_failed": bool}, every one optional; amounts in the catalog's
    currency, kept in micro-units. The one reader of PLAN_BUDGETS and of an app's own budget."""
    if not isinstance(spec, dict):
        raise BudgetSpecError(f"a budget must be a JSON object of {', '.join(BUDGET_FIELDS)}")
    unknown = sorted(set(spec) - set(BUDGET_FIELDS))
    if unknown:
        raise BudgetSpecError(f"unknown budget fields {unknown}; known: {', '.join(BUDGET_FIELDS)}")
    limits = {window: _amount(window, spec.get(window)) for window in BUDGET_WINDOWS}
    threshold = spec.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1
    ):
        raise BudgetSpecError(f"threshold must be a share above 0 and at most 1, got {threshold!r}")
    flags = {}
    for name in ("charge_refused", "charge_failed"):
        flag = spec.get(name, True)
        if not isinstance(flag, bool):
            raise BudgetSpecError(f"{name} must be true or false, got {flag!r}")
        flags[name] = flag
    return Budget(
        day=limits["day"],
        month=limits["month"],
        threshold=None if threshold is None else float(threshold),
        charges=ChargePolicy(refused=flags["charge_refused"], failed=flags["charge_failed"]),
    )


def _amount(window: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise BudgetSpecError(f"{window} must be an amount of at least 0, got {value!r}")
    return to_micros(float(value))
