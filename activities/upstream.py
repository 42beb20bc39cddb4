"""Activities that talk to a job's provider (the account it was bound to when accepted, through
the provider port) and record what it said on the job.

Throttling (429) is returned, not raised, so the orchestrator waits it out on a durable timer
for as long as the upstream asks; other transient failures raise and are retried by Durable;
permanent answers (a refusal, 401/403, a lost job) are returned as final statuses. A job that
carries a cancel mark (its record is final, or gone) is never worked on: the activity answers
`cancelled` instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df

from activities import names
from gateway.clients import (
    get_duration_store,
    get_job_store,
    get_provider,
    get_provider_health,
    get_upstream_creator,
    get_upstream_pacer,
)
from gateway.creation import progress_fields
from gateway.durations import JobKind
from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.jobs import Job
from gateway.messages import (
    NO_ROUTE_AVAILABLE,
    UPSTREAM_AMBIGUOUS,
    ActivityInput,
    CreateRequest,
    JobRef,
    StatusCheck,
    UpstreamJobRef,
    UpstreamStatus,
    rejection_code,
)
from gateway.polling import PollPolicy, ProgressTrack, likely_end, plan
from gateway.providers.port import ProviderVideo
from gateway.reroute import has_alternatives, next_route, untouched
from gateway.settings import DEFAULT_PROVIDER, get_settings

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name(names.RESERVE_UPSTREAM_SLOT)
@bp.activity_trigger(input_name="payload")
def reserve_upstream_slot(payload: ActivityInput) -> float:
    """Unix time at which this job may create its upstream job (reserved once per job)."""
    ref = JobRef.from_dict(payload)
    jobs = get_job_store()
    job = jobs.get_job(ref.app_id, ref.job_id)
    if job is None or job.finished:
        return time.time()  # gone or cancelled: no slot to take; create answers `cancelled`
    if job.start_at is not None:
        return job.start_at
    job = _healthy_route(job)
    start_at = get_upstream_pacer().reserve(job.provider or DEFAULT_PROVIDER, time.time())
    jobs.update_job(ref.app_id, ref.job_id, start_at=start_at)
    return start_at


@bp.function_name(names.CREATE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def create_upstream_job(payload: ActivityInput) -> dict[str, Any]:
    """Create the job's upstream video at most once (see gateway.creation)."""
    request = CreateRequest.from_dict(payload)
    ref, policy = request.job, request.poll
    job = get_job_store().get_job(ref.app_id, ref.job_id)
    if job is None or job.finished:
        # Deleted or cancelled before its turn: nothing to create.
        return UpstreamStatus.job_cancelled(None).to_dict()
    creator = get_upstream_creator()
    # Jobs from before providers name no provider model: the deployment the settings give theirs.
    provider_model = job.provider_model or get_settings().deployments.get(job.model, job.model)
    provider = job.provider or DEFAULT_PROVIDER
    started = time.monotonic()
    try:
        video = creator.ensure_created(job, provider_model)
    except UpstreamAmbiguousError as error:
        log.warning("job %s: %s; not retried", job.id, error.message)
        return _elsewhere(job, error, UPSTREAM_AMBIGUOUS)
    except UpstreamRejectedError as error:
        log.info("upstream refused job %s: %s %s (%s)", job.id, error.status, error.code, error.message)
        return _elsewhere(job, error, rejection_code(error.status, error.code, keep_upstream_code=True))
    except UpstreamThrottled as error:
        get_provider_health().record(provider, "throttled")
        return UpstreamStatus.throttled(None, error.retry_after, _max_wait(job)).to_dict()
    except UpstreamTransientError as error:
        # Retried by Durable; an account that cannot be reached counts toward its cool-down.
        get_provider_health().record(provider, "failed" if untouched(error) else "refused")
        raise
    if job.upstream_id is None:
        get_provider_health().record(provider, "accepted", (time.monotonic() - started) * 1000)
    now = time.time()
    origin = float(video.created_at or now)
    track = ProgressTrack(origin=origin).observe(now - origin, video.progress or 0, video.status)
    step = _plan(job, track, policy)
    recorded = creator.record(job, video, step.check_at, step.eta_at)
    if recorded.finished:
        # Cancelled while the create was under way: the orchestrator deletes what was made.
        return UpstreamStatus.job_cancelled(video.id).to_dict()
    return UpstreamStatus.of(video, track, step.check_at).to_dict()


