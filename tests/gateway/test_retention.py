"""The retention sweep, against Azurite."""

from __future__ import annotations

import time
from dataclasses import replace

from gateway.blobs import VideoAssets
from gateway.jobs import Job, JobStore, new_job_id
from gateway.retention import RECORD_GRACE_SECONDS, RetentionSweeper
from gateway.tables import Tables

NOW = time.time()
DAY = 86400


def stored_job(jobs: JobStore, assets: VideoAssets, **fields: object) -> Job:
    job = Job(
        id=new_job_id(),
        app_id="app_r",
        model="sora-2",
        prompt="p",
        seconds="4",
        size="720x1280",
        created_at=int(NOW),
        status="completed",
        progress=100,
    )
    video = f"{job.app_id}/{job.id}/video.mp4"
    thumbnail = f"{job.app_id}/{job.id}/thumbnail.jpg"
    assets.upload_bytes(video, b"mp4", content_type="video/mp4")
    assets.upload_bytes(thumbnail, b"jpg", content_type="image/jpeg")
    job = replace(job, video_blob=video, thumbnail_blob=thumbnail, **fields)  # type: ignore[arg-type]
    jobs.add_job(job)
    return job


def test_expired_assets_are_deleted_and_fresh_ones_kept(tables: Tables, video_assets: VideoAssets) -> None:
    jobs = JobStore(tables)
    expired = stored_job(jobs, video_assets, expires_at=int(NOW) - 10)
    fresh = stored_job(jobs, video_assets, expires_at=int(NOW) + DAY)

    report = RetentionSweeper(jobs, video_assets, retention_days=7).sweep(NOW)

    assert report.expired_assets == 1
    assert not video_assets.exists(str(expired.video_blob))
    assert not video_assets.exists(str(expired.thumbnail_blob))
    assert video_assets.exists(str(fresh.video_blob))
    after = jobs.get_job(expired.app_id, expired.id)
    assert after is not None
    assert (after.status, after.video_blob) == ("completed", None)  # reads can still say "expired"


def test_long_finished_records_are_deleted(tables: Tables, video_assets: VideoAssets) -> None:
    jobs = JobStore(tables)
    ancient = int(NOW - 7 * DAY - RECORD_GRACE_SECONDS - 60)
    old = stored_job(jobs, video_assets, created_at=ancient, expires_at=ancient + 7 * DAY)
    recent = stored_job(jobs, video_assets, expires_at=int(NOW) + DAY)

    RetentionSweeper(jobs, video_assets, retention_days=7).sweep(NOW)

    assert jobs.get_job(old.app_id, old.id) is None
    assert jobs.get_job(recent.app_id, recent.id) is not None


def test_orphan_blobs_are_deleted_and_owned_ones_kept(tables: Tables, video_assets: VideoAssets) -> None:
    jobs = JobStore(tables)
    owned = stored_job(jobs, video_assets, expires_at=int(NOW) + DAY)
    video_assets.upload_bytes("app_r/video_gone/video.mp4", b"orphan", content_type="video/mp4")

    report = RetentionSweeper(jobs, video_assets, retention_days=7).sweep(time.time() + 5, orphan_min_age=0)

    assert report.orphan_blobs == 1
    assert not video_assets.exists("app_r/video_gone/video.mp4")
    assert video_assets.exists(str(owned.video_blob))
