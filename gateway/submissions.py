"""Accepting a video request: plan, idempotency, quota, stored inputs, job record.

Everything here happens before the orchestration starts, and everything is undone when the
request is refused or the orchestration cannot start: no quota kept, no record, no blob.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass

from gateway.apps import App
from gateway.blobs import VideoAssets, asset_blob_name
from gateway.errors import Conflict, Forbidden, RateLimited, ServiceUnavailable
from gateway.idempotency import Claim, IdempotencyStore
from gateway.images import ReferenceImage
from gateway.jobs import Job, JobStore, new_job_id
from gateway.quota import Limits, QuotaStore, Usage
from gateway.settings import Settings
from gateway.validation import VideoSpec

# How long a replayed request waits for the job of the request that claimed its key.
REPLAY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Submission:
    """A validated request for one video, with everything it brings along."""

    spec: VideoSpec
    remixed_from: str | None = None
    reference: ReferenceImage | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    # Where the job will be made: the catalog's provider account and model for a new video, the
    # source's for a remix. Not part of the fingerprint: the request is the same request.
    provider: str | None = None
    provider_model: str | None = None

    def fingerprint(self) -> str:
        """What makes two requests "the same body" for Idempotency-Key."""
        described = {
            "spec": asdict(self.spec),
            "remixed_from": self.remixed_from,
            "webhook_url": self.webhook_url,
            "reference": hashlib.sha256(self.reference.content).hexdigest() if self.reference else None,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Accepted:
    job: Job
    usage: Usage
    replayed: bool = False  # an earlier request with the same Idempotency-Key made this job


def plan_limits(app: App, settings: Settings) -> Limits:
    limits = Limits.for_plan(settings.plan_limits, app.plan)
    if limits is None:
        raise Forbidden(
            f"Video generation requires the Pro plan or higher; this app is on the '{app.plan}' plan.",
            code="plan_not_allowed",
        )
    return limits


class Submissions:
    def __init__(
        self,
        settings: Settings,
        *,
        quota: QuotaStore,
        jobs: JobStore,
        assets: VideoAssets,
        idempotency: IdempotencyStore,
    ) -> None:
        self._settings = settings
        self._quota = quota
        self._jobs = jobs
        self._assets = assets
        self._idempotency = idempotency

    def accept(self, app: App, submission: Submission) -> Accepted:
        """Check the plan, claim the idempotency key, take a quota slot, store inputs and record the job."""
        limits = plan_limits(app, self._settings)
        now = time.time()
        job = self._new_job(app, submission, now)
        key = submission.idempotency_key
        if key is not None:
            held = self._idempotency.claim(app.id, key, Claim(job.id, submission.fingerprint(), now))
            if held.job_id != job.id:
                return self._replay(app, limits, held, submission)
        try:
            usage = self._admit(app, limits, job, now)
            try:
                self._store_inputs(job, submission)
                self._jobs.add_job(job)
            except Exception:
                self._quota.release(app.id, job.id, time.time())
                raise
        except Exception:
            self._assets.delete_all(job.reference_blob)
            if key is not None:
                self._idempotency.release(app.id, key, job.id)
            raise
        return Accepted(job=job, usage=usage)

    def withdraw(self, job: Job, idempotency_key: str | None) -> None:
        """Undo `accept` when the job could not be started."""
        self._quota.release(job.app_id, job.id, time.time())
        self._jobs.delete_job(job.app_id, job.id)
        self._assets.delete_all(job.reference_blob)
        if idempotency_key is not None:
            self._idempotency.release(job.app_id, idempotency_key, job.id)

    def _new_job(self, app: App, submission: Submission, now: float) -> Job:
        spec = submission.spec
        job_id = new_job_id(now)
        reference_blob = None
        if submission.reference is not None:
            reference_blob = asset_blob_name(app.id, job_id, submission.reference.filename)
        return Job(
            id=job_id,
            app_id=app.id,
            model=spec.model,
            prompt=spec.prompt,
            seconds=spec.seconds,
            size=spec.size,
            created_at=int(now),
            metadata=spec.metadata,
            user=spec.user,
            remixed_from_video_id=submission.remixed_from,
            webhook_url=submission.webhook_url,
            reference_blob=reference_blob,
            provider=submission.provider,
            provider_model=submission.provider_model,
        )

    def _admit(self, app: App, limits: Limits, job: Job, now: float) -> Usage:
        admission = self._quota.admit(app.id, limits, job.id, now)
        if admission.admitted:
            return admission.usage
        window = admission.window or "hour"
        raise RateLimited(
            f"Rate limit reached: {limits.of(window)} videos per {window} for this app. "
            f"Try again in {admission.retry_after} seconds.",
            headers={"Retry-After": str(admission.retry_after), **admission.usage.headers()},
            extra={"window": window},
        )

    def _store_inputs(self, job: Job, submission: Submission) -> None:
        reference = submission.reference
        if reference is not None and job.reference_blob is not None:
            self._assets.upload_bytes(
                job.reference_blob, reference.content, content_type=reference.content_type
            )

    def _replay(self, app: App, limits: Limits, held: Claim, submission: Submission) -> Accepted:
        if held.fingerprint != submission.fingerprint():
            raise Conflict(
                "This Idempotency-Key was already used with a different request body.",
                code="idempotency_key_reused",
            )
        deadline = time.monotonic() + REPLAY_WAIT_SECONDS
        while True:
            # The request that claimed the key may still be storing its job.
            job = self._jobs.get_job(app.id, held.job_id)
            if job is not None:
                return Accepted(job=job, usage=self._quota.usage(app.id, limits, time.time()), replayed=True)
            if time.monotonic() > deadline:
                raise ServiceUnavailable("The first request with this Idempotency-Key is still in progress.")
            time.sleep(0.1)
