"""The life of one video job: wait for its upstream turn, create it once, poll on durable
timers, store the result. Every path ends in a final job record.

Deterministic by construction: every decision uses the input, activity results and
`context.current_utc_datetime`; all I/O happens in activities.

Cancel: the library hands a raised event to the newest waiter for its name, and waiters from
earlier waits stay registered, so the orchestration makes exactly one cancel waiter and races
it against every activity and timer. An activity always runs to its end (a create must be seen
through to learn what to delete); right after it, a cancel heard meanwhile stops the job.

Failures: an activity that fails after its retries, or anything unexpected, ends the job as
`failed` with a code saying what happened; the slot goes back when the upstream never accepted
the job; the upstream job, when there is one, is deleted. Clean-up failures never escape: if
even the record cannot be written, the output still says `failed` (with `recorded: false`).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities import names as activity
from gateway.budgets import ChargePolicy
from gateway.charges import FAILED, NOT_ACCEPTED, REFUSED, charged
from gateway.messages import (
    CANCELLED,
    INTERNAL_ERROR,
    NO_ROUTE_AVAILABLE,
    REFUNDED_CREATE_FAILURES,
    STORAGE_UNAVAILABLE,
    TIMEOUT,
    UPSTREAM_CANCELLED,
    UPSTREAM_ERROR,
    UPSTREAM_UNAVAILABLE,
    VIDEO_GENERATION_FAILED,
    CreateRequest,
    JobFailure,
    JobRef,
    StatusCheck,
    StoredAssets,
    StoreOutcome,
    UpstreamJobRef,
    UpstreamStatus,
    WebhookDelivery,
    failure_code,
)
from gateway.polling import PollPolicy, ProgressTrack
from orchestrators import names
from orchestrators.delivery import deliver_with_retries

bp = df.Blueprint()

# Transient upstream failures (5xx, resets, timeouts) are retried by Durable: eight attempts,
# three seconds apart. Throttling is not a failure and is waited out separately.
UPSTREAM_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=3000, max_number_of_attempts=8)
STORAGE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=5)

Orchestration = Generator[Any, Any, Any]


@dataclass(frozen=True)
class JobRun:
    """The orchestration's input: which job, and the policies fixed when it was accepted."""

    job: JobRef
    poll: PollPolicy
    timeout_minutes: float
    webhook_delays: tuple[float, ...] = ()  # waits between webhook attempts; empty: no webhook
    # The app's plan's charge policy when the job was accepted (histories from before: the default).
    charges: ChargePolicy = field(default_factory=ChargePolicy)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.job.to_dict(),
            "poll": self.poll.to_dict(),
            "timeout_minutes": self.timeout_minutes,
            "webhook_delays": list(self.webhook_delays),
            "charges": {"refused": self.charges.refused, "failed": self.charges.failed},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRun:
        return cls(
            job=JobRef.from_dict(data),
            poll=PollPolicy.from_dict(data["poll"]),
            timeout_minutes=float(data["timeout_minutes"]),
            webhook_delays=tuple(float(delay) for delay in data.get("webhook_delays", ())),
            charges=ChargePolicy(**{name: bool(value) for name, value in data.get("charges", {}).items()}),
        )


@dataclass(frozen=True)
class JobOutcome:
    """The orchestration's output. `recorded` is False when the final job record could not be
    written (storage kept failing): the record is left for the reconciling sweep.

    It names the video's blob, never a URL to it: the task hub keeps outputs (and histories)
    long after a SAS would have expired, and SAS URLs are never stored. Readers sign their own."""

    job_id: str
    status: str
    error_code: str | None = None
    video_blob: str | None = None
    recorded: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error_code": self.error_code,
            "video_blob": self.video_blob,
            "recorded": self.recorded,
        }


