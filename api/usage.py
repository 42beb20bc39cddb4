"""`GET /api/v1/usage`: the calling app's plan and quota (operators read any app's the same way)."""

from __future__ import annotations

import time

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.http import api_errors, json_response
from gateway.apps import App
from gateway.budgets import Money, usage_document
from gateway.clients import get_quota_store
from gateway.quota import WINDOWS, Limits
from gateway.settings import get_settings

bp = df.Blueprint()


@bp.route(route="v1/usage", methods=["GET"])
@api_errors
def get_usage(req: func.HttpRequest) -> func.HttpResponse:
    return usage_response(authenticate_app(req))


def usage_response(app: App) -> func.HttpResponse:
    """The plan's limits and the app's use of them, with the x-ratelimit-* headers."""
    app_id, plan = app.id, app.plan
    limits = Limits.for_plan(get_settings().plan_limits, plan)
    if limits is None:
        zero = dict.fromkeys(WINDOWS, 0)
        return json_response(
            {
                "plan": plan,
                "video_enabled": False,
                "limits": zero,
                "used": zero,
                "remaining": zero,
                "resets_at": dict.fromkeys(WINDOWS),
                "budget": usage_document(Money(), None, time.time()),
            }
        )
    settings = get_settings()
    budget = settings.budget(plan, app.budget)
    now = time.time()
    usage = get_quota_store().usage(app_id, limits, now, budget if budget.limited else None)
    return json_response(
        {
            "plan": plan,
            "video_enabled": True,
            "limits": {"hour": limits.hour, "day": limits.day},
            "used": usage.used,
            "remaining": {window: usage.remaining(window) for window in WINDOWS},
            "resets_at": usage.resets_at,
            # Money per calendar window (UTC): spent (settled), reserved (admitted, not yet
            # settled) and what is left of the plan's budget (null: no limit).
            "budget": usage_document(usage.money, usage.budget, now),
        },
        headers=usage.headers(),
    )
