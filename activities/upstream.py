"""Activities that talk to a job's provider (the account it was bound to when accepted, through
the provider port) and record what it said on the job.

Throttling (429) is returned, not raised, so the orchestrator waits it out on a durable timer
for as long as the upstream asks; other transient failures raise and are retried by Durable;
permanent answers (a refusal, 401/403, a lost job) are returned as final statuses. A job that
carries a cancel mark (its record is final, or gone) is never worked on: the activity answers
`cancelled` instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import azure.durable_functions as df

from activities import names
from gateway.clients import get_job_store, get_provider, get_upstream_creator, get_upstream_pacer
from gateway.creation import progress_fields
from gateway.errors import UpstreamAmbiguousError, UpstreamRejectedError, UpstreamThrottled
from gateway.messages import (
    UPSTREAM_AMBIGUOUS,
    ActivityInput,
    CreateRequest,
    JobRef,
    StatusCheck,
    UpstreamJobRef,
    UpstreamStatus,
    rejection_code,
)
from gateway.polling import ProgressTrack
from gateway.settings import DEFAULT_PROVIDER, get_settings

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name(names.RESERVE_UPSTREAM_SLOT)
@bp.activity_trigger(input_name="payload")
def reserve_upstream_slot(payload: ActivityInput) -> float:
    """Unix time at which this job may create its upstream job (reserved once per job)."""
    ref = JobRef.from_dict(payload)
    jobs = get_job_store()
    job = jobs.get_job(ref.app_id, ref.job_id)
    if job is None or job.finished:
        return time.time()  # gone or cancelled: no slot to take; create answers `cancelled`
    if job.start_at is not None:
        return job.start_at
    start_at = get_upstream_pacer().reserve(job.provider or DEFAULT_PROVIDER, time.time())
    jobs.update_job(ref.app_id, ref.job_id, start_at=start_at)
    return start_at


@bp.function_name(names.CREATE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def create_upstream_job(payload: ActivityInput) -> dict[str, Any]:
    """Create the job's upstream video at most once (see gateway.creation)."""
    request = CreateRequest.from_dict(payload)
    ref, policy = request.job, request.poll
    job = get_job_store().get_job(ref.app_id, ref.job_id)
    if job is None or job.finished:
        # Deleted or cancelled before its turn: nothing to create.
        return UpstreamStatus.job_cancelled(None).to_dict()
    creator = get_upstream_creator()
    # Jobs from before providers name no provider model: the deployment the settings give theirs.
    provider_model = job.provider_model or get_settings().deployments.get(job.model, job.model)
    try:
        video = creator.ensure_created(job, provider_model)
    except UpstreamAmbiguousError as error:
        log.warning("job %s: %s; not retried", job.id, error.message)
        return UpstreamStatus.refused(None, UPSTREAM_AMBIGUOUS).to_dict()
    except UpstreamRejectedError as error:
        log.info("upstream refused job %s: %s %s (%s)", job.id, error.status, error.code, error.message)
        return UpstreamStatus.refused(
            None, rejection_code(error.status, error.code, keep_upstream_code=True)
        ).to_dict()
    except UpstreamThrottled as error:
        return UpstreamStatus.throttled(None, error.retry_after).to_dict()
    now = time.time()
    origin = float(video.created_at or now)
    track = ProgressTrack(origin=origin).observe(now - origin, video.progress or 0)
    recorded = creator.record(job, video, policy.next_check_at(track))
    if recorded.finished:
        # Cancelled while the create was under way: the orchestrator deletes what was made.
        return UpstreamStatus.job_cancelled(video.id).to_dict()
    return UpstreamStatus.of(video, track).to_dict()


@bp.function_name(names.CHECK_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def check_upstream_job(payload: ActivityInput) -> dict[str, Any]:
    check = StatusCheck.from_dict(payload)
    ref, policy = check.upstream, check.poll
    jobs = get_job_store()
    job = jobs.get_job(ref.job.app_id, ref.job.job_id)
    if job is None or job.finished:
        # Read first, so a check retried through an outage stops at its next attempt.
        return UpstreamStatus.job_cancelled(ref.upstream_id).to_dict()
    try:
        video = get_provider(job.provider).get(ref.upstream_id)
    except UpstreamThrottled as error:
        return UpstreamStatus.throttled(ref.upstream_id, error.retry_after).to_dict()
    except UpstreamRejectedError as error:
        # 401/403/404 will not change with time: final now, not a timeout later.
        log.warning("status of upstream %s refused: %s %s", ref.upstream_id, error.status, error.code)
        code = rejection_code(error.status, error.code, keep_upstream_code=False)
        return UpstreamStatus.refused(ref.upstream_id, code).to_dict()
    if video.error_code or video.error_message:
        # The upstream's own words stay in the log: the job gets a code and its sentence only.
        log.info(
            "upstream %s ended %s: %s (%s)",
            ref.upstream_id,
            video.status,
            video.error_code,
            video.error_message,
        )
    track = check.track.observe(time.time() - check.track.origin, video.progress or 0)
    updated = jobs.update_job(
        ref.job.app_id, ref.job.job_id, next_check_at=policy.next_check_at(track), **progress_fields(video)
    )
    if updated.finished:
        return UpstreamStatus.job_cancelled(ref.upstream_id).to_dict()
    return UpstreamStatus.of(video, track).to_dict()


@bp.function_name(names.DELETE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def delete_upstream_job(payload: ActivityInput) -> bool:
    """Delete the upstream job; False when it was gone already or the upstream refuses for good
    (retrying a 401/403 changes nothing). Transient failures raise and are retried."""
    ref = UpstreamJobRef.from_dict(payload)
    # The record names the provider; it outlives the orchestration (only finished jobs are deleted).
    job = get_job_store().get_job(ref.job.app_id, ref.job.job_id)
    try:
        provider = get_provider(job.provider if job is not None else None)
        if not provider.capabilities.delete:
            return False  # the provider's job expires on its own
        return provider.delete(ref.upstream_id)
    except UpstreamRejectedError as error:
        log.warning("could not delete upstream %s: %s %s", ref.upstream_id, error.status, error.code)
        return False
