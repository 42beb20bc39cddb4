"""The life of one video job: wait for its upstream turn, create it once, poll on durable
timers, store the result.

Deterministic by construction: every decision uses the input, activity results and
`context.current_utc_datetime`; all I/O happens in activities. A cancel event is heard at every
wait; the deadline bounds every wait.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities import names as activity
from gateway.messages import (
    CreateRequest,
    JobFailure,
    JobRef,
    StatusCheck,
    StoredAssets,
    UpstreamJobRef,
    UpstreamStatus,
    WebhookDelivery,
)
from gateway.polling import PollPolicy
from orchestrators import names

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

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.job.to_dict(),
            "poll": self.poll.to_dict(),
            "timeout_minutes": self.timeout_minutes,
            "webhook_delays": list(self.webhook_delays),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRun:
        return cls(
            job=JobRef.from_dict(data),
            poll=PollPolicy.from_dict(data["poll"]),
            timeout_minutes=float(data["timeout_minutes"]),
            webhook_delays=tuple(float(delay) for delay in data.get("webhook_delays", ())),
        )


@dataclass(frozen=True)
class JobOutcome:
    """The orchestration's output."""

    job_id: str
    status: str
    error_code: str | None = None
    video_blob: str | None = None
    video_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error_code": self.error_code,
            "video_blob": self.video_blob,
            "video_url": self.video_url,
        }


class _Stop(Exception):
    """Ends the job early with a failure code (cancelled, timeout, ...)."""

    def __init__(self, code: str, message: str, *, refund: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.refund = refund


@bp.function_name(names.GENERATE_VIDEO)
@bp.orchestration_trigger(context_name="context")
def generate_video(context: df.DurableOrchestrationContext) -> Orchestration:
    run = JobRun.from_dict(context.get_input())
    outcome = yield from _run_job(context, run)
    if run.webhook_delays:
        # The job's record is final before this: delivery never delays or changes the video.
        yield from _notify(context, run)
    return outcome


def _run_job(context: df.DurableOrchestrationContext, run: JobRun) -> Orchestration:
    job = run.job
    deadline = context.current_utc_datetime + timedelta(minutes=run.timeout_minutes)
    upstream: UpstreamJobRef | None = None
    try:
        start_at = yield context.call_activity_with_retry(
            activity.RESERVE_UPSTREAM_SLOT, STORAGE_RETRY, job.to_dict()
        )
        yield from _wait_until(context, datetime.fromtimestamp(start_at, UTC), deadline)
        status = yield from _create_upstream(context, run, deadline)
        assert status.upstream_id is not None
        upstream = UpstreamJobRef(job=job, upstream_id=status.upstream_id)
        status = yield from _poll_until_finished(context, run, upstream, status, deadline)
    except _Stop as stop:
        if upstream is not None:
            yield context.call_activity_with_retry(
                activity.DELETE_UPSTREAM_JOB, UPSTREAM_RETRY, upstream.to_dict()
            )
        # Nothing reached the upstream when a queued job ran out of time: that costs no slot.
        if stop.refund or (upstream is None and stop.code == "timeout"):
            yield context.call_activity_with_retry(activity.RELEASE_QUOTA_SLOT, STORAGE_RETRY, job.to_dict())
        return (yield from _fail(context, job, stop.code, stop.message))

    if status.status != "completed":
        return (yield from _fail(context, job, status.error_code or "failed", status.error_message or ""))
    stored = yield context.call_activity_with_retry(
        activity.STORE_VIDEO_ASSETS, UPSTREAM_RETRY, upstream.to_dict()
    )
    if stored is None:  # cancelled while the assets were being copied
        return JobOutcome(job_id=job.job_id, status="failed", error_code="cancelled").to_dict()
    assets = StoredAssets.from_dict(stored)
    return JobOutcome(
        job_id=job.job_id, status="completed", video_blob=assets.video_blob, video_url=assets.video_url
    ).to_dict()


def _notify(context: df.DurableOrchestrationContext, run: JobRun) -> Orchestration:
    """Deliver the job's webhook event, retrying on durable timers with growing delays."""
    delivery = WebhookDelivery(job=run.job, event_id=f"evt_{run.job.job_id}")
    for attempt in range(len(run.webhook_delays) + 1):
        try:
            delivered = yield context.call_activity(activity.DELIVER_WEBHOOK, delivery.to_dict())
        except Exception:
            delivered = False  # our own failure (storage) counts as a failed attempt too
        if delivered or attempt == len(run.webhook_delays):
            return
        yield context.create_timer(_after(context, run.webhook_delays[attempt]))


def _create_upstream(
    context: df.DurableOrchestrationContext, run: JobRun, deadline: datetime
) -> Orchestration:
    request = CreateRequest(job=run.job, poll=run.poll).to_dict()
    while True:
        try:
            result = yield context.call_activity_with_retry(
                activity.CREATE_UPSTREAM_JOB, UPSTREAM_RETRY, request
            )
        except Exception as error:
            # The upstream never accepted the job: the app gets its slot back.
            raise _Stop("upstream_unavailable", _reason(error), refund=True) from error
        status = UpstreamStatus.from_dict(result)
        if status.retry_after is not None:
            yield from _wait_until(context, _after(context, status.retry_after), deadline)
            continue
        if status.upstream_id is None:
            raise _Stop(
                status.error_code or "failed", status.error_message or "The upstream refused the video."
            )
        return status


def _poll_until_finished(
    context: df.DurableOrchestrationContext,
    run: JobRun,
    upstream: UpstreamJobRef,
    status: UpstreamStatus,
    deadline: datetime,
) -> Orchestration:
    track = status.progress_track
    while not status.finished:
        delay = status.retry_after or run.poll.next_delay(track)
        yield from _wait_until(context, _after(context, delay), deadline)
        check = StatusCheck(upstream=upstream, track=track, poll=run.poll).to_dict()
        try:
            status = UpstreamStatus.from_dict(
                (yield context.call_activity_with_retry(activity.CHECK_UPSTREAM_JOB, UPSTREAM_RETRY, check))
            )
        except Exception:  # noqa: S112 - retries exhausted; the deadline bounds how long we keep looking
            continue
        if status.track is not None:
            track = status.progress_track
    return status


def _wait_until(
    context: df.DurableOrchestrationContext, wake_at: datetime, deadline: datetime
) -> Orchestration:
    """Sleep on a durable timer until `wake_at`, unless cancelled; never past the deadline."""
    if wake_at > context.current_utc_datetime:
        timer = context.create_timer(min(wake_at, deadline))
        cancel = context.wait_for_external_event(names.CANCEL_EVENT)
        winner = yield context.task_any([timer, cancel])
        if winner == cancel:
            timer.cancel()  # no timer may outlive the orchestration
            raise _Stop("cancelled", "The video was cancelled.")
    if context.current_utc_datetime >= deadline:
        raise _Stop("timeout", "The video was not ready in time.")


def _after(context: df.DurableOrchestrationContext, seconds: float) -> datetime:
    now: datetime = context.current_utc_datetime
    return now + timedelta(seconds=seconds)


def _fail(context: df.DurableOrchestrationContext, job: JobRef, code: str, message: str) -> Orchestration:
    failure = JobFailure(job=job, code=code, message=message)
    yield context.call_activity_with_retry(activity.FAIL_JOB, STORAGE_RETRY, failure.to_dict())
    return JobOutcome(job_id=job.job_id, status="failed", error_code=code).to_dict()


def _reason(error: Exception) -> str:
    # Durable wraps activity failures; the first line is the activity's own message.
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
