"""Creating a job's upstream video exactly once, even when the create is retried or replayed.

Before calling the upstream, the job records that a create started. A later attempt that finds
that mark (the first attempt died between the upstream's answer and our write) looks for the
upstream job the first attempt made, by its parameters and time, and adopts it instead of
creating a second one. An insert-only claim row stops two gateway jobs adopting the same one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from azure.core.exceptions import ResourceExistsError

from gateway.jobs import Job, JobStore
from gateway.sora import SoraClient, UpstreamVideo
from gateway.tables import Tables

CLAIMS_TABLE = "upstreamclaims"
# Clocks of gateway and upstream differ a little; created_at is whole seconds.
CLOCK_SLACK_SECONDS = 5
log = logging.getLogger(__name__)


def progress_fields(video: UpstreamVideo) -> dict[str, Any]:
    """Job fields for an upstream status. "completed" is written only once the assets are
    stored, so a reader never sees a completed job without its video."""
    status = "in_progress" if video.status in ("completed", "failed") else video.status
    return {"status": status, "progress": min(video.progress, 99)}


class UpstreamCreator:
    def __init__(self, jobs: JobStore, tables: Tables, sora: SoraClient) -> None:
        self._jobs = jobs
        self._claims = tables.get(CLAIMS_TABLE)
        self._sora = sora

    def ensure_created(self, job: Job, deployment: str) -> UpstreamVideo:
        """The job's upstream video, created now or found from an earlier attempt.

        Raises the upstream's errors: transient ones for the caller to retry, rejections to record.
        """
        if job.upstream_id:
            return self._sora.get_video(job.upstream_id)
        if job.create_started_at is not None:
            adopted = self._find_earlier_attempt(job, deployment)
            if adopted is not None:
                log.warning("job %s adopted upstream %s from an interrupted attempt", job.id, adopted.id)
                return adopted
        job = self._jobs.update_job(job.app_id, job.id, create_started_at=time.time())
        video = self._sora.create_video(
            model=deployment, prompt=job.prompt, seconds=job.seconds, size=job.size
        )
        self._claim(video.id, job)
        return video

    def record(self, job: Job, video: UpstreamVideo, next_check_at: float) -> None:
        self._jobs.update_job(
            job.app_id, job.id, upstream_id=video.id, next_check_at=next_check_at, **progress_fields(video)
        )

    def _find_earlier_attempt(self, job: Job, deployment: str) -> UpstreamVideo | None:
        assert job.create_started_at is not None
        since = job.create_started_at - CLOCK_SLACK_SECONDS
        for candidate in self._sora.list_videos(limit=100):
            if candidate.created_at is not None and candidate.created_at < since:
                break  # newest first: everything further is older still
            if (candidate.prompt, candidate.model, candidate.seconds, candidate.size) != (
                job.prompt,
                deployment,
                job.seconds,
                job.size,
            ):
                continue
            if self._claim(candidate.id, job):
                return candidate
        return None

    def _claim(self, upstream_id: str, job: Job) -> bool:
        try:
            self._claims.create_entity(
                {"PartitionKey": upstream_id, "RowKey": "claim", "app_id": job.app_id, "job_id": job.id}
            )
        except ResourceExistsError:
            owner = self._claims.get_entity(upstream_id, "claim")
            return bool(owner["job_id"] == job.id)
        return True
