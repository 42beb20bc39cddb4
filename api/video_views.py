"""Shared by the video endpoints: finding the caller's job and rendering it."""

from __future__ import annotations

import time

from gateway.apps import App
from gateway.clients import get_job_store
from gateway.errors import NotFound
from gateway.jobs import Job
from gateway.settings import get_settings


def get_owned_job(app: App, video_id: str) -> Job:
    """The caller's job; another app's id answers exactly like an unknown one."""
    job = get_job_store().get_job(app.id, video_id)
    if job is None:
        raise NotFound(f"No video found with id '{video_id}'.", code="video_not_found", param="video_id")
    return job


def poll_after_seconds(job: Job) -> int:
    """Whole seconds until a poll is likely to show something new: the pipeline's own next check."""
    settings = get_settings()
    if job.next_check_at is not None:
        wait = job.next_check_at - time.time() + 1
    elif job.start_at is not None:
        wait = job.start_at - time.time() + settings.poll_min_seconds
    else:
        wait = settings.poll_min_seconds
    return max(1, min(round(wait), round(settings.poll_max_seconds)))


def poll_headers(job: Job) -> dict[str, str]:
    if job.finished:
        return {}
    wait = poll_after_seconds(job)
    return {"openai-poll-after-ms": str(wait * 1000), "Retry-After": str(wait)}
