"""The retention sweep and the reconciliation of unfinished jobs, against Azurite."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from gateway.blobs import VideoAssets
from gateway.jobs import Job, JobStore, new_job_id
from gateway.messages import failure_message
from gateway.quota import Limits, QuotaStore
from gateway.retention import (
    ORCHESTRATION_ENDED,
    ORCHESTRATION_FAILED,
    ORCHESTRATION_LOST,
    RECONCILE_GRACE_SECONDS,
    RECORD_GRACE_SECONDS,
    Reconciler,
    RetentionSweeper,
    Settlement,
    settlement_for,
)
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


def failed_job_with_files(jobs: JobStore, assets: VideoAssets, *, failed_at: float) -> tuple[Job, list[str]]:
    """A failed job whose files were left behind (its orchestration's clean-up could not run):
    video and thumbnail under its prefix, and its reference image on the record."""
    job = stored_job(jobs, assets, status="failed", error_code="cancelled", completed_at=int(failed_at))
    reference = f"{job.app_id}/{job.id}/reference.png"
    assets.upload_bytes(reference, b"png", content_type="image/png")
    jobs.update_job(job.app_id, job.id, allow_finished=True, reference_blob=reference)
    return job, [str(job.video_blob), str(job.thumbnail_blob), reference]


def test_files_of_failed_jobs_are_deleted_once_old_enough(tables: Tables, video_assets: VideoAssets) -> None:
    jobs = JobStore(tables)
    old_failure, old_files = failed_job_with_files(jobs, video_assets, failed_at=NOW - 7200)
    _, new_files = failed_job_with_files(jobs, video_assets, failed_at=time.time() + 60)
    completed = stored_job(jobs, video_assets, expires_at=int(NOW) + DAY)

    report = RetentionSweeper(jobs, video_assets, retention_days=7).sweep(time.time() + 5, orphan_min_age=0)

    assert report.orphan_blobs >= 3  # other tests' leftovers may count too; these three are checked
    assert [name for name in old_files if video_assets.exists(name)] == []
    after = jobs.get_job(old_failure.app_id, old_failure.id)
    assert after is not None  # the record stays: reads still say why it failed
    assert (after.status, after.video_blob, after.thumbnail_blob, after.reference_blob) == (
        "failed",
        None,
        None,
        None,
    )
    # Age guard: a job that only just failed may still be cleaning up after itself.
    assert all(video_assets.exists(name) for name in new_files)
    video_assets.delete_all(*new_files)
    assert video_assets.exists(str(completed.video_blob))
    assert video_assets.exists(str(completed.thumbnail_blob))


def test_files_of_failed_jobs_younger_than_the_orphan_age_are_kept(
    tables: Tables, video_assets: VideoAssets
) -> None:
    jobs = JobStore(tables)
    _, files = failed_job_with_files(jobs, video_assets, failed_at=NOW - 7200)

    report = RetentionSweeper(jobs, video_assets, retention_days=7).sweep(
        time.time()
    )  # blobs are seconds old

    assert report.orphan_blobs == 0
    assert all(video_assets.exists(name) for name in files)
    video_assets.delete_all(*files)  # not left for another test's sweep to count


# --- reconciliation: jobs whose orchestration ended or vanished without finishing them ---------

OLD = NOW - RECONCILE_GRACE_SECONDS - 60


def unfinished_job(jobs: JobStore, **fields: object) -> Job:
    job = Job(
        id=new_job_id(),
        app_id="app_" + uuid.uuid4().hex[:8],
        model="sora-2",
        prompt="p",
        seconds="4",
        size="720x1280",
        created_at=int(OLD),
        status="in_progress",
    )
    job = replace(job, **fields)  # type: ignore[arg-type]
    jobs.add_job(job)
    return job


class RecordingUpstream:
    def __init__(self, error: Exception | None = None) -> None:
        self.deleted: list[str] = []
        self.error = error

    def delete_upstream(self, job: Job) -> bool:
        assert job.upstream_id is not None
        self.deleted.append(job.upstream_id)
        if self.error is not None:
            raise self.error
        return True


@pytest.mark.parametrize("status", sorted(ORCHESTRATION_ENDED))
def test_a_job_whose_orchestration_ended_unfinished_fails_with_orchestration_failed(status: str) -> None:
    job = Job(
        id="v", app_id="a", model="sora-2", prompt="p", seconds="4", size="720x1280", created_at=int(OLD)
    )
    settlement = settlement_for(replace(job, status="in_progress"), status, NOW)
    assert settlement is not None
    assert settlement.code == ORCHESTRATION_FAILED
    # The app reads the code's one sentence; the runtime status is an internal, for the log.
    assert settlement.message == failure_message(ORCHESTRATION_FAILED)
    assert status not in settlement.message


def test_an_orchestration_that_ended_without_writing_its_failure_passes_its_code_on() -> None:
    """Its output says failed with a code (storage was down for its own final write): the
    record gets that code, not only "processing ended"."""
    job = Job(
        id="v", app_id="a", model="sora-2", prompt="p", seconds="4", size="720x1280", created_at=int(OLD)
    )
    unrecorded = {"job_id": "v", "status": "failed", "error_code": "timeout", "recorded": False}
    settlement = settlement_for(job, "Completed", NOW, output=unrecorded)
    assert settlement is not None
    assert (settlement.code, settlement.message) == ("timeout", failure_message("timeout"))
    # A code that is not a plain word is not passed on as it is.
    odd = settlement_for(job, "Completed", NOW, output={**unrecorded, "error_code": "HTTP 500: boom"})
    assert odd is not None
    assert odd.code == "upstream_error"
    # Only a Completed run's own output is believed; anything else is "processing ended".
    for status, output in (
        ("Failed", unrecorded),
        ("Terminated", unrecorded),
        ("Completed", {**unrecorded, "status": "completed"}),
        ("Completed", {"status": "failed"}),
        ("Completed", "failed"),
        ("Completed", None),
    ):
        ended = settlement_for(job, status, NOW, output=output)
        assert ended is not None, (status, output)
        assert ended.code == ORCHESTRATION_FAILED, (status, output)


def test_a_job_whose_orchestration_vanished_fails_with_orchestration_lost() -> None:
    job = Job(
        id="v", app_id="a", model="sora-2", prompt="p", seconds="4", size="720x1280", created_at=int(OLD)
    )
    settlement = settlement_for(job, None, NOW)
    assert settlement is not None
    assert settlement.code == ORCHESTRATION_LOST


@pytest.mark.parametrize("status", ["Running", "Pending", "Suspended", "ContinuedAsNew"])
def test_a_job_whose_orchestration_still_runs_is_left_alone(status: str) -> None:
    job = Job(
        id="v", app_id="a", model="sora-2", prompt="p", seconds="4", size="720x1280", created_at=int(OLD)
    )
    assert settlement_for(job, status, NOW) is None


def test_young_and_finished_jobs_are_left_alone() -> None:
    job = Job(
        id="v", app_id="a", model="sora-2", prompt="p", seconds="4", size="720x1280", created_at=int(OLD)
    )
    just_started = replace(job, created_at=int(NOW - RECONCILE_GRACE_SECONDS + 30))
    assert settlement_for(just_started, None, NOW) is None  # its orchestration may not show yet
    assert settlement_for(replace(job, status="completed"), "Completed", NOW) is None
    assert settlement_for(replace(job, status="failed"), None, NOW) is None
    assert settlement_for(job, None, NOW) is not None  # the same job, old and unfinished


def test_candidates_are_old_unfinished_jobs(tables: Tables, video_assets: VideoAssets) -> None:
    jobs = JobStore(tables)
    queued = unfinished_job(jobs, status="queued")
    running = unfinished_job(jobs)
    unfinished_job(jobs, created_at=int(NOW))  # too young
    unfinished_job(jobs, status="completed")
    unfinished_job(jobs, status="failed")

    reconciler = Reconciler(jobs, QuotaStore(tables), RecordingUpstream(), video_assets)
    assert {job.id for job in reconciler.candidates(NOW)} == {queued.id, running.id}


def test_settling_a_job_the_upstream_never_had_refunds_its_slot(
    tables: Tables, video_assets: VideoAssets
) -> None:
    jobs, quota, upstream = JobStore(tables), QuotaStore(tables), RecordingUpstream()
    job = unfinished_job(jobs, status="queued")
    limits = Limits(hour=5, day=20)
    assert quota.admit(job.app_id, limits, job.id, NOW - 60, amount=400_000).admitted

    settled = Reconciler(jobs, quota, upstream, video_assets).settle(job, Settlement(ORCHESTRATION_LOST), NOW)

    assert settled is not None
    assert (settled.refunded, settled.upstream_deleted) == (True, False)
    stored = jobs.get_job(job.app_id, job.id)
    assert stored is not None
    assert (stored.status, stored.error_code) == ("failed", ORCHESTRATION_LOST)
    assert stored.error_message == failure_message(ORCHESTRATION_LOST)
    assert stored.completed_at == int(NOW)
    assert quota.usage(job.app_id, limits, NOW).used == {"hour": 0, "day": 0}
    money = quota.usage(job.app_id, limits, NOW).money.month
    assert (money.reserved, money.spent, stored.cost) == (0, 0, 0.0)  # its money back with the slot
    assert upstream.deleted == []


def test_settling_a_job_with_an_upstream_job_deletes_it_and_keeps_the_slot(
    tables: Tables, video_assets: VideoAssets
) -> None:
    jobs, quota, upstream = JobStore(tables), QuotaStore(tables), RecordingUpstream()
    job = unfinished_job(jobs, upstream_id="up_1")
    limits = Limits(hour=5, day=20)
    quota.admit(job.app_id, limits, job.id, NOW - 60, amount=400_000)

    settled = Reconciler(jobs, quota, upstream, video_assets).settle(
        job, Settlement(ORCHESTRATION_FAILED), NOW
    )

    assert settled is not None
    assert (settled.refunded, settled.upstream_deleted) == (False, True)
    assert upstream.deleted == ["up_1"]
    assert quota.usage(job.app_id, limits, NOW).used == {"hour": 1, "day": 1}  # the upstream had it
    money = quota.usage(job.app_id, limits, NOW).money.month
    stored = jobs.get_job(job.app_id, job.id)
    assert stored is not None
    assert (money.reserved, money.spent, stored.cost) == (0, 400_000, 0.4)  # charged: not left open


def test_the_upstream_id_recorded_after_listing_counts(tables: Tables, video_assets: VideoAssets) -> None:
    jobs, quota, upstream = JobStore(tables), QuotaStore(tables), RecordingUpstream()
    listed = unfinished_job(jobs, status="queued")
    jobs.update_job(listed.app_id, listed.id, upstream_id="up_late")

    settled = Reconciler(jobs, quota, upstream, video_assets).settle(
        listed, Settlement(ORCHESTRATION_LOST), NOW
    )

    assert settled is not None
    assert settled.refunded is False
    assert upstream.deleted == ["up_late"]


def test_a_failing_upstream_delete_still_finishes_the_job(tables: Tables, video_assets: VideoAssets) -> None:
    jobs, upstream = JobStore(tables), RecordingUpstream(ConnectionError("upstream down"))
    job = unfinished_job(jobs, upstream_id="up_2")

    settled = Reconciler(jobs, QuotaStore(tables), upstream, video_assets).settle(
        job, Settlement(ORCHESTRATION_FAILED), NOW
    )

    assert settled is not None
    assert settled.upstream_deleted is False
    assert upstream.deleted == ["up_2"]
    stored = jobs.get_job(job.app_id, job.id)
    assert stored is not None
    assert stored.error_code == ORCHESTRATION_FAILED


def test_a_job_that_finished_meanwhile_is_not_touched(tables: Tables, video_assets: VideoAssets) -> None:
    jobs, quota, upstream = JobStore(tables), QuotaStore(tables), RecordingUpstream()
    listed = unfinished_job(jobs, status="queued")
    quota.admit(listed.app_id, Limits(hour=5, day=20), listed.id, NOW - 60)
    jobs.update_job(listed.app_id, listed.id, status="completed", progress=100, completed_at=int(NOW) - 5)

    settled = Reconciler(jobs, quota, upstream, video_assets).settle(
        listed, Settlement(ORCHESTRATION_LOST), NOW
    )

    assert settled is None
    stored = jobs.get_job(listed.app_id, listed.id)
    assert stored is not None
    assert (stored.status, stored.error_code) == ("completed", None)
    assert quota.usage(listed.app_id, Limits(hour=5, day=20), NOW).used["hour"] == 1
    assert upstream.deleted == []


def test_settling_a_job_deletes_the_files_it_left(tables: Tables, video_assets: VideoAssets) -> None:
    # The orchestration copied the video and then crashed: its record still says in progress.
    jobs = JobStore(tables)
    job = unfinished_job(jobs, upstream_id="up_3", reference_blob=None)
    files = [f"{job.app_id}/{job.id}/{name}" for name in ("video.mp4", "thumbnail.jpg", "reference.jpg")]
    for name in files:
        video_assets.upload_bytes(name, b"x", content_type="application/octet-stream")
    jobs.update_job(job.app_id, job.id, reference_blob=files[2])

    settled = Reconciler(jobs, QuotaStore(tables), RecordingUpstream(), video_assets).settle(
        job, Settlement(ORCHESTRATION_FAILED), NOW
    )

    assert settled is not None
    assert [name for name in files if video_assets.exists(name)] == []
    stored = jobs.get_job(job.app_id, job.id)
    assert stored is not None
    assert (stored.status, stored.reference_blob) == ("failed", None)
