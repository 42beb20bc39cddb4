"""The life of one video job: create upstream, poll on durable timers, store the result.

Deterministic by construction: every decision uses the input, activity results and
`context.current_utc_datetime`; all I/O happens in activities.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities import names as activity
from gateway.messages import JobFailure, JobRef, StoredAssets, UpstreamJobRef, UpstreamStatus
from gateway.polling import PollPolicy
from orchestrators import names

bp = df.Blueprint()

# Upstream calls are retried on durable timers: 2 s, 4 s, 8 s, 16 s (about half a minute).
UPSTREAM_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=5)
UPSTREAM_RETRY.backoff_coefficient = 2


@dataclass(frozen=True)
class JobRun:
    """The orchestration's input: which job, and the policies fixed when it was accepted."""

    job: JobRef
    poll: PollPolicy
    timeout_minutes: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "poll": self.poll.to_dict(), "timeout_minutes": self.timeout_minutes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRun:
        return cls(
            job=JobRef.from_dict(data),
            poll=PollPolicy.from_dict(data["poll"]),
            timeout_minutes=int(data["timeout_minutes"]),
        )


@dataclass(frozen=True)
class JobOutcome:
    """The orchestration's output."""

    job_id: str
    status: str
    error_code: str | None = None
    video_blob: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error_code": self.error_code,
            "video_blob": self.video_blob,
        }


Orchestration = Generator[Any, Any, dict[str, Any]]


@bp.function_name(names.GENERATE_VIDEO)
@bp.orchestration_trigger(context_name="context")
def generate_video(context: df.DurableOrchestrationContext) -> Orchestration:
    run = JobRun.from_dict(context.get_input())
    deadline = context.current_utc_datetime + timedelta(minutes=run.timeout_minutes)
    try:
        status = UpstreamStatus.from_dict(
            (
                yield context.call_activity_with_retry(
                    activity.CREATE_UPSTREAM_JOB, UPSTREAM_RETRY, run.job.to_dict()
                )
            )
        )
    except Exception as error:
        return (yield from _fail(context, run.job, "upstream_unavailable", _reason(error)))
    if status.upstream_id is None:
        return (yield from _fail(context, run.job, status.error_code or "failed", status.error_message or ""))

    upstream = UpstreamJobRef(job=run.job, upstream_id=status.upstream_id)
    started = context.current_utc_datetime
    while not status.finished:
        now = context.current_utc_datetime
        delay = run.poll.next_delay(elapsed_seconds=(now - started).total_seconds(), progress=status.progress)
        wake_at = min(now + timedelta(seconds=delay), deadline)
        woke = yield from _sleep_unless_cancelled(context, wake_at)
        if woke == "cancelled":
            yield context.call_activity_with_retry(
                activity.DELETE_UPSTREAM_JOB, UPSTREAM_RETRY, upstream.to_dict()
            )
            return (yield from _fail(context, run.job, "cancelled", "The video was cancelled."))
        if context.current_utc_datetime >= deadline:
            yield context.call_activity_with_retry(
                activity.DELETE_UPSTREAM_JOB, UPSTREAM_RETRY, upstream.to_dict()
            )
            return (
                yield from _fail(
                    context, run.job, "timeout", f"No result within {run.timeout_minutes} minutes."
                )
            )
        try:
            status = UpstreamStatus.from_dict(
                (
                    yield context.call_activity_with_retry(
                        activity.CHECK_UPSTREAM_JOB, UPSTREAM_RETRY, upstream.to_dict()
                    )
                )
            )
        except Exception:  # noqa: S112 - the activity logged it; the deadline bounds the waiting
            continue  # the upstream stayed unreachable through the retries: look again later

    if status.status != "completed":
        return (yield from _fail(context, run.job, status.error_code or "failed", status.error_message or ""))
    stored = StoredAssets.from_dict(
        (
            yield context.call_activity_with_retry(
                activity.STORE_VIDEO_ASSETS, UPSTREAM_RETRY, upstream.to_dict()
            )
        )
    )
    return JobOutcome(job_id=run.job.job_id, status="completed", video_blob=stored.video_blob).to_dict()


def _sleep_unless_cancelled(
    context: df.DurableOrchestrationContext, wake_at: datetime
) -> Generator[Any, Any, str]:
    timer = context.create_timer(wake_at)
    cancel = context.wait_for_external_event(names.CANCEL_EVENT)
    winner = yield context.task_any([timer, cancel])
    if winner == cancel:
        timer.cancel()  # no timer may outlive the orchestration
        return "cancelled"
    return "woke"


def _fail(context: df.DurableOrchestrationContext, job: JobRef, code: str, message: str) -> Orchestration:
    failure = JobFailure(job=job, code=code, message=message)
    yield context.call_activity_with_retry(activity.FAIL_JOB, UPSTREAM_RETRY, failure.to_dict())
    return JobOutcome(job_id=job.job_id, status="failed", error_code=code).to_dict()


def _reason(error: Exception) -> str:
    # Durable wraps activity failures; the first line is the activity's own message.
    return str(error).splitlines()[0] if str(error) else type(error).__name__
