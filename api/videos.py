"""Writing videos: create, remix, and cancel or delete. These start or signal orchestrations.

The handlers are async (the durable client is); everything that blocks runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.forms import read_fields
from api.http import api_errors, json_response
from api.intake import create_submission, remix_submission
from api.video_views import get_owned_job, poll_after_seconds
from gateway.apps import App
from gateway.clients import get_job_store, get_submissions, get_video_assets
from gateway.errors import Conflict, ServiceUnavailable
from gateway.jobs import Job
from gateway.messages import JobRef
from gateway.polling import PollPolicy
from gateway.settings import Settings, get_settings
from gateway.submissions import Accepted, Submission
from gateway.video_object import render_video as render
from orchestrators import names as orchestrators
from orchestrators.generate_video import JobRun

bp = df.Blueprint()
log = logging.getLogger(__name__)
IDEMPOTENCY_HEADER = "Idempotency-Key"


@bp.route(route="v1/videos", methods=["POST"])
@bp.durable_client_input(client_name="client")
@api_errors
async def create_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    settings = get_settings()
    app = await asyncio.to_thread(authenticate_app, req)
    submission = await asyncio.to_thread(_create_intake, req, settings)
    accepted = await asyncio.to_thread(_accept, app, submission)
    return await _started(client, accepted, submission, settings)


@bp.route(route="v1/videos/{video_id}/remix", methods=["POST"])
@bp.durable_client_input(client_name="client")
@api_errors
async def remix_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    settings = get_settings()
    app = await asyncio.to_thread(authenticate_app, req)
    submission = await asyncio.to_thread(_remix_intake, req, app, settings)
    accepted = await asyncio.to_thread(_accept, app, submission)
    return await _started(client, accepted, submission, settings)


@bp.route(route="v1/videos/{video_id}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@api_errors
async def delete_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Cancel a job in flight, or delete a finished video's assets and record."""
    app = await asyncio.to_thread(authenticate_app, req)
    job = await asyncio.to_thread(get_owned_job, app, req.route_params["video_id"])
    if job.finished:
        await asyncio.to_thread(_delete_finished, job)
    else:
        await asyncio.to_thread(_mark_cancelled, job)
        try:
            await client.raise_event(job.id, orchestrators.CANCEL_EVENT, None)
        except Exception:
            # It finished between our read and the event; its last step sees the cancel mark.
            log.info("video %s ended before its cancel event arrived", job.id)
        log.info("app %s cancelled video %s", app.id, job.id)
    return json_response({"id": job.id, "object": "video.deleted", "deleted": True})


async def _started(
    client: df.DurableOrchestrationClient, accepted: Accepted, submission: Submission, settings: Settings
) -> func.HttpResponse:
    """Start the job's orchestration (unless this is a replay) and answer 202."""
    job = accepted.job
    if not accepted.replayed:
        await _start_generation(client, job, submission, settings)
        log.info("app %s queued video %s (%s, %ss, %s)", job.app_id, job.id, job.model, job.seconds, job.size)
    headers = {
        "Location": f"/api/v1/videos/{job.id}",
        "Retry-After": str(poll_after_seconds(job)),
        **accepted.usage.headers(),
    }
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = await asyncio.to_thread(render, job, settings)
    return json_response(body, status=202, headers=headers)


async def _start_generation(
    client: df.DurableOrchestrationClient, job: Job, submission: Submission, settings: Settings
) -> None:
    run = JobRun(
        job=JobRef(app_id=job.app_id, job_id=job.id),
        poll=PollPolicy(settings.poll_min_seconds, settings.poll_max_seconds),
        timeout_minutes=settings.job_timeout_minutes,
        webhook_delays=settings.webhook_retry_seconds if job.webhook_url else (),
    )
    try:
        await client.start_new(orchestrators.GENERATE_VIDEO, instance_id=job.id, client_input=run.to_dict())
    except Exception as error:
        # Without an orchestration the job would sit queued forever: undo it, slot included.
        log.exception("could not start the orchestration for %s", job.id)
        await asyncio.to_thread(_withdraw, job, submission)
        raise ServiceUnavailable("The video could not be queued; try again shortly.") from error


# Blocking work of the handlers above, run in threads: reading and parsing the body, storage,
# and the DNS look-ups of webhook and image URLs must never hold up the event loop.


def _create_intake(req: func.HttpRequest, settings: Settings) -> Submission:
    return create_submission(read_fields(req), settings, req.headers.get(IDEMPOTENCY_HEADER))


def _remix_intake(req: func.HttpRequest, app: App, settings: Settings) -> Submission:
    source = get_owned_job(app, req.route_params["video_id"])
    fields = read_fields(req)
    if source.status != "completed" or source.upstream_id is None:
        raise Conflict(
            f"Video '{source.id}' can be remixed once it is completed; its status is '{source.status}'.",
            code="video_not_ready",
        )
    return remix_submission(fields, source, settings, req.headers.get(IDEMPOTENCY_HEADER))


def _accept(app: App, submission: Submission) -> Accepted:
    return get_submissions().accept(app, submission)


def _withdraw(job: Job, submission: Submission) -> None:
    get_submissions().withdraw(job, submission.idempotency_key)


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
    get_video_assets().delete_all(job.video_blob, job.thumbnail_blob, job.reference_blob)
    get_job_store().delete_job(job.app_id, job.id)
