"""Delivering one event to a webhook from an orchestration: tried, then retried on durable timers.

Both the job's outcome (generate_video) and a budget's threshold (budget_threshold) go out so.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import timedelta
from typing import Any

import azure.durable_functions as df


def deliver_with_retries(
    context: df.DurableOrchestrationContext, activity_name: str, payload: Any, delays: Sequence[float]
) -> Generator[Any, Any, bool]:
    """Call the delivering activity until it answers True, waiting `delays[i]` seconds after the
    i-th failure; True when delivered. Our own failure (storage) counts as a failed attempt too."""
    for attempt in range(len(delays) + 1):
        try:
            delivered = yield context.call_activity(activity_name, payload)
        except Exception:
            delivered = False
        if delivered or attempt == len(delays):
            return bool(delivered)
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=delays[attempt]))
    return False