@dataclass(frozen=True)
class _Step:
    check_at: float  # unix time of the next status check
    eta_at: float | None  # unix time the job is expected to end


def _kind(job: Job) -> JobKind:
    """What the job's duration is learned under: the route it runs on and what it makes."""
    return JobKind(
        provider=job.provider or DEFAULT_PROVIDER,
        model=job.provider_model or job.model,
        size=job.size,
        seconds=job.seconds,
    )


def _plan(job: Job, track: ProgressTrack, policy: PollPolicy) -> _Step:
    """The next check and the ETA, from the track and what was learned of jobs like this one."""
    step = plan(policy, track, get_duration_store().learned(_kind(job)))
    seen_at = track.origin + track.last_check_at
    eta_at = None if step.eta is None else round(track.origin + step.eta, 3)
    return _Step(check_at=seen_at + step.delay, eta_at=eta_at)


def _elsewhere(job: Job, error: UpstreamError, code: str) -> dict[str, Any]:
    """A create that failed for good at this route: on to the model's next route when nothing
    was made here, else (or when no route is left) the job's failure with `code`."""
    if not untouched(error):
        # The request itself was refused (or may have been made): the provider is up.
        get_provider_health().record(job.provider or DEFAULT_PROVIDER, "refused")
        return UpstreamStatus.refused(None, code).to_dict()
    get_provider_health().record(job.provider or DEFAULT_PROVIDER, "failed")
    moved = _move_on(job)
    if moved is not None:
        return moved
    catalog = get_settings().catalog
    return UpstreamStatus.refused(
        None, NO_ROUTE_AVAILABLE if has_alternatives(job, catalog) else code
    ).to_dict()


def _max_wait(job: Job) -> float | None:
    """How long the job may wait out throttling on its route: its `max_wait_seconds`, when there
    is a route to move on to (without one, waiting is all there is)."""
    catalog = get_settings().catalog
    model = catalog.get(job.model)
    route = model.route(job.provider, job.provider_model) if model is not None else None
    if route is None or route.max_wait_seconds is None or next_route(job, catalog) is None:
        return None
    return route.max_wait_seconds


def _healthy_route(job: Job) -> Job:
    """Before a job's first turn: when its route's provider is cooling down, the job starts on
    the model's next route that is not (if there is one), without calling the unhealthy one."""
    health = get_provider_health()
    if job.create_started_at is not None or not health.cooling_down(job.provider or DEFAULT_PROVIDER):
        return job
    route = next_route(job, get_settings().catalog, health.cooling_down)
    if route is None:
        return job  # nowhere better: try it (the cool-down may be over by then)
    log.warning("job %s skips %s (cooling down) for %s", job.id, job.provider, route.provider)
    return get_upstream_creator().move_to(job, route)


def _move_on(job: Job) -> dict[str, Any] | None:
    """Move the job to its next route; the status to return, or None when there is none."""
    route = next_route(job, get_settings().catalog, get_provider_health().cooling_down)
    if route is None:
        return None
    moved = get_upstream_creator().move_to(job, route)
    if moved.finished:
        return UpstreamStatus.job_cancelled(None).to_dict()
    log.warning("job %s moves from %s to %s", job.id, job.provider, route.provider)
    return UpstreamStatus.moved_on().to_dict()


@bp.function_name(names.MOVE_TO_NEXT_ROUTE)
@bp.activity_trigger(input_name="payload")
def move_to_next_route(payload: ActivityInput) -> dict[str, Any]:
    """After a create kept failing at its route (retries exhausted): move the job on when nothing
    can have been made there. Answers {"moved": bool, "exhausted": bool}; exhausted says the model
    had other routes and none is left, so the job's failure names that."""
    ref = JobRef.from_dict(payload)
    job = get_job_store().get_job(ref.app_id, ref.job_id)
    if job is None or job.finished or job.upstream_id is not None or job.create_started_at is not None:
        # Gone, cancelled, accepted, or a create that may have reached the provider: stay.
        return {"moved": False, "exhausted": False}
    # (Each failed attempt was recorded toward the account's cool-down as it happened.)
    catalog = get_settings().catalog
    status = _move_on(job)
    if status is None:
        return {"moved": False, "exhausted": has_alternatives(job, catalog)}
    return {"moved": not UpstreamStatus.from_dict(status).cancelled, "exhausted": False}


