"""Writing videos: create, remix, and cancel or delete. These start or signal orchestrations.

The handlers are async (the durable client is); everything that blocks runs in a thread. A create
goes, cheapest check first: authenticate → plan (free: 403 before the body is read) → read the
fields → validate → claim the Idempotency-Key and take the quota slot → fetch and decode the image
→ store it and record the job → start the orchestration. So a refused request costs no decoding,
and an image refused after the slot was taken gives the slot and the key back.

Short storage calls run on the default executor; slow work (large bodies, image fetches and
decoding, webhook DNS) runs on the pools of `gateway.workpools`, at most a few requests of one
app at a time, so one app's slow requests never queue another app's.
"""

from __future__ import annotations

import asyncio
import logging
import time

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.forms import RequestFields, read_fields
from api.http import api_errors, json_response
from api.intake import Intake, check_urls, create_submission, load_image, prepare_image, remix_submission
from api.video_views import get_owned_job, poll_after_seconds
from gateway.apps import App
from gateway.clients import get_job_store, get_submissions, get_video_assets
from gateway.errors import Conflict, ServiceUnavailable
from gateway.images import ReferenceImage
from gateway.jobs import Job
from gateway.messages import CANCELLED, BudgetCrossing, JobRef, failure_message
from gateway.polling import PollPolicy
from gateway.quota import Limits
from gateway.settings import Settings, get_settings
from gateway.submissions import Accepted, Submission, plan_limits
from gateway.video_object import render_video as render
from gateway.workpools import HEAVY, OUTBOUND, SLOW_WORK, RequestSlot, run_in
from orchestrators import budget_threshold
from orchestrators import names as orchestrators
from orchestrators.generate_video import JobRun

