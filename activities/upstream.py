"""Activities that talk to the Sora upstream and record what it said on the job."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from activities import names
from gateway.clients import get_job_store, get_sora_client
from gateway.errors import UpstreamRejectedError
from gateway.messages import JobRef, UpstreamJobRef, UpstreamStatus
from gateway.settings import get_settings

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name(names.CREATE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def create_upstream_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Create the upstream job for a gateway job, at most once.

    A retried or replayed call finds the upstream id recorded by the first one and returns
    that job's status instead of creating a second upstream job.
    """
    ref = JobRef.from_dict(payload)
    jobs = get_job_store()
    job = jobs.get_job(ref.app_id, ref.job_id)
    if job is None or job.finished:
        # Deleted or cancelled before its turn: nothing to create.
        return UpstreamStatus(upstream_id=None, status="failed", error_code="cancelled").to_dict()
    sora = get_sora_client()
    if job.upstream_id:
        return UpstreamStatus.of(sora.get_video(job.upstream_id)).to_dict()
    deployment = get_settings().deployments.get(job.model, job.model)
    try:
        video = sora.create_video(model=deployment, prompt=job.prompt, seconds=job.seconds, size=job.size)
    except UpstreamRejectedError as error:
        log.info("upstream refused job %s: %s", job.id, error.code)
        return UpstreamStatus(
            upstream_id=None,
            status="failed",
            error_code=error.code,
            error_message=error.message,
            rejected=True,
        ).to_dict()
    jobs.update_job(
        ref.app_id, ref.job_id, upstream_id=video.id, **_progress_fields(video.status, video.progress)
    )
    return UpstreamStatus.of(video).to_dict()


@bp.function_name(names.CHECK_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def check_upstream_job(payload: dict[str, Any]) -> dict[str, Any]:
    ref = UpstreamJobRef.from_dict(payload)
    video = get_sora_client().get_video(ref.upstream_id)
    get_job_store().update_job(
        ref.job.app_id, ref.job.job_id, **_progress_fields(video.status, video.progress)
    )
    return UpstreamStatus.of(video).to_dict()


@bp.function_name(names.DELETE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def delete_upstream_job(payload: dict[str, Any]) -> bool:
    ref = UpstreamJobRef.from_dict(payload)
    return get_sora_client().delete_video(ref.upstream_id)


def _progress_fields(status: str, progress: int) -> dict[str, Any]:
    # "completed" is only written once the assets are stored, so a reader never sees a
    # completed job without its video.
    if status in ("completed", "failed"):
        return {"status": "in_progress", "progress": 99}
    return {"status": status, "progress": min(progress, 99)}