@bp.function_name(names.CHECK_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def check_upstream_job(payload: ActivityInput) -> dict[str, Any]:
    check = StatusCheck.from_dict(payload)
    ref, policy = check.upstream, check.poll
    jobs = get_job_store()
    job = jobs.get_job(ref.job.app_id, ref.job.job_id)
    if job is None or job.finished:
        # Read first, so a check retried through an outage stops at its next attempt.
        return UpstreamStatus.job_cancelled(ref.upstream_id).to_dict()
    try:
        video = get_provider(job.provider).get(ref.upstream_id)
    except UpstreamThrottled as error:
        return UpstreamStatus.throttled(ref.upstream_id, error.retry_after).to_dict()
    except UpstreamRejectedError as error:
        # 401/403/404 will not change with time: final now, not a timeout later.
        log.warning("status of upstream %s refused: %s %s", ref.upstream_id, error.status, error.code)
        code = rejection_code(error.status, error.code, keep_upstream_code=False)
        return UpstreamStatus.refused(ref.upstream_id, code).to_dict()
    if video.error_code or video.error_message:
        # The upstream's own words stay in the log: the job gets a code and its sentence only.
        log.info(
            "upstream %s ended %s: %s (%s)",
            ref.upstream_id,
            video.status,
            video.error_code,
            video.error_message,
        )
    elapsed = time.time() - check.track.origin
    track = check.track.observe(elapsed, video.progress or 0, video.status)
    # A job that ended needs no next check: no record to read, nothing to plan.
    step = _Step(check_at=time.time(), eta_at=None) if video.finished else _plan(job, track, policy)
    updated = jobs.update_job(
        ref.job.app_id,
        ref.job.job_id,
        next_check_at=step.check_at,
        estimated_completion_at=step.eta_at,
        **progress_fields(video),
        **_reported(video),
    )
    if video.status == "completed":
        # It ended between the check before and this one. Learned after the write, so a check
        # that Durable retries for a failed write counts the job once.
        _learn(job, check.track, seen_done_at=elapsed)
    if updated.finished:
        return UpstreamStatus.job_cancelled(ref.upstream_id).to_dict()
    return UpstreamStatus.of(video, track, step.check_at).to_dict()


def _reported(video: ProviderVideo) -> dict[str, Any]:
    """What the provider says it made, once it says it is done: the cost is settled on it
    (activities/jobs.py)."""
    return {"reported_seconds": video.seconds} if video.status == "completed" and video.seconds else {}


def _learn(job: Job, track: ProgressTrack, seen_done_at: float) -> None:
    """Add a job seen completed `seen_done_at` seconds after its upstream creation to the record
    of jobs like it (with its queue wait when the checks saw its start closely)."""
    store, kind = get_duration_store(), _kind(job)
    ended = likely_end(track, store.learned(kind), seen_done_at)
    store.record(kind, ended, began=track.timed_start(ended))


@bp.function_name(names.DELETE_UPSTREAM_JOB)
@bp.activity_trigger(input_name="payload")
def delete_upstream_job(payload: ActivityInput) -> bool:
    """Delete the upstream job; False when it was gone already or the upstream refuses for good
    (retrying a 401/403 changes nothing). Transient failures raise and are retried."""
    ref = UpstreamJobRef.from_dict(payload)
    # The record names the provider; it outlives the orchestration (only finished jobs are deleted).
    job = get_job_store().get_job(ref.job.app_id, ref.job.job_id)
    try:
        provider = get_provider(job.provider if job is not None else None)
        if not provider.capabilities.delete:
            return False  # the provider's job expires on its own
        return provider.delete(ref.upstream_id)
    except UpstreamRejectedError as error:
        log.warning("could not delete upstream %s: %s %s", ref.upstream_id, error.status, error.code)
        return False
