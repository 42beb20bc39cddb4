"""The OpenAI-compatible videos API: create and retrieve."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.forms import read_fields
from api.http import api_errors, json_response
from gateway.apps import App
from gateway.clients import get_job_store, get_quota_store, get_video_assets
from gateway.errors import NotFound, ServiceUnavailable
from gateway.jobs import Job
from gateway.messages import JobRef
from gateway.pacing import Pace
from gateway.polling import PollPolicy
from gateway.settings import Settings, get_settings
from gateway.submissions import accept_video, withdraw_video
from gateway.validation import parse_video_spec
from gateway.video_object import video_object
from orchestrators import names as orchestrators
from orchestrators.generate_video import JobRun

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.route(route="v1/videos", methods=["POST"])
@bp.durable_client_input(client_name="client")
@api_errors
async def create_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    settings = get_settings()
    app = await asyncio.to_thread(authenticate_app, req)
    spec = parse_video_spec(read_fields(req).values, settings)
    accepted = await asyncio.to_thread(
        accept_video, app, spec, settings=settings, quota=get_quota_store(), jobs=get_job_store()
    )
    job = accepted.job
    await _start_generation(client, job, settings)
    log.info("app %s queued video %s (%s, %ss, %s)", app.id, job.id, job.model, job.seconds, job.size)
    headers = {
        "Location": f"/api/v1/videos/{job.id}",
        "Retry-After": str(_poll_after_seconds(job)),
        **accepted.usage.headers(),
    }
    return json_response(_render(job, settings), status=202, headers=headers)


async def _start_generation(client: df.DurableOrchestrationClient, job: Job, settings: Settings) -> None:
    run = JobRun(
        job=JobRef(app_id=job.app_id, job_id=job.id),
        poll=PollPolicy(settings.poll_min_seconds, settings.poll_max_seconds),
        timeout_minutes=settings.job_timeout_minutes,
    )
    try:
        await client.start_new(orchestrators.GENERATE_VIDEO, instance_id=job.id, client_input=run.to_dict())
    except Exception as error:
        # Without an orchestration the job would sit queued forever: undo it, slot included.
        log.exception("could not start the orchestration for %s", job.id)
        await asyncio.to_thread(withdraw_video, job, quota=get_quota_store(), jobs=get_job_store())
        raise ServiceUnavailable("The video could not be queued; try again shortly.") from error


@bp.route(route="v1/videos/{video_id}", methods=["GET"])
@api_errors
def retrieve_video(req: func.HttpRequest) -> func.HttpResponse:
    app = authenticate_app(req)
    job = _get_owned_job(app, req.route_params["video_id"])
    headers: dict[str, str] = {}
    if not job.finished:
        wait = _poll_after_seconds(job)
        headers = {"openai-poll-after-ms": str(wait * 1000), "Retry-After": str(wait)}
    return json_response(_render(job, get_settings()), headers=headers)


@bp.route(route="v1/videos/{video_id}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@api_errors
async def delete_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Cancel a job in flight, or delete a finished video's assets and record."""
    app = await asyncio.to_thread(authenticate_app, req)
    job = await asyncio.to_thread(_get_owned_job, app, req.route_params["video_id"])
    if job.finished:
        await asyncio.to_thread(_delete_finished, job)
    else:
        await asyncio.to_thread(_mark_cancelled, job)
        try:
            await client.raise_event(job.id, orchestrators.CANCEL_EVENT, None)
        except Exception:
            # It finished between our read and the event; its end step sees the cancel mark.
            log.info("video %s ended before its cancel event arrived", job.id)
        log.info("app %s cancelled video %s", app.id, job.id)
    return json_response({"id": job.id, "object": "video.deleted", "deleted": True})


def _mark_cancelled(job: Job) -> None:
    get_job_store().update_job(
        job.app_id,
        job.id,
        status="failed",
        error_code="cancelled",
        error_message="The video was cancelled.",
        completed_at=int(time.time()),
    )


def _delete_finished(job: Job) -> None:
    get_video_assets().delete_all(job.video_blob, job.thumbnail_blob)
    get_job_store().delete_job(job.app_id, job.id)


def _get_owned_job(app: App, video_id: str) -> Job:
    job = get_job_store().get_job(app.id, video_id)
    if job is None:
        raise NotFound(f"No video found with id '{video_id}'.", code="video_not_found", param="video_id")
    return job


def _render(job: Job, settings: Settings) -> dict[str, Any]:
    now = time.time()
    waiting = job.status == "queued" and job.upstream_id is None
    return video_object(
        job,
        assets=get_video_assets() if job.status == "completed" else None,
        sas_ttl=timedelta(minutes=settings.sas_ttl_minutes),
        pricing=settings.pricing,
        now=now,
        queue_position=Pace(settings.upstream_creates_per_minute).queue_position(job.start_at, now)
        if waiting
        else None,
    )


def _poll_after_seconds(job: Job) -> int:
    """Whole seconds until a poll is likely to show something new: the pipeline's own next check."""
    settings = get_settings()
    if job.next_check_at is not None:
        wait = job.next_check_at - time.time() + 1
    elif job.start_at is not None:
        wait = job.start_at - time.time() + settings.poll_min_seconds
    else:
        wait = settings.poll_min_seconds
    return max(1, min(round(wait), round(settings.poll_max_seconds)))