bp = df.Blueprint()
log = logging.getLogger(__name__)
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Bodies up to this are parsed at once on the request path (microseconds); larger ones (an
# uploaded image, a data: URL) are slow work of their app, parsed on the heavy pool.
SMALL_BODY_BYTES = 64 * 1024


@bp.route(route="v1/videos", methods=["POST"])
@bp.durable_client_input(client_name="client")
@api_errors
async def create_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    settings = get_settings()
    app = await asyncio.to_thread(authenticate_app, req)
    limits = plan_limits(app, settings)
    with SLOW_WORK.for_request(app.id) as slow_work:
        fields = await _read_fields(req, slow_work)
        intake = create_submission(fields, settings, req.headers.get(IDEMPOTENCY_HEADER))
        accepted = await _accept(app, limits, intake, settings, slow_work)
    return await _started(client, accepted, intake.submission, settings, app)


@bp.route(route="v1/videos/{video_id}/remix", methods=["POST"])
@bp.durable_client_input(client_name="client")
@api_errors
async def remix_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    settings = get_settings()
    app = await asyncio.to_thread(authenticate_app, req)
    limits = plan_limits(app, settings)
    source = await asyncio.to_thread(get_owned_job, app, req.route_params["video_id"])
    with SLOW_WORK.for_request(app.id) as slow_work:
        fields = await _read_fields(req, slow_work)
        if source.status != "completed" or source.upstream_id is None:
            raise Conflict(
                f"Video '{source.id}' can be remixed once it is completed; its status is '{source.status}'.",
                code="video_not_ready",
            )
        intake = remix_submission(fields, source, settings, req.headers.get(IDEMPOTENCY_HEADER))
        accepted = await _accept(app, limits, intake, settings, slow_work)
    return await _started(client, accepted, intake.submission, settings, app)


@bp.route(route="v1/videos/{video_id}", methods=["DELETE"])
@bp.durable_client_input(client_name="client")
@api_errors
async def delete_video(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Cancel a job in flight, or delete a finished video's assets and record."""
    app = await asyncio.to_thread(authenticate_app, req)
    job = await asyncio.to_thread(get_owned_job, app, req.route_params["video_id"])
    if not job.finished:
        marked = await asyncio.to_thread(_mark_cancelled, job)
        if marked.finished and marked.error_code != CANCELLED:
            # The job ended on its own between our read and the mark (the copy won the race, or
            # it failed), and a finished record does not take the mark. The caller asked for the
            # video to go and is told it is deleted, so it is a finished video's DELETE now (no
            # cancel left to send).
            log.info("video %s finished (%s) before its cancel; deleted instead", job.id, marked.status)
            job = marked
    if job.finished:
        await asyncio.to_thread(_delete_finished, job)
    else:
        try:
            await client.raise_event(job.id, orchestrators.CANCEL_EVENT, None)
        except Exception:
            # It finished between our read and the event; its last step sees the cancel mark.
            log.info("video %s ended before its cancel event arrived", job.id)
        log.info("app %s cancelled video %s", app.id, job.id)
    return json_response({"id": job.id, "object": "video.deleted", "deleted": True})


async def _started(
    client: df.DurableOrchestrationClient,
    accepted: Accepted,
    submission: Submission,
    settings: Settings,
    app: App,
) -> func.HttpResponse:
    """Start the job's orchestration (unless this is a replay) and answer 202."""
    job = accepted.job
    if not accepted.replayed:
        await _start_generation(client, job, submission, settings, app)
        await _announce_crossings(client, accepted, settings)
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
    client: df.DurableOrchestrationClient, job: Job, submission: Submission, settings: Settings, app: App
) -> None:
    run = JobRun(
        job=JobRef(app_id=job.app_id, job_id=job.id),
        poll=PollPolicy(settings.poll_min_seconds, settings.poll_max_seconds),
        timeout_minutes=settings.job_timeout_minutes,
        webhook_delays=settings.webhook_retry_seconds if job.webhook_url else (),
        charges=settings.budget(app.plan, app.budget).charges,
    )
    try:
        await client.start_new(orchestrators.GENERATE_VIDEO, instance_id=job.id, client_input=run.to_dict())
    except Exception as error:
        # Without an orchestration the job would sit queued forever: undo it, slot included.
        log.exception("could not start the orchestration for %s", job.id)
        await asyncio.to_thread(_withdraw, job, submission)
        raise ServiceUnavailable("The video could not be queued; try again shortly.") from error


async def _announce_crossings(
    client: df.DurableOrchestrationClient, accepted: Accepted, settings: Settings
) -> None:
    """Announce the budget windows this create took past their threshold (budget.threshold), to
    its webhook URL. Never fails the create: the video is accepted whatever happens here."""
    job, usage = accepted.job, accepted.usage
    for window in usage.crossed:
        if not job.webhook_url:
            log.info(
                "app %s crossed its %s budget threshold; the create gave no webhook URL", job.app_id, window
            )
            continue
        crossing = BudgetCrossing(
            app_id=job.app_id,
            window=window,
            start=usage.money.of(window).start,
            url=job.webhook_url,
            delays=settings.webhook_retry_seconds,
        )
        try:
            await client.start_new(
                orchestrators.ANNOUNCE_BUDGET_THRESHOLD,
                instance_id=budget_threshold.instance_id(crossing),
                client_input=crossing.to_dict(),
            )
        except Exception:
            log.exception("could not start the budget announcement of app %s (%s)", job.app_id, window)


async def _read_fields(req: func.HttpRequest, slow_work: RequestSlot) -> RequestFields:
    """The request's fields; a large body is parsed as its app's slow work, on the heavy pool."""
    if len(req.get_body()) <= SMALL_BODY_BYTES:
        return await asyncio.to_thread(read_fields, req)
    slow_work.take()
    return await run_in(HEAVY, read_fields, req)


async def _accept(
    app: App, limits: Limits, intake: Intake, settings: Settings, slow_work: RequestSlot
) -> Accepted:
    """Check the URLs, reserve the slot, then (only then) fetch and decode the image and record."""
    if intake.slow:
        slow_work.take()  # before any storage round trip: a refused request costs nothing
        await run_in(OUTBOUND, check_urls, intake, settings)
    # Built on first use (credentials, clients): that too stays off the loop.
    submissions = await asyncio.to_thread(get_submissions)
    reserved = await asyncio.to_thread(submissions.reserve, app, limits, intake.submission)
    if isinstance(reserved, Accepted):
        return reserved
    try:
        reference = await _reference_image(intake, settings)
    except Exception:
        # Refused after the slot was taken: the slot and the key go back, nothing was stored.
        await asyncio.to_thread(submissions.abandon, reserved)
        raise
    return await asyncio.to_thread(submissions.record, reserved, reference)


async def _reference_image(intake: Intake, settings: Settings) -> ReferenceImage | None:
    image = intake.image
    if image is None:
        return None
    pool = OUTBOUND if image.needs_fetch else HEAVY
    data = await run_in(pool, load_image, image, settings)
    return await run_in(HEAVY, prepare_image, data, intake.submission)


def _withdraw(job: Job, submission: Submission) -> None:
    get_submissions().withdraw(job, submission.idempotency_key)


def _mark_cancelled(job: Job) -> Job:
    """The record after the cancel mark: failed and `cancelled`, or as it was if it finished
    first (update_job never changes a finished record)."""
    return get_job_store().update_job(
        job.app_id,
        job.id,
        status="failed",
        error_code=CANCELLED,
        error_message=failure_message(CANCELLED),
        completed_at=int(time.time()),
    )


def _delete_finished(job: Job) -> None:
    get_video_assets().delete_all(job.video_blob, job.thumbnail_blob, job.reference_blob)
    get_job_store().delete_job(job.app_id, job.id)
