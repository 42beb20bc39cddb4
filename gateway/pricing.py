"""What a job costs: the catalog's price per second on the route it takes, times its seconds.

One place for the estimate reserved at admission and the cost settled at the end, so the two
differ only where the provider reported a different duration than was asked for.
"""

from __future__ import annotations

from gateway.budgets import to_micros
from gateway.jobs import Job
from gateway.settings import Settings


def price_per_second(
    settings: Settings, model: str, provider: str | None, provider_model: str | None, size: str
) -> float | None:
    """The route's price for `size` (the model's, for a job recorded before routes); None: not priced."""
    entry = settings.catalog.get(model)
    route = entry.route(provider, provider_model) if entry is not None else None
    prices = route.prices if route is not None else settings.pricing.get(model, {})
    return prices.get(size)


def cost_micros(per_second: float | None, seconds: str | int | None) -> int:
    """The cost in micro-units of `seconds` at `per_second`; 0 when either is unknown."""
    if per_second is None or seconds is None or not str(seconds).isdigit():
        return 0
    return to_micros(per_second * int(seconds))


def settled_cost(settings: Settings, job: Job) -> int | None:
    """What a completed job is charged (micro-units): the route's price for the duration the
    provider reported, where it reported one; None: the amount reserved at admission (the
    catalog's price for the duration asked for)."""
    if job.reported_seconds is None:
        return None
    price = price_per_second(settings, job.model, job.provider, job.provider_model, job.size)
    return None if price is None else cost_micros(price, job.reported_seconds)
