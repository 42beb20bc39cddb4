"""Retention: what the Blob lifecycle rule cannot do alone, and jobs nothing will finish.

In Azure a lifecycle rule deletes video blobs after the retention period; this sweep also
clears the job records' asset fields, deletes job records once they are long past use, and
deletes orphan blobs (assets whose job record is gone, e.g. after an interrupted delete) and the
files of failed jobs (which keep none: a backstop for a clean-up their orchestration could not
finish). Locally, with no lifecycle rule, it does all of it.

`Reconciler` finishes jobs whose orchestration ended, or vanished, while their record still
says queued or in progress (a crashed or terminated orchestration, a purged task hub): they
fail with a code saying so, give their quota slot back when the upstream never had them, and
their upstream job and their files are deleted. `maintenance/retention.py` asks the durable
client for each orchestration's status; the decision itself, `settlement_for`, is pure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gateway.blobs import VideoAssets, asset_blob_name
from gateway.budgets import from_micros
from gateway.jobs import Job, JobStore
from gateway.messages import ORCHESTRATION_FAILED as ORCHESTRATION_FAILED  # the sweep's codes,
from gateway.messages import ORCHESTRATION_LOST as ORCHESTRATION_LOST  # named with the rest of it
from gateway.messages import failure_code, failure_message
from gateway.quota import QuotaStore

# Records outlive their assets so that reads can say `video_expired` rather than "not found".
RECORD_GRACE_SECONDS = 30 * 86400
# Assets are written before their record points at them; give that a wide margin.
ORPHAN_MIN_AGE_SECONDS = 3600
# A job is recorded just before its orchestration starts, and the durable backend may take a
# while to show a new instance: younger jobs are never reconciled.
RECONCILE_GRACE_SECONDS = 600
# Runtime statuses after which an orchestration does nothing more (durable's own names).
ORCHESTRATION_ENDED = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
# The files a job's orchestration writes under `<app>/<job>/` (activities/jobs.py writes them).
VIDEO_ASSET = "video.mp4"
THUMBNAIL_ASSET = "thumbnail.jpg"
JOB_ASSETS = (VIDEO_ASSET, THUMBNAIL_ASSET)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    expired_assets: int
    deleted_records: int
    orphan_blobs: int


class RetentionSweeper:
    def __init__(self, jobs: JobStore, assets: VideoAssets, retention_days: int) -> None:
        self._jobs = jobs
        self._assets = assets
        self._retention_seconds = retention_days * 86400

    def sweep(self, now: float, *, orphan_min_age: float = ORPHAN_MIN_AGE_SECONDS) -> SweepReport:
        expired = 0
        for job in self._jobs.jobs_expired_before(now):
            if job.video_blob or job.thumbnail_blob or job.reference_blob:
                self._assets.delete_all(job.video_blob, job.thumbnail_blob, job.reference_blob)
                self._jobs.forget_assets(job.app_id, job.id)
                expired += 1
        deleted = 0
        for job in self._jobs.jobs_created_before(now - self._retention_seconds - RECORD_GRACE_SECONDS):
            if job.finished:
                self._assets.delete_all(job.video_blob, job.thumbnail_blob, job.reference_blob)
                self._jobs.delete_job(job.app_id, job.id)
                deleted += 1
        orphans = self._delete_orphans(now - orphan_min_age)
        report = SweepReport(expired_assets=expired, deleted_records=deleted, orphan_blobs=orphans)
        log.info("retention sweep: %s", report)
        return report

    def _delete_orphans(self, older_than: float) -> int:
        """Delete the blobs, older than `older_than`, of jobs whose record is gone (orphans) or
        says failed (a failed job keeps no files; fail_job deletes them, this is the backstop for
        when it could not). The age guard leaves alone files still being written, and failed
        jobs that only just failed, whose own clean-up may still be under way."""
        cutoff = datetime.fromtimestamp(older_than, UTC)
        owners: dict[tuple[str, str], Job | None] = {}
        deleted = 0
        for name, modified in self._assets.list_blobs():
            parts = name.split("/")
            if len(parts) != 3 or modified > cutoff:
                continue
            owner = (parts[0], parts[1])
            if owner not in owners:
                owners[owner] = self._jobs.get_job(*owner)
            job = owners[owner]
            if job is None or _failed_before(job, older_than):
                self._assets.delete_all(name)
                deleted += 1
        for job in owners.values():
            if job is not None and _failed_before(job, older_than) and _has_files(job):
                self._jobs.forget_assets(job.app_id, job.id)
        return deleted


def _failed_before(job: Job, when: float) -> bool:
    return job.status == "failed" and (job.completed_at or job.created_at) < when


def _has_files(job: Job) -> bool:
    return bool(job.video_blob or job.thumbnail_blob or job.reference_blob)


class UpstreamJobs(Protocol):
    """What reconciliation asks of the providers: delete a job's upstream job, at the provider
    the job is bound to (False when it was gone, or that provider cannot delete)."""

    def delete_upstream(self, job: Job) -> bool: ...


@dataclass(frozen=True)
class Settlement:
    """How a job its orchestration left unfinished is finished: with this code, and the one
    sentence the gateway has for it (gateway.messages), whatever the runtime status was."""

    code: str

    @property
    def message(self) -> str:
        return failure_message(self.code)


def settlement_for(
    job: Job,
    runtime_status: str | None,
    now: float,
    *,
    grace: float = RECONCILE_GRACE_SECONDS,
    output: object = None,
) -> Settlement | None:
    """What to do about `job`, given its orchestration's runtime status (None: no such instance)
    and output.

    None leaves the job alone: it is finished, too young to judge, or its orchestration still runs.
    """
    if job.finished or job.created_at > now - grace:
        return None
    if runtime_status is None:
        return Settlement(ORCHESTRATION_LOST)
    if runtime_status in ORCHESTRATION_ENDED:
        return Settlement(_code_it_ended_with(runtime_status, output) or ORCHESTRATION_FAILED)
    return None


def _code_it_ended_with(runtime_status: str, output: object) -> str | None:
    """The failure code of an orchestration that ran to its end and could not write it to the
    record (storage was down: its output says failed, `recorded: false`): the app is told why its
    video failed (a timeout, a cancel), not only that processing ended."""
    if runtime_status != "Completed" or not isinstance(output, dict) or output.get("status") != "failed":
        return None
    code = output.get("error_code")
    return failure_code(code) if isinstance(code, str) else None


@dataclass(frozen=True)
class Settled:
    """What settling one job did."""

    job: Job
    refunded: bool
    upstream_deleted: bool


class Reconciler:
    def __init__(
        self, jobs: JobStore, quota: QuotaStore, upstream: UpstreamJobs, assets: VideoAssets
    ) -> None:
        self._jobs = jobs
        self._quota = quota
        self._upstream = upstream
        self._assets = assets

    def candidates(self, now: float, *, grace: float = RECONCILE_GRACE_SECONDS) -> list[Job]:
        """Unfinished jobs old enough that their orchestration should be running or done."""
        return self._jobs.unfinished_jobs_created_before(now - grace)

    def settle(self, job: Job, settlement: Settlement, now: float) -> Settled | None:
        """Fail the job with the settlement's code; None when it finished by itself meanwhile.

        The refund and the upstream delete are decided from the record as it was failed, not as
        it was listed: an upstream id may have been recorded since.
        """
        failed = self._jobs.update_job(
            job.app_id,
            job.id,
            status="failed",
            error_code=settlement.code,
            error_message=settlement.message,
            completed_at=int(now),
        )
        if (failed.error_code, failed.completed_at) != (settlement.code, int(now)):
            return None  # update_job leaves finished jobs alone: it finished on its own
        refunded = False
        cost = 0
        if failed.upstream_id is None:
            # The upstream never had the job, so it cost nothing: the app gets its slot back.
            refunded = self._quota.release(failed.app_id, failed.id, now)
        else:
            # Accepted upstream, then lost: charged, as the default policy charges a job that
            # failed after acceptance (gateway.charges); its reservation must not stay open.
            cost = self._quota.settle(failed.app_id, failed.id, now) or 0
        failed = self._jobs.update_job(failed.app_id, failed.id, allow_finished=True, cost=from_micros(cost))
        upstream_deleted = failed.upstream_id is not None and self._delete_upstream(failed)
        self._delete_files(failed)
        log.warning(
            "reconciled video %s of app %s: %s (slot refunded: %s, upstream job deleted: %s)",
            failed.id,
            failed.app_id,
            settlement.code,
            refunded,
            upstream_deleted,
        )
        return Settled(job=failed, refunded=refunded, upstream_deleted=upstream_deleted)

    def _delete_files(self, job: Job) -> None:
        """Best effort, like fail_job: a failed job keeps no files. Its orchestration may have
        copied the video before it crashed; what fails to go now, the sweep's backstop removes."""
        names = [asset_blob_name(job.app_id, job.id, asset) for asset in JOB_ASSETS]
        try:
            self._assets.delete_all(*names, job.video_blob, job.thumbnail_blob, job.reference_blob)
            if _has_files(job):
                self._jobs.forget_assets(job.app_id, job.id)
        except Exception as error:
            log.warning("could not delete the files of video %s: %s", job.id, type(error).__name__)

    def _delete_upstream(self, job: Job) -> bool:
        """Best effort: a job nobody will collect should not keep running upstream."""
        assert job.upstream_id is not None
        try:
            return self._upstream.delete_upstream(job)
        except Exception as error:
            log.warning("could not delete upstream job %s of video %s: %s", job.upstream_id, job.id, error)
            return False