class _Stop(Exception):
    """Ends the job early with a failure code. `outcome` (gateway.charges) None: NOT_ACCEPTED
    when the upstream never accepted the job (a cancel or timeout while queued included: nothing
    was spent), else FAILED."""

    def __init__(self, code: str, *, outcome: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.outcome = outcome


@bp.function_name(names.GENERATE_VIDEO)
@bp.orchestration_trigger(context_name="context")
def generate_video(context: df.DurableOrchestrationContext) -> Orchestration:
    run = JobRun.from_dict(context.get_input())
    outcome = yield from _JobFlow(context, run).run()
    if run.webhook_delays:
        # The job's record is final before this: delivery never delays or changes the video.
        yield from _notify(context, run)
    return outcome


class _JobFlow:
    """One job's way through the pipeline, and the state its failure handling needs."""

    def __init__(self, context: df.DurableOrchestrationContext, run: JobRun) -> None:
        self._context = context
        self._run = run
        self._job = run.job
        self._deadline: datetime = context.current_utc_datetime + timedelta(minutes=run.timeout_minutes)
        # The one cancel waiter of this orchestration (see the module docstring).
        self._cancel = context.wait_for_external_event(names.CANCEL_EVENT)
        self._upstream: UpstreamJobRef | None = None
        self._last_check_failed = False

    def run(self) -> Orchestration:
        """Run the job; never raises: every path returns a JobOutcome dict."""
        try:
            return (yield from self._generate())
        except _Stop as stop:
            return (yield from self._fail(stop))
        except Exception:  # a malformed result or a bug must still end the job
            return (yield from self._fail(_Stop(INTERNAL_ERROR)))

    # -- the pipeline --------------------------------------------------------------------

    def _generate(self) -> Orchestration:
        job = self._job
        status = yield from self._create_on_a_route()
        status = yield from self._poll_until_finished(status)
        if status.status != "completed":
            raise _Stop(_final_code(status))
        assets = yield from self._store()
        return JobOutcome(job_id=job.job_id, status="completed", video_blob=assets.video_blob).to_dict()

    def _create_on_a_route(self) -> Orchestration:
        """Take a turn with the job's provider and create there; while a route's provider takes
        nothing (gateway.reroute), the job moves to its model's next route and starts over."""
        job = self._job
        while True:
            start_at = yield from self._call(activity.RESERVE_UPSTREAM_SLOT, STORAGE_RETRY, job.to_dict())
            self._stop_if_cancelled()
            yield from self._wait_until(datetime.fromtimestamp(float(start_at), UTC))
            try:
                status = yield from self._create()
            except _Stop as stop:
                if stop.code != UPSTREAM_UNAVAILABLE or self._upstream is not None:
                    raise
                # The create kept failing through its retries: another route, if nothing can
                # have been made at this one.
                move = yield from self._call(activity.MOVE_TO_NEXT_ROUTE, STORAGE_RETRY, job.to_dict())
                self._stop_if_cancelled()
                if move["moved"]:
                    continue
                if move["exhausted"]:
                    raise _Stop(NO_ROUTE_AVAILABLE, outcome=NOT_ACCEPTED) from stop
                raise
            if not status.rerouted:
                return status

    def _create(self) -> Orchestration:
        request = CreateRequest(job=self._job, poll=self._run.poll).to_dict()
        throttled_since: datetime | None = None
        while True:
            status = UpstreamStatus.from_dict(
                (yield from self._call(activity.CREATE_UPSTREAM_JOB, UPSTREAM_RETRY, request))
            )
            if status.upstream_id is not None:
                self._upstream = UpstreamJobRef(job=self._job, upstream_id=status.upstream_id)
            if status.cancelled:
                raise _Stop(CANCELLED)
            self._stop_if_cancelled()
            if status.is_throttled:
                now = self._context.current_utc_datetime
                throttled_since = throttled_since or now
                wait = status.retry_after or 1.0
                waited = (now - throttled_since).total_seconds()
                if status.max_wait is not None and waited + wait > status.max_wait:
                    # Throttled longer than the route allows: the next route, if the job can move.
                    move = yield from self._call(
                        activity.MOVE_TO_NEXT_ROUTE, STORAGE_RETRY, self._job.to_dict()
                    )
                    self._stop_if_cancelled()
                    if move["moved"]:
                        return UpstreamStatus.moved_on()
                yield from self._wait_until(self._after(wait))
                continue
            if status.rerouted:
                return status
            if self._upstream is None:
                # Refused. When the refusal was about the gateway's own access, or the provider's
                # answer was lost and the create is not retried (upstream_ambiguous), it was never
                # accepted; a refusal of the request itself (content policy, ...) is REFUSED, charged
                # as the plan's policy says.
                code = status.error_code or UPSTREAM_ERROR
                raise _Stop(code, outcome=NOT_ACCEPTED if code in REFUNDED_CREATE_FAILURES else REFUSED)
            return status

    def _poll_until_finished(self, status: UpstreamStatus) -> Orchestration:
        upstream = self._upstream
        assert upstream is not None
        track = status.progress_track
        while not status.finished:
            yield from self._wait_until(self._next_check(status, track))
            check = StatusCheck(upstream=upstream, track=track, poll=self._run.poll).to_dict()
            try:
                result = yield from self._call(activity.CHECK_UPSTREAM_JOB, UPSTREAM_RETRY, check)
            except _Stop as stop:
                if stop.code == CANCELLED:
                    raise
                # Retries exhausted by an outage: keep looking, the deadline bounds how long.
                self._last_check_failed = True
                continue
            self._last_check_failed = False
            status = UpstreamStatus.from_dict(result)
            if status.cancelled:
                raise _Stop(CANCELLED)
            self._stop_if_cancelled()
            if status.track is not None:
                track = status.progress_track
        return status

    def _next_check(self, status: UpstreamStatus, track: ProgressTrack) -> datetime:
        """When to check again: when a throttling upstream asks, else when the planner chose
        (the activity's answer carries it). A time already past (the check after it failed) or
        absent (histories from before the planner) is timed from the track, as before."""
        if status.retry_after:
            return self._after(status.retry_after)
        now: datetime = self._context.current_utc_datetime
        if status.check_at is not None:
            planned = datetime.fromtimestamp(status.check_at, UTC)
            if planned > now:
                return planned
        return self._after(self._run.poll.next_delay(track))

    def _store(self) -> Orchestration:
        upstream = self._upstream
        assert upstream is not None
        while True:
            outcome = StoreOutcome.from_dict(
                (yield from self._call(activity.STORE_VIDEO_ASSETS, UPSTREAM_RETRY, upstream.to_dict()))
            )
            if outcome.status == "stored":
                # The record says completed now; a cancel that came too late changes nothing.
                assert outcome.assets is not None
                assets: StoredAssets = outcome.assets
                return assets
            if outcome.status == "cancelled":
                raise _Stop(CANCELLED)
            if outcome.status != "throttled":
                raise _Stop(outcome.error_code or UPSTREAM_ERROR)
            yield from self._wait_until(self._after(outcome.retry_after or 1.0))  # hears a cancel too

    # -- activities, waits and cancel ----------------------------------------------------

    def _call(self, name: str, retry: df.RetryOptions, activity_input: dict[str, Any]) -> Orchestration:
        """Run one activity to its end, hearing a cancel meanwhile; returns its result.

        Raises _Stop when it failed after its retries (`cancelled` if a cancel came meanwhile).
        """
        task = self._context.call_activity_with_retry(name, retry, activity_input)
        if not self._cancel.is_completed:
            yield self._context.task_any([task, self._cancel])
        try:
            return (yield task)
        except Exception as error:
            self._stop_if_cancelled()
            raise _Stop(_failure_code(name)) from error

    def _stop_if_cancelled(self) -> None:
        if self._cancel.is_completed:
            raise _Stop(CANCELLED)

    def _wait_until(self, wake_at: datetime) -> Orchestration:
        """Sleep on a durable timer until `wake_at`, unless cancelled; never past the deadline."""
        self._stop_if_cancelled()
        if wake_at > self._context.current_utc_datetime:
            timer = self._context.create_timer(min(wake_at, self._deadline))
            yield self._context.task_any([timer, self._cancel])
            if self._cancel.is_completed:
                if not timer.is_completed:
                    timer.cancel()  # no timer may outlive the orchestration
                raise _Stop(CANCELLED)
        if self._context.current_utc_datetime >= self._deadline:
            # Out of time. When the upstream could not even be asked, say so rather than "slow".
            raise _Stop(UPSTREAM_UNAVAILABLE if self._last_check_failed else TIMEOUT)

    def _after(self, seconds: float) -> datetime:
        return _after(self._context, seconds)

    # -- ending a job that did not complete ----------------------------------------------

    def _fail(self, stop: _Stop) -> Orchestration:
        job = self._job
        outcome = stop.outcome
        if outcome is None:
            # Nothing reached a provider: a cancel too gives the slot back (nothing was spent).
            outcome = NOT_ACCEPTED if self._upstream is None else FAILED
        # One answer for slot and money alike (gateway.charges): they never disagree.
        charge = charged(outcome, self._run.charges)
        if not charge:  # before the record turns final, so a reader of both never sees it counted
            yield from self._attempt(activity.RELEASE_QUOTA_SLOT, STORAGE_RETRY, job.to_dict())
        # A code the app may see: an upstream's text in its place (a history recorded before
        # codes were checked where they are read) is upstream_error, in the record and the output.
        code = failure_code(stop.code)
        recorded = yield from self._attempt(
            activity.FAIL_JOB, STORAGE_RETRY, JobFailure(job=job, code=code, charged=charge).to_dict()
        )
        if self._upstream is not None:
            yield from self._attempt(activity.DELETE_UPSTREAM_JOB, UPSTREAM_RETRY, self._upstream.to_dict())
        return JobOutcome(job_id=job.job_id, status="failed", error_code=code, recorded=recorded).to_dict()

    def _attempt(self, name: str, retry: df.RetryOptions, activity_input: dict[str, Any]) -> Orchestration:
        """A clean-up step: True when it succeeded; its failure never stops the ones after it."""
        try:
            yield self._context.call_activity_with_retry(name, retry, activity_input)
        except Exception:
            return False
        return True


def _notify(context: df.DurableOrchestrationContext, run: JobRun) -> Orchestration:
    """Deliver the job's webhook event, retrying on durable timers with growing delays."""
    delivery = WebhookDelivery(job=run.job, event_id=f"evt_{run.job.job_id}")
    yield from deliver_with_retries(context, activity.DELIVER_WEBHOOK, delivery.to_dict(), run.webhook_delays)


def _after(context: df.DurableOrchestrationContext, seconds: float) -> datetime:
    now: datetime = context.current_utc_datetime
    return now + timedelta(seconds=seconds)


def _failure_code(name: str) -> str:
    """The code for an activity that failed after all its retries."""
    if name in (activity.RESERVE_UPSTREAM_SLOT, activity.MOVE_TO_NEXT_ROUTE):
        return STORAGE_UNAVAILABLE
    if name in (activity.CREATE_UPSTREAM_JOB, activity.CHECK_UPSTREAM_JOB, activity.STORE_VIDEO_ASSETS):
        # Their transient failures are the upstream's (5xx, resets, a stream cut off); should our
        # storage be what failed, the fail_job write after this would most likely fail too.
        return UPSTREAM_UNAVAILABLE
    return INTERNAL_ERROR


def _final_code(status: UpstreamStatus) -> str:
    """The failure code of an upstream job that ended without a video."""
    if status.error_code:
        return status.error_code
    if status.status == "cancelled":
        return UPSTREAM_CANCELLED
    if status.status == "failed":
        return VIDEO_GENERATION_FAILED
    return UPSTREAM_ERROR
