"""Announcing that an app's budget window crossed its threshold: one signed `budget.threshold`
webhook event, retried on durable timers like a video's event.

Started by the create whose admission crossed it (gateway.quota decides that in the admission's
own conditional write, so exactly one create a window does), with an instance id per app and
window: a second start for the same window is refused by the task hub rather than announced again.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from activities import names as activity
from gateway.messages import BudgetCrossing
from orchestrators import names
from orchestrators.delivery import deliver_with_retries

bp = df.Blueprint()


def instance_id(crossing: BudgetCrossing) -> str:
    return f"budget_{crossing.app_id}_{crossing.window}_{crossing.start}"


@bp.function_name(names.ANNOUNCE_BUDGET_THRESHOLD)
@bp.orchestration_trigger(context_name="context")
def announce_budget_threshold(context: df.DurableOrchestrationContext) -> Generator[Any, Any, bool]:
    crossing = BudgetCrossing.from_dict(context.get_input())
    return (
        yield from deliver_with_retries(
            context, activity.DELIVER_BUDGET_EVENT, crossing.to_dict(), crossing.delays
        )
    )
