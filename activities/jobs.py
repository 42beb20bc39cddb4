"""Activities that store a finished job's outcome: its assets, or its failure."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from activities import names
from gateway.blobs import VideoAssets, asset_blob_name, copy_upstream_asset
from gateway.budgets import from_micros
from gateway.clients import get_job_store, get_provider, get_quota_store, get_video_assets
from gateway.errors import UpstreamRejectedError, UpstreamThrottled
from gateway.jobs import Job
from gateway.messages import (
    ActivityInput,
    JobFailure,
    JobRef,
    StoredAssets,
    StoreOutcome,
    UpstreamJobRef,
    failure_code,
    failure_message,
    rejection_code,
)
from gateway.pricing import settled_cost
from gateway.providers.port import VideoProvider
from gateway.retention import JOB_ASSETS, THUMBNAIL_ASSET, VIDEO_ASSET
from gateway.settings import get_settings

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name(names.STORE_VIDEO_ASSETS)
@bp.activity_trigger(input_name="payload")
def store_video_assets(payload: ActivityInput) -> dict[str, Any]:
    """Stream the finished MP4 (and its thumbnail, when there is one) into Blob Storage.

    Answers a StoreOutcome: `stored`; `cancelled` when the job carries a cancel mark (then no
    blob is left behind); `throttled` on a 429 (the orchestrator waits and asks again); `failed`
    when the upstream refuses for good. Transient failures raise, after deleting whatever this
    attempt wrote, and are retried by Durable.
    """
    ref = UpstreamJobRef.from_dict(payload)
    jobs, assets = get_job_store(), get_video_assets()
    current = jobs.get_job(ref.job.app_id, ref.job.job_id)
    if current is not None and current.status == "completed" and current.video_blob is not None:
        # An earlier attempt stored everything and then failed (or its answer was lost).
        return StoreOutcome.stored(_stored(current, current.video_blob)).to_dict()
    video_blob = asset_blob_name(ref.job.app_id, ref.job.job_id, VIDEO_ASSET)
    thumbnail_blob = asset_blob_name(ref.job.app_id, ref.job.job_id, THUMBNAIL_ASSET)
    if current is None or current.finished:
        # An earlier attempt may have copied the assets and then failed before its record
        # write; the job ended meanwhile (a cancel), so nothing will ever point at them.
        _discard(assets, video_blob, thumbnail_blob)
        return StoreOutcome.cancelled().to_dict()
    try:
        provider = get_provider(current.provider)  # the job's own, whatever the catalog says now
        written = copy_upstream_asset(provider, assets, ref.upstream_id, "video", video_blob, "video/mp4")
    except UpstreamThrottled as error:
        _discard(assets, video_blob)
        return StoreOutcome.throttled(error.retry_after).to_dict()
    except UpstreamRejectedError as error:
        _discard(assets, video_blob)
        log.warning("upstream %s refused its content: %s %s", ref.upstream_id, error.status, error.code)
        return StoreOutcome.failed(
            rejection_code(error.status, error.code, keep_upstream_code=False)
        ).to_dict()
    except BaseException:
        _discard(assets, video_blob)  # never a partial video: the next attempt starts afresh
        raise
    stored_thumbnail = None
    if provider.capabilities.thumbnail:
        stored_thumbnail = _copy_thumbnail(provider, assets, ref.upstream_id, thumbnail_blob)
    now = int(time.time())
    retention = timedelta(days=get_settings().video_retention_days)
    stored = jobs.update_job(
        ref.job.app_id,
        ref.job.job_id,
        status="completed",
        progress=100,
        completed_at=now,
        expires_at=now + int(retention.total_seconds()),
        video_blob=video_blob,
        thumbnail_blob=stored_thumbnail,
    )
    if stored.video_blob != video_blob:
        # Cancelled or deleted while copying: the record will never point at these blobs.
        _discard(assets, video_blob, stored_thumbnail)
        return StoreOutcome.cancelled().to_dict()
    # Completed: its reservation becomes its cost (after the record says so, never before: a
    # job cancelled meanwhile is settled by the charge policy instead).
    _settle(stored)
    # Blob names only: a URL is signed by whoever sends one (the API, a webhook), never kept.
    return StoreOutcome.stored(
        StoredAssets(video_blob=video_blob, thumbnail_blob=stored_thumbnail, video_bytes=written)
    ).to_dict()


def _copy_thumbnail(
    provider: VideoProvider, assets: VideoAssets, upstream_id: str, blob_name: str
) -> str | None:
    """The thumbnail's blob, or None: a thumbnail is a nicety, and whatever keeps it from being
    copied (a refusal, an outage, a 429) must not fail or hold up the video."""
    try:
        copy_upstream_asset(provider, assets, upstream_id, "thumbnail", blob_name, "image/jpeg")
    except Exception as error:
        log.warning("no thumbnail for upstream %s: %s", upstream_id, type(error).__name__)
        _discard(assets, blob_name)
        return None
    return blob_name


def _stored(job: Job, video_blob: str) -> StoredAssets:
    return StoredAssets(
        video_blob=video_blob,
        thumbnail_blob=job.thumbnail_blob,
        video_bytes=0,  # not known any more; the blob has it
    )


def _discard(assets: VideoAssets, *blob_names: str | None) -> bool:
    """Delete these blobs if storage lets us (True when it did); leftovers are removed by the
    retention sweep (orphans, and the files of failed jobs)."""
    try:
        assets.delete_all(*blob_names)
    except Exception:
        log.warning("could not delete %s", ", ".join(name for name in blob_names if name), exc_info=True)
        return False
    return True


@bp.function_name(names.FAIL_JOB)
@bp.activity_trigger(input_name="payload")
def fail_job(payload: ActivityInput) -> None:
    """Make the job `failed` with its code and the app-facing sentence for it (a record that is
    final already, e.g. cancelled, keeps its own), then delete every file of the failed job.

    A failed job keeps no files: its video and thumbnail (a copy may have finished before the
    job failed or was cancelled) and its reference image (no remix or retry can use it). The
    record stays, so reads still say why it failed. A file that cannot be deleted now is
    deleted by the retention sweep, which also removes the files of failed jobs."""
    failure = JobFailure.from_dict(payload)
    ref = failure.job
    jobs = get_job_store()
    job = jobs.get_job(ref.app_id, ref.job_id)
    if job is not None and job.status == "completed":
        return  # it completed first: its files are the video's, its cost settled by the store
    # The money as the charge policy said: released (slot and reservation, idempotent: the
    # orchestration released them already) or settled as a charge.
    if failure.charged is False:
        get_quota_store().release(ref.app_id, ref.job_id, time.time())
    cost = from_micros(get_quota_store().settle(ref.app_id, ref.job_id, time.time()) or 0)
    if job is not None:
        code = failure_code(failure.code)  # the one mapping: a code, and its sentence
        job = jobs.update_job(
            ref.app_id,
            ref.job_id,
            status="failed",
            error_code=code,
            error_message=failure_message(code),
            completed_at=int(time.time()),
            cost=cost,
        )
        if job.status == "failed" and job.cost != cost:  # final already (a DELETE's cancel mark)
            job = jobs.update_job(ref.app_id, ref.job_id, allow_finished=True, cost=cost)
    if job is not None and job.status == "completed":
        return  # it completed first: its files are the video's
    own = [asset_blob_name(ref.app_id, ref.job_id, asset) for asset in JOB_ASSETS]
    recorded = [] if job is None else [job.video_blob, job.thumbnail_blob, job.reference_blob]
    if _discard(get_video_assets(), *own, *recorded) and job is not None and any(recorded):
        jobs.forget_assets(ref.app_id, ref.job_id)


def _settle(job: Job) -> None:
    """Settle the completed job's reservation as its cost and record that cost on the job: the
    catalog's price for the duration the provider reported, where it reported one, else the
    amount reserved (the catalog's price for the duration asked for)."""
    cost = get_quota_store().settle(job.app_id, job.id, time.time(), settled_cost(get_settings(), job))
    get_job_store().update_job(job.app_id, job.id, allow_finished=True, cost=from_micros(cost or 0))


@bp.function_name(names.RELEASE_QUOTA_SLOT)
@bp.activity_trigger(input_name="payload")
def release_quota_slot(payload: ActivityInput) -> bool:
    """Give the app its slot back: the upstream never accepted the job."""
    ref = JobRef.from_dict(payload)
    return get_quota_store().release(ref.app_id, ref.job_id, time.time())
