"""Retention: what the Blob lifecycle rule cannot do alone.

In Azure a lifecycle rule deletes video blobs after the retention period; this sweep also
clears the job records' asset fields, deletes job records once they are long past use, and
deletes orphan blobs (assets whose job record is gone, e.g. after an interrupted delete).
Locally, with no lifecycle rule, it does all of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.blobs import VideoAssets
from gateway.jobs import JobStore

# Records outlive their assets so that reads can say `video_expired` rather than "not found".
RECORD_GRACE_SECONDS = 30 * 86400
# Assets are written before their record points at them; give that a wide margin.
ORPHAN_MIN_AGE_SECONDS = 3600
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
                self._jobs.update_job(
                    job.app_id,
                    job.id,
                    allow_finished=True,
                    video_blob=None,
                    thumbnail_blob=None,
                    reference_blob=None,
                )
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
        cutoff = datetime.fromtimestamp(older_than, UTC)
        known: dict[tuple[str, str], bool] = {}
        deleted = 0
        for name, modified in self._assets.list_blobs():
            parts = name.split("/")
            if len(parts) != 3 or modified > cutoff:
                continue
            owner = (parts[0], parts[1])
            if owner not in known:
                known[owner] = self._jobs.get_job(*owner) is not None
            if not known[owner]:
                self._assets.delete_all(name)
                deleted += 1
        return deleted
