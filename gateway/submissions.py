"""Accepting a video request: plan, quota, job record. The HTTP layer only starts the orchestration."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.apps import App
from gateway.errors import Forbidden, RateLimited
from gateway.jobs import Job, JobStore, new_job_id
from gateway.quota import Limits, QuotaStore, Usage
from gateway.settings import Settings
from gateway.validation import VideoSpec


@dataclass(frozen=True)
class Accepted:
    job: Job
    usage: Usage


def plan_limits(app: App, settings: Settings) -> Limits:
    limits = Limits.for_plan(settings.plan_limits, app.plan)
    if limits is None:
        raise Forbidden(
            f"Video generation requires the Pro plan or higher; this app is on the '{app.plan}' plan.",
            code="plan_not_allowed",
        )
    return limits


def accept_video(
    app: App,
    spec: VideoSpec,
    *,
    settings: Settings,
    quota: QuotaStore,
    jobs: JobStore,
    remixed_from: str | None = None,
) -> Accepted:
    """Check the plan, take a quota slot and record the job; raise 403/429 otherwise."""
    limits = plan_limits(app, settings)
    now = time.time()
    job = Job(
        id=new_job_id(now),
        app_id=app.id,
        model=spec.model,
        prompt=spec.prompt,
        seconds=spec.seconds,
        size=spec.size,
        created_at=int(now),
        metadata=spec.metadata,
        user=spec.user,
        remixed_from_video_id=remixed_from,
    )
    admission = quota.admit(app.id, limits, job.id, now)
    if not admission.admitted:
        window = admission.window or "hour"
        raise RateLimited(
            f"Rate limit reached: {limits.of(window)} videos per {window} for this app. "
            f"Try again in {admission.retry_after} seconds.",
            headers={"Retry-After": str(admission.retry_after), **admission.usage.headers()},
            extra={"window": window},
        )
    try:
        jobs.add_job(job)
    except Exception:
        quota.release(app.id, job.id, time.time())
        raise
    return Accepted(job=job, usage=admission.usage)


def withdraw_video(job: Job, *, quota: QuotaStore, jobs: JobStore) -> None:
    """Undo `accept_video` when the job could not be started: no slot kept, no record left."""
    quota.release(job.app_id, job.id, time.time())
    jobs.delete_job(job.app_id, job.id)
