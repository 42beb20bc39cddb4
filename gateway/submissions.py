"""Accepting a video request: plan, idempotency, quota, stored inputs, job record.

It happens in two steps so that nothing costly is done for a request that will be refused:
`reserve` claims the Idempotency-Key and takes the quota slot from the validated fields alone;
only then does the caller fetch and decode the reference image, and `record` stores it and writes
the job (or `abandon` gives everything back when the image is refused). Everything is undone when
the request is refused or the orchestration cannot start: no quota kept, no record, no blob.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass

from gateway.apps import App
from gateway.blobs import VideoAssets, asset_blob_name
from gateway.budgets import from_micros
from gateway.errors import BudgetExceeded, Conflict, Forbidden, NotFound, RateLimited
from gateway.idempotency import Claim, IdempotencyStore
from gateway.images import ReferenceImage
from gateway.jobs import Job, JobStore, new_job_id
from gateway.pricing import cost_micros, price_per_second
from gateway.quota import Limits, QuotaStore, Usage
from gateway.settings import Settings
from gateway.validation import VideoSpec

log = logging.getLogger(__name__)

# A claim whose job was never recorded is taken to be abandoned (its request crashed between
# claim and record) once it is this old. Far above the longest a live request can take between
# the two: the image fetch is cut at 10 s, decoding and storing take seconds.
ABANDONED_CLAIM_SECONDS = 300.0


@dataclass(frozen=True)
class Submission:
    """A validated request for one video, before its reference image (if any) is fetched or decoded."""

    spec: VideoSpec
    remixed_from: str | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    # The reference image as sent, hashed: the uploaded file's bytes or the image URL's text. The
    # same request is the same bytes or the same URL, so a replay is recognised (and a different
    # image refused 409) before anything is fetched or decoded.
    reference_digest: str | None = None
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
            "reference": self.reference_digest,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Reservation:
    """A quota slot (and the Idempotency-Key, if any) held for a job not yet recorded."""

    app: App
    submission: Submission
    job_id: str
    created_at: float
    usage: Usage


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

    def accept(self, app: App, submission: Submission, reference: ReferenceImage | None = None) -> Accepted:
        """All steps at once, for a request whose image (if any) is already prepared."""
        reserved = self.reserve(app, plan_limits(app, self._settings), submission)
        if isinstance(reserved, Accepted):
            return reserved
        return self.record(reserved, reference)

    def reserve(self, app: App, limits: Limits, submission: Submission) -> Reservation | Accepted:
        """Claim the Idempotency-Key and take a quota slot; or the earlier job of a replay."""
        now = time.time()
        job_id = new_job_id(now)
        key = submission.idempotency_key
        if key is not None:
            candidate = Claim(job_id, submission.fingerprint(), now)
            held = self._idempotency.claim(app.id, key, candidate)
            if held.job_id != job_id:
                replayed = self._replay(app, limits, held, candidate, submission)
                if replayed is not None:
                    return replayed
        try:
            usage = self._admit(app, limits, submission, job_id, now)
        except Exception:
            if key is not None:
                self._idempotency.release(app.id, key, job_id)
            raise
        return Reservation(app=app, submission=submission, job_id=job_id, created_at=now, usage=usage)

    def record(self, reservation: Reservation, reference: ReferenceImage | None) -> Accepted:
        """Store the prepared image and write the job's record; undo the reservation on failure."""
        job = self._new_job(reservation, reference)
        try:
            if reference is not None and job.reference_blob is not None:
                self._assets.upload_bytes(
                    job.reference_blob, reference.content, content_type=reference.content_type
                )
            self._jobs.add_job(job)
        except Exception:
            self._assets.delete_all(job.reference_blob)
            self.abandon(reservation)
            raise
        key = reservation.submission.idempotency_key
        if key is not None:
            try:
                self._idempotency.mark_recorded(job.app_id, key, job.id)
            except Exception:
                # The job stands; without the stamp a replay after its deletion waits out the
                # abandoned-claim age (409 meanwhile) and then makes a new video.
                log.warning("could not stamp the idempotency claim of %s", job.id, exc_info=True)
        return Accepted(job=job, usage=reservation.usage)

    def abandon(self, reservation: Reservation) -> None:
        """Give back the slot and the key of a request refused after `reserve` (e.g. its image)."""
        app_id = reservation.app.id
        self._quota.release(app_id, reservation.job_id, time.time())
        key = reservation.submission.idempotency_key
        if key is not None:
            self._idempotency.release(app_id, key, reservation.job_id)

    def withdraw(self, job: Job, idempotency_key: str | None) -> None:
        """Undo `record` when the job could not be started.

        In this order, so that storage failing at any step (the client is told 503, try again)
        leaves nothing the maintenance run cannot finish, and a retry with the same key a
        definite answer: the slot first; then the key, before the record, since a key left
        naming a recorded job that is gone would answer the retry 404 "deleted" for a video its
        client never saw. A record left behind has no orchestration: the reconciler fails it and
        deletes its image; an image left behind is an orphan the sweep deletes.
        """
        self._quota.release(job.app_id, job.id, time.time())
        if idempotency_key is not None:
            self._idempotency.release(job.app_id, idempotency_key, job.id)
        self._jobs.delete_job(job.app_id, job.id)
        self._assets.delete_all(job.reference_blob)

    def _new_job(self, reservation: Reservation, reference: ReferenceImage | None) -> Job:
        spec = reservation.submission.spec
        submission = reservation.submission
        app_id, job_id = reservation.app.id, reservation.job_id
        return Job(
            id=job_id,
            app_id=app_id,
            model=spec.model,
            prompt=spec.prompt,
            seconds=spec.seconds,
            size=spec.size,
            created_at=int(reservation.created_at),
            metadata=spec.metadata,
            user=spec.user,
            remixed_from_video_id=submission.remixed_from,
            webhook_url=submission.webhook_url,
            reference_blob=asset_blob_name(app_id, job_id, reference.filename) if reference else None,
            provider=submission.provider,
            provider_model=submission.provider_model,
            options=spec.options,
        )

    def _admit(self, app: App, limits: Limits, submission: Submission, job_id: str, now: float) -> Usage:
        budget = self._settings.budget(app.plan, app.budget)
        amount = self.estimate(submission)
        admission = self._quota.admit(
            app.id, limits, job_id, now, budget=budget if budget.limited else None, amount=amount
        )
        if admission.admitted:
            return admission.usage
        window = admission.window or "hour"
        if admission.budget:
            limit = budget.limit(window) or 0
            resets_at = int(now) + (admission.retry_after or 0)
            raise BudgetExceeded(
                f"Budget reached: this video's estimated cost ({from_micros(amount):.2f}) does not fit in "
                f"the {from_micros(limit):.2f} budget per {window} for this app. "
                f"Try again after the {window} ends, in {admission.retry_after} seconds.",
                headers={"Retry-After": str(admission.retry_after), **admission.usage.headers()},
                extra={"window": window, "resets_at": resets_at},
            )
        raise RateLimited(
            f"Rate limit reached: {limits.of(window)} videos per {window} for this app. "
            f"Try again in {admission.retry_after} seconds.",
            headers={"Retry-After": str(admission.retry_after), **admission.usage.headers()},
            extra={"window": window},
        )

    def estimate(self, submission: Submission) -> int:
        """The job's estimated cost (micro-units) from the catalog's price on the route it will
        take; 0 when the catalog states no price for it (it then fits any budget)."""
        spec = submission.spec
        price = price_per_second(
            self._settings, spec.model, submission.provider, submission.provider_model, spec.size
        )
        return cost_micros(price, spec.seconds)

    def _replay(
        self, app: App, limits: Limits, held: Claim, candidate: Claim, submission: Submission
    ) -> Accepted | None:
        """The earlier request's job, answered at once: never a wait that holds a thread.

        None when the earlier request was abandoned and `candidate` took the key over.
        """
        if held.fingerprint != submission.fingerprint():
            raise Conflict(
                "This Idempotency-Key was already used with a different request body.",
                code="idempotency_key_reused",
            )
        job = self._jobs.get_job(app.id, held.job_id)
        if job is not None:
            usage = self._quota.usage(
                app.id, limits, time.time(), self._settings.budget(app.plan, app.budget)
            )
            return Accepted(job=job, usage=usage, replayed=True)
        if held.recorded:
            # Its job existed and was deleted: answering the deleted video's id, as OpenAI's API
            # answers any request about a deleted video, rather than making it again unasked.
            raise NotFound(
                f"Video '{held.job_id}', made by the first request with this Idempotency-Key, "
                "was deleted; send a new Idempotency-Key to make another.",
                code="video_not_found",
            )
        if held.created_at > candidate.created_at - ABANDONED_CLAIM_SECONDS:
            raise Conflict(
                "The first request with this Idempotency-Key is still in progress; retry shortly.",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1"},
            )
        key = submission.idempotency_key or ""
        if self._idempotency.take_over(app.id, key, held, candidate) is None:
            raise Conflict(
                "Another request with this Idempotency-Key is in progress; retry shortly.",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1"},
            )
        log.warning("app %s: idempotency claim for %s was abandoned; taken over", app.id, held.job_id)
        return None
