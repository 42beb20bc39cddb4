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

from gateway.blobs import VideoAssets
from gateway.errors import UpstreamRejectedError
from gateway.jobs import Job, JobStore
from gateway.sora import ReferenceFile, SoraClient, UpstreamVideo
from gateway.tables import Tables

CLAIMS_TABLE = "upstreamclaims"
# Clocks of gateway and upstream differ a little; created_at is whole seconds.
CLOCK_SLACK_SECONDS = 5
log = logging.getLogger(__name__)


def progress_fields(video: UpstreamVideo) -> dict[str, Any]:
    """Job fields for an upstream status. Only the orchestration makes a job final: "completed"
    is written once the assets are stored (a reader never sees a completed job without its
    video), "failed" by fail_job. Any other upstream status reads as in progress meanwhile."""
    status = video.status if video.status in ("queued", "in_progress") else "in_progress"
    return {"status": status, "progress": min(video.progress, 99)}


class UpstreamCreator:
    def __init__(self, jobs: JobStore, tables: Tables, sora: SoraClient, assets: VideoAssets) -> None:
        self._jobs = jobs
        self._claims = tables.get(CLAIMS_TABLE)
        self._sora = sora
        self._assets = assets

    def ensure_created(self, job: Job, deployment: str) -> UpstreamVideo:
        """The job's upstream video, created now or found from an earlier attempt.

        Raises the upstream's errors: transient ones for the caller to retry, rejections to record.
        """
        if job.upstream_id:
            return self._sora.get_video(job.upstream_id)
        source = self._remix_source(job)
        if job.create_started_at is not None:
            adopted = self._find_earlier_attempt(job, deployment, source)
            if adopted is not None:
                log.warning("job %s adopted upstream %s from an interrupted attempt", job.id, adopted.id)
                return adopted
        job = self._jobs.update_job(job.app_id, job.id, create_started_at=time.time())
        if source is not None:
            video = self._sora.remix_video(source, prompt=job.prompt)
        else:
            video = self._sora.create_video(
                model=deployment,
                prompt=job.prompt,
                seconds=job.seconds,
                size=job.size,
                input_reference=self._reference(job),
            )
        self._claim(video.id, job)
        return video

    def record(self, job: Job, video: UpstreamVideo, next_check_at: float) -> Job:
        """Write the upstream job onto the record; returns the record (finished, unchanged, when
        the job was cancelled meanwhile)."""
        return self._jobs.update_job(
            job.app_id, job.id, upstream_id=video.id, next_check_at=next_check_at, **progress_fields(video)
        )

    def _remix_source(self, job: Job) -> str | None:
        """The upstream id of the video this job remixes, if it is a remix."""
        if job.remixed_from_video_id is None:
            return None
        source = self._jobs.get_job(job.app_id, job.remixed_from_video_id)
        if source is None or source.upstream_id is None:
            raise UpstreamRejectedError(
                "The video to remix no longer exists.", code="remix_source_not_found", status=404
            )
        return source.upstream_id

    def _reference(self, job: Job) -> ReferenceFile | None:
        if job.reference_blob is None:
            return None
        content, content_type = self._assets.download_bytes(job.reference_blob)
        return ReferenceFile(job.reference_blob.rsplit("/", 1)[-1], content, content_type)

    def _find_earlier_attempt(self, job: Job, deployment: str, source: str | None) -> UpstreamVideo | None:
        assert job.create_started_at is not None
        since = job.create_started_at - CLOCK_SLACK_SECONDS
        wanted = (job.prompt, job.seconds, job.size, source)
        for candidate in self._sora.list_videos(limit=100):
            if candidate.created_at is not None and candidate.created_at < since:
                break  # newest first: everything further is older still
            found = (candidate.prompt, candidate.seconds, candidate.size, candidate.remixed_from_video_id)
            if found != wanted or (source is None and candidate.model != deployment):
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
