"""Timer trigger: the retention sweep (see gateway.retention), with the durable task hub's share.

Each run, in this order: finish the jobs whose orchestration ended or vanished without
finishing them (reconcile), delete expired assets, old records and orphan blobs (sweep), and
purge the history of orchestrations that finished longer ago than the retention period, so the
task hub does not grow forever. Reconciling comes first so that it still sees the status of an
orchestration that the purge would remove. A failing step does not stop the others; the run
fails afterwards so the host records it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from gateway.clients import get_job_store, get_provider, get_quota_store, get_video_assets
from gateway.jobs import Job
from gateway.retention import ORCHESTRATION_ENDED, Reconciler, RetentionSweeper, settlement_for
from gateway.settings import get_settings

bp = df.Blueprint()
log = logging.getLogger(__name__)

# purge_instance_history_by needs a lower bound; every instance was created after this.
HISTORY_START = datetime(2020, 1, 1, tzinfo=UTC)


@bp.timer_trigger(schedule="%SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def sweep_expired_videos(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    retention_days = get_settings().video_retention_days
    sweeper = RetentionSweeper(get_job_store(), get_video_assets(), retention_days)
    reconciler = Reconciler(get_job_store(), get_quota_store(), _BoundProviders(), get_video_assets())
    await run_sweep(client, reconciler, sweeper, time.time(), history_days=retention_days)


class _BoundProviders:
    """Deletes at the provider each job is bound to, when that provider deletes at all."""

    def delete_upstream(self, job: Job) -> bool:
        assert job.upstream_id is not None
        provider = get_provider(job.provider)
        return provider.capabilities.delete and provider.delete(job.upstream_id)


@dataclass(frozen=True)
class MaintenanceReport:
    reconciled: int
    purged_instances: int


async def run_sweep(
    client: df.DurableOrchestrationClient,
    reconciler: Reconciler,
    sweeper: RetentionSweeper,
    now: float,
    *,
    history_days: int,
) -> MaintenanceReport:
    """One run of the timer's work; the blocking storage and upstream calls run in threads."""
    failed: list[str] = []

    async def step[T](name: str, work: Awaitable[T], fallback: T) -> T:
        try:
            return await work
        except Exception:
            log.exception("maintenance step %s failed", name)
            failed.append(name)
            return fallback

    reconciled = await step("reconcile", reconcile(client, reconciler, now), 0)
    await step("sweep", asyncio.to_thread(sweeper.sweep, now), None)
    purged = await step("purge", purge_history(client, now - history_days * 86400), 0)
    report = MaintenanceReport(reconciled=reconciled, purged_instances=purged)
    log.info("maintenance: %s", report)
    if failed:
        raise RuntimeError(f"maintenance steps failed: {', '.join(failed)} (see the log above)")
    return report


async def reconcile(client: df.DurableOrchestrationClient, reconciler: Reconciler, now: float) -> int:
    """Finish the jobs whose orchestration ended or vanished; how many were finished."""
    settled = 0
    for job in await asyncio.to_thread(reconciler.candidates, now):
        try:
            runtime_status, output = await orchestration_state(client, job.id)
        except Exception as error:
            # Not knowing is not "vanished": leave the job for the next run.
            log.warning("could not read the orchestration status of video %s: %s", job.id, error)
            continue
        settlement = settlement_for(job, runtime_status, now, output=output)
        if settlement is None:
            continue
        # The runtime status is for operators; the app reads only the code's sentence.
        log.info("video %s: its orchestration is %s", job.id, runtime_status or "gone")
        if await asyncio.to_thread(reconciler.settle, job, settlement, now) is not None:
            settled += 1
    return settled


async def orchestration_state(
    client: df.DurableOrchestrationClient, instance_id: str
) -> tuple[str | None, Any]:
    """The instance's runtime status (Running, Completed, ...; None: no such instance) and its
    output (None until it ended). A job's orchestration instance id is the job id (api/videos.py)."""
    status = await client.get_status(instance_id)
    if not status or status.runtime_status is None:  # falsy: the management API answered 404
        return None, None
    return str(status.runtime_status.value), status.output


async def purge_history(
    client: df.DurableOrchestrationClient, finished_before: float, *, created_after: datetime = HISTORY_START
) -> int:
    """Purge the finished orchestrations created before `finished_before`; how many were purged."""
    result = await client.purge_instance_history_by(
        created_time_from=created_after,
        created_time_to=datetime.fromtimestamp(finished_before, UTC),
        runtime_status=[df.OrchestrationRuntimeStatus(status) for status in sorted(ORCHESTRATION_ENDED)],
    )
    return int(result.instances_deleted)
