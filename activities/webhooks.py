"""The activity that makes one webhook delivery attempt; the orchestrator owns the retries."""

from __future__ import annotations

import time

import azure.durable_functions as df

from activities import names
from gateway.budgets import usage_document
from gateway.clients import get_app_store, get_job_store, get_quota_store, get_webhook_sender
from gateway.messages import ActivityInput, BudgetCrossing, WebhookDelivery
from gateway.quota import Limits
from gateway.settings import get_settings
from gateway.video_object import render_video
from gateway.webhooks import WebhookEvent

bp = df.Blueprint()


@bp.function_name(names.DELIVER_WEBHOOK)
@bp.activity_trigger(input_name="payload")
def deliver_webhook(payload: ActivityInput) -> bool:
    """POST the job's event to its webhook URL once; True when the receiver took it."""
    delivery = WebhookDelivery.from_dict(payload)
    job = get_job_store().get_job(delivery.job.app_id, delivery.job.job_id)
    app = get_app_store().get_app(delivery.job.app_id)
    if job is None or app is None or not job.webhook_url:
        return True  # deleted meanwhile: nothing left to tell anyone
    if not job.finished:
        # Its final record could not be written (storage trouble): an event would contradict
        # itself. Not delivered yet; a later attempt finds the record reconciled.
        return False
    event = WebhookEvent(
        id=delivery.event_id,
        type="video.completed" if job.status == "completed" else "video.failed",
        created_at=job.completed_at or job.created_at,
        data=render_video(job),  # the same Video object the API shows
    )
    return get_webhook_sender().send(job.webhook_url, app.webhook_secret, event)


@bp.function_name(names.DELIVER_BUDGET_EVENT)
@bp.activity_trigger(input_name="payload")
def deliver_budget_event(payload: ActivityInput) -> bool:
    """POST the `budget.threshold` event once; True when the receiver took it."""
    crossing = BudgetCrossing.from_dict(payload)
    app = get_app_store().get_app(crossing.app_id)
    if app is None:
        return True  # deleted meanwhile: nobody to tell
    budget = get_settings().budget(app.plan, app.budget)
    now = time.time()
    # The window's totals as they are now (a count limit is not needed to read money).
    usage = get_quota_store().usage(app.id, Limits(hour=0, day=0), now, budget)
    window = usage_document(usage.money, budget, now)[crossing.window]
    event = WebhookEvent(
        id=crossing.event_id,
        type="budget.threshold",
        created_at=int(now),
        data={
            "object": "budget.threshold",
            "app_id": app.id,
            "window": crossing.window,
            "threshold": budget.threshold,
            "currency": "USD",
            **window,
            "start": crossing.start,
        },
    )
    return get_webhook_sender().send(crossing.url, app.webhook_secret, event)
