"""Activities that store a finished job's outcome: its assets, or its failure."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from activities import names
from gateway.blobs import asset_blob_name, copy_upstream_asset
from gateway.clients import get_job_store, get_quota_store, get_sora_client, get_video_assets
from gateway.errors import UpstreamRejectedError
from gateway.messages import ActivityInput, JobFailure, JobRef, StoredAssets, UpstreamJobRef
from gateway.settings import get_settings

bp = df.Blueprint()

VIDEO_ASSET = "video.mp4"
THUMBNAIL_ASSET = "thumbnail.jpg"


@bp.function_name(names.STORE_VIDEO_ASSETS)
@bp.activity_trigger(input_name="payload")
def store_video_assets(payload: ActivityInput) -> dict[str, Any] | None:
    """Stream the finished MP4 (and its thumbnail, when there is one) into Blob Storage.

    Returns None when the job was cancelled meanwhile; then nothing is left behind in storage.
    """
    ref = UpstreamJobRef.from_dict(payload)
    jobs = get_job_store()
    current = jobs.get_job(ref.job.app_id, ref.job.job_id)
    if current is None or current.finished:
        return None
    video_blob = asset_blob_name(ref.job.app_id, ref.job.job_id, VIDEO_ASSET)
    written = _copy(ref.upstream_id, "video", video_blob, "video/mp4")
    thumbnail_blob: str | None = asset_blob_name(ref.job.app_id, ref.job.job_id, THUMBNAIL_ASSET)
    try:
        _copy(ref.upstream_id, "thumbnail", str(thumbnail_blob), "image/jpeg")
    except UpstreamRejectedError:
        thumbnail_blob = None  # a thumbnail is a nicety; its absence must not fail the video
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
        thumbnail_blob=thumbnail_blob,
    )
    if stored.video_blob != video_blob:
        # Cancelled or deleted while copying: the record will never point at these blobs.
        get_video_assets().delete_all(video_blob, thumbnail_blob)
        return None
    # The orchestration's output carries a link too (operators read it in the status API);
    # clients always get a freshly minted one from the API.
    video_url = get_video_assets().read_url(video_blob, timedelta(minutes=get_settings().sas_ttl_minutes))
    return StoredAssets(
        video_blob=video_blob, thumbnail_blob=thumbnail_blob, video_bytes=written, video_url=video_url
    ).to_dict()


def _copy(upstream_id: str, variant: str, blob_name: str, content_type: str) -> int:
    return copy_upstream_asset(
        get_sora_client(), get_video_assets(), upstream_id, variant, blob_name, content_type
    )


@bp.function_name(names.FAIL_JOB)
@bp.activity_trigger(input_name="payload")
def fail_job(payload: ActivityInput) -> None:
    failure = JobFailure.from_dict(payload)
    get_job_store().update_job(
        failure.job.app_id,
        failure.job.job_id,
        status="failed",
        error_code=failure.code,
        error_message=failure.message,
        completed_at=int(time.time()),
    )


@bp.function_name(names.RELEASE_QUOTA_SLOT)
@bp.activity_trigger(input_name="payload")
def release_quota_slot(payload: ActivityInput) -> bool:
    """Give the app its slot back: the upstream never accepted the job."""
    ref = JobRef.from_dict(payload)
    return get_quota_store().release(ref.app_id, ref.job_id, time.time())
