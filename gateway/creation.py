"""Creating a job's upstream video exactly once, even when the create is retried or replayed.

Before calling the provider, the job records that a create started. A later attempt that finds
that mark (the first attempt died between the provider's answer and our write) looks for the
upstream job the first attempt made, by its parameters and time, and adopts it instead of
creating a second one. An insert-only claim row stops two gateway jobs adopting the same one.

A provider that cannot list its jobs (no `find_recent`) cannot be asked what the first attempt
made, so such a mark means the job's outcome is unknown: it fails as `upstream_ambiguous` (with
its slot given back) rather than risk a second upstream job. The mark is cleared when the
provider answered for certain that it made nothing (a 429), so throttling stays harmless.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway import azure_sdk as sdk
from gateway.blobs import VideoAssets
from gateway.catalog import Route, shape_of
from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.jobs import Job, JobStore
from gateway.providers.port import ProviderVideo, ReferenceFile, VideoProvider, VideoRequest
from gateway.reroute import untouched
from gateway.settings import DEFAULT_PROVIDER
from gateway.tables import Tables

CLAIMS_TABLE = "upstreamclaims"
# Clocks of gateway and upstream differ a little; created_at is whole seconds.
CLOCK_SLACK_SECONDS = 5
log = logging.getLogger(__name__)


def progress_fields(video: ProviderVideo) -> dict[str, Any]:
    """Job fields for an upstream status. Only the orchestration makes a job final: "completed"
    is written once the assets are stored (a reader never sees a completed job without its
    video), "failed" by fail_job. Any other upstream status reads as in progress meanwhile."""
    status = video.status if video.status in ("queued", "in_progress") else "in_progress"
    # A provider with a queue of its own (fal) says where the job waits; kept only while queued.
    position = video.queue_position if status == "queued" else None
    return {"status": status, "progress": min(video.progress or 0, 99), "upstream_queue_position": position}


class UpstreamCreator:
    """Creates jobs at the provider account each job is bound to (`providers` by account name)."""

    def __init__(
        self,
        jobs: JobStore,
        tables: Tables,
        providers: Callable[[str | None], VideoProvider],
        assets: VideoAssets,
    ) -> None:
        self._jobs = jobs
        self._claims = tables.get(CLAIMS_TABLE)
        self._providers = providers
        self._assets = assets

    def ensure_created(self, job: Job, provider_model: str) -> ProviderVideo:
        """The job's upstream video, created now or found from an earlier attempt.

        Raises the provider's errors: transient ones for the caller to retry, rejections to
        record, UpstreamAmbiguousError when an earlier attempt may have made one that cannot be found.
        """
        provider = self._providers(job.provider)
        if job.upstream_id:
            return provider.get(job.upstream_id)
        source = self._remix_source(job)
        self._check_capabilities(job, provider, source)
        if job.create_started_at is not None:
            if not provider.capabilities.find_recent:
                raise UpstreamAmbiguousError(
                    f"an earlier create of job {job.id} may have reached {provider.name}, which cannot be asked"
                )
            adopted = self._find_earlier_attempt(provider, job, provider_model, source)
            if adopted is not None:
                log.warning("job %s adopted upstream %s from an interrupted attempt", job.id, adopted.id)
                return adopted
        job = self._jobs.update_job(job.app_id, job.id, create_started_at=time.time())
        try:
            if source is not None:
                video = provider.remix(source, job.prompt)
            else:
                video = provider.create(self._request(job, provider_model))
        except UpstreamThrottled:
            # A 429 is a certain "nothing was made": the next attempt may create afresh.
            self._jobs.update_job(job.app_id, job.id, create_started_at=None)
            raise
        except UpstreamTransientError as error:
            # So is a refused connection or a 503: the retry creates afresh instead of searching
            # for (or, where the provider cannot be asked, giving up on) an earlier attempt.
            if untouched(error):
                self._jobs.update_job(job.app_id, job.id, create_started_at=None)
            raise
        self._claim(video.id, job)
        return video

    def move_to(self, job: Job, route: Route) -> Job:
        """Send a job that no provider accepted to another route: a new turn there, a fresh create."""
        return self._jobs.update_job(
            job.app_id,
            job.id,
            provider=route.provider,
            provider_model=route.provider_model,
            start_at=None,
            create_started_at=None,
            next_check_at=None,
            upstream_queue_position=None,
        )

    def record(
        self,
        job: Job,
        video: ProviderVideo,
        next_check_at: float,
        estimated_completion_at: float | None = None,
    ) -> Job:
        """Write the upstream job onto the record; returns the record (finished, unchanged, when
        the job was cancelled meanwhile)."""
        return self._jobs.update_job(
            job.app_id,
            job.id,
            upstream_id=video.id,
            next_check_at=next_check_at,
            estimated_completion_at=estimated_completion_at,
            **progress_fields(video),
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

    @staticmethod
    def _check_capabilities(job: Job, provider: VideoProvider, source: str | None) -> None:
        """The catalog promised these at intake; the provider's adapter has the last word."""
        if source is not None and not provider.capabilities.remix:
            raise UpstreamRejectedError(f"{provider.name} cannot remix", code="remix_not_supported")
        if job.reference_blob is not None and not provider.capabilities.image_input:
            raise UpstreamRejectedError(f"{provider.name} takes no image", code="image_input_not_supported")

    def _request(self, job: Job, provider_model: str) -> VideoRequest:
        aspect_ratio, resolution = shape_of(job.size)
        return VideoRequest(
            model=provider_model,
            prompt=job.prompt,
            seconds=int(job.seconds),
            size=job.size,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            reference=self._reference(job),
            options=job.options,
        )

    def _reference(self, job: Job) -> ReferenceFile | None:
        if job.reference_blob is None:
            return None
        content, content_type = self._assets.download_bytes(job.reference_blob)
        return ReferenceFile(job.reference_blob.rsplit("/", 1)[-1], content, content_type)

    def _find_earlier_attempt(
        self, provider: VideoProvider, job: Job, provider_model: str, source: str | None
    ) -> ProviderVideo | None:
        assert job.create_started_at is not None
        since = job.create_started_at - CLOCK_SLACK_SECONDS
        wanted = (job.prompt, job.seconds, job.size, source)
        for candidate in provider.recent(limit=100):
            if candidate.created_at is not None and candidate.created_at < since:
                break  # newest first: everything further is older still
            found = (candidate.prompt, candidate.seconds, candidate.size, candidate.remixed_from_video_id)
            if found != wanted or (source is None and candidate.model != provider_model):
                continue
            if self._claim(candidate.id, job):
                return candidate
        return None

    def _claim(self, upstream_id: str, job: Job) -> bool:
        # Keyed by a digest of provider and id: two providers may use the same ids, and a
        # provider's ids may hold characters a table key cannot (/, #, ?, ...).
        key = hashlib.sha256(f"{job.provider or DEFAULT_PROVIDER}\n{upstream_id}".encode()).hexdigest()
        try:
            self._claims.create_entity(
                {
                    "PartitionKey": key,
                    "RowKey": "claim",
                    "upstream_id": upstream_id,
                    "app_id": job.app_id,
                    "job_id": job.id,
                }
            )
        except sdk.ResourceExistsError:
            owner = self._claims.get_entity(key, "claim")
            return bool(owner["job_id"] == job.id)
        return True
