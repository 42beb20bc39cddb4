"""The maintenance timer's durable side: reconciling jobs with their orchestrations, purging history.

First against a stand-in durable client that answers with the library's own status objects, then
with the library's real client against the local stack's dev host, so the status and purge calls
are the ones the Functions host would get.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest
from azure.data.tables import TableServiceClient
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.PurgeHistoryResult import PurgeHistoryResult
from azure.durable_functions.models.utils import http_utils

from gateway.blobs import VideoAssets, blob_service
from gateway.jobs import Job, JobStore, new_job_id
from gateway.messages import failure_message
from gateway.quota import Limits, QuotaStore
from gateway.retention import (
    ORCHESTRATION_FAILED,
    ORCHESTRATION_LOST,
    RECONCILE_GRACE_SECONDS,
    Reconciler,
    RetentionSweeper,
)
from gateway.tables import Tables
from maintenance.retention import HISTORY_START, orchestration_state, purge_history, reconcile, run_sweep
from tests.conftest import RunningStack

NOW = time.time()
OLD = int(NOW - RECONCILE_GRACE_SECONDS - 60)
LIMITS = Limits(hour=5, day=20)


class RecordingUpstream:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_upstream(self, job: Job) -> bool:
        assert job.upstream_id is not None
        self.deleted.append(job.upstream_id)
        return True


def status_answer(runtime_status: str | None) -> DurableOrchestrationStatus:
    """What the library's get_status returns: parsed JSON, or an empty body (404) for no instance."""
    if runtime_status is None:
        return DurableOrchestrationStatus.from_json("")
    return DurableOrchestrationStatus.from_json(
        {
            "name": "generate_video",
            "instanceId": "x",
            "runtimeStatus": runtime_status,
            "createdTime": "2026-01-01T00:00:00Z",
            "lastUpdatedTime": "2026-01-01T00:00:00Z",
        }
    )


class StandInClient:
    """get_status and purge_instance_history_by, as the maintenance code calls them."""

    def __init__(self, statuses: dict[str, str | Exception | None], purge_error: Exception | None = None):
        self.statuses = statuses
        self.purge_error = purge_error
        self.purges: list[dict[str, Any]] = []

    async def get_status(self, instance_id: str) -> DurableOrchestrationStatus:
        answer = self.statuses.get(instance_id)
        if isinstance(answer, Exception):
            raise answer
        return status_answer(answer)

    async def purge_instance_history_by(self, **arguments: Any) -> PurgeHistoryResult:
        self.purges.append(arguments)
        if self.purge_error is not None:
            raise self.purge_error
        return PurgeHistoryResult(instancesDeleted=3)


def add_job(jobs: JobStore, app_id: str, **fields: Any) -> Job:
    job = Job(
        id=new_job_id(),
        app_id=app_id,
        model="sora-2",
        prompt="p",
        seconds="4",
        size="720x1280",
        created_at=OLD,
        status="queued",
    )
    job = replace(job, **fields)
    jobs.add_job(job)
    return job


def test_each_job_is_settled_by_its_orchestrations_status(tables: Tables, video_assets: VideoAssets) -> None:
    jobs, quota, upstream = JobStore(tables), QuotaStore(tables), RecordingUpstream()
    ended = add_job(jobs, "app_m", status="in_progress", upstream_id="up_ended")
    vanished = add_job(jobs, "app_m")
    unknown = add_job(jobs, "app_m")  # the management API failed: not known to have vanished
    running = add_job(jobs, "app_m")
    for job in (ended, vanished, unknown, running):
        quota.admit("app_m", LIMITS, job.id, NOW - 60)
    client = StandInClient(
        {ended.id: "Failed", vanished.id: None, unknown.id: ConnectionError("down"), running.id: "Running"}
    )
    sweeper = RetentionSweeper(jobs, video_assets, retention_days=7)

    report = asyncio.run(
        run_sweep(client, Reconciler(jobs, quota, upstream, video_assets), sweeper, NOW, history_days=7)
    )

    codes = {job.id: getattr(jobs.get_job("app_m", job.id), "error_code", None) for job in (ended, vanished)}
    assert codes == {ended.id: ORCHESTRATION_FAILED, vanished.id: ORCHESTRATION_LOST}
    for untouched in (unknown, running):
        assert getattr(jobs.get_job("app_m", untouched.id), "status", None) == "queued"
    assert upstream.deleted == ["up_ended"]
    assert quota.usage("app_m", LIMITS, NOW).used["hour"] == 3  # only the vanished job's slot came back
    assert (report.reconciled, report.purged_instances) == (2, 3)


def test_history_older_than_the_retention_period_is_purged_when_finished(
    tables: Tables, video_assets: VideoAssets
) -> None:
    client = StandInClient({})
    reconciler = Reconciler(JobStore(tables), QuotaStore(tables), RecordingUpstream(), video_assets)

    asyncio.run(
        run_sweep(
            client, reconciler, RetentionSweeper(JobStore(tables), video_assets, 7), NOW, history_days=7
        )
    )

    [purge] = client.purges
    assert purge["created_time_from"] == HISTORY_START
    assert purge["created_time_to"] == datetime.fromtimestamp(NOW, UTC) - timedelta(days=7)
    assert {status.value for status in purge["runtime_status"]} == {
        "Completed",
        "Failed",
        "Terminated",
        "Canceled",
    }


def test_a_failing_step_does_not_stop_the_others_but_fails_the_run(
    tables: Tables, video_assets: VideoAssets
) -> None:
    jobs = JobStore(tables)
    vanished = add_job(jobs, "app_f")
    expired_video = "app_f/video_old/video.mp4"
    video_assets.upload_bytes(expired_video, b"mp4", content_type="video/mp4")
    expired = add_job(jobs, "app_f", status="completed", expires_at=int(NOW) - 1, video_blob=expired_video)
    client = StandInClient({vanished.id: None, expired.id: "Completed"}, purge_error=ConnectionError("down"))
    reconciler = Reconciler(jobs, QuotaStore(tables), RecordingUpstream(), video_assets)

    with pytest.raises(RuntimeError, match="purge"):
        asyncio.run(
            run_sweep(client, reconciler, RetentionSweeper(jobs, video_assets, 7), NOW, history_days=7)
        )

    assert getattr(jobs.get_job("app_f", vanished.id), "error_code", None) == ORCHESTRATION_LOST
    assert not video_assets.exists(expired_video)  # the sweep ran too


# --- against the local stack ---------------------------------------------------------------------


@pytest.fixture
def stack_stores(stack: RunningStack) -> Iterator[tuple[JobStore, QuotaStore]]:
    service = TableServiceClient.from_connection_string(stack.storage_connection_string)
    tables = Tables(service)
    yield JobStore(tables), QuotaStore(tables)
    service.close()


def durable_client(stack: RunningStack) -> df.DurableOrchestrationClient:
    """The client the Functions host would bind, pointed at the stack's dev host (with its key)."""
    return df.DurableOrchestrationClient(stack.durable_client_binding())


async def with_fresh_session[T](work: Any) -> T:
    """The library keeps one aiohttp session per process, bound to the loop that made it."""
    http_utils._client_session = None
    try:
        result: T = await work
        return result
    finally:
        await http_utils._close_session()


def test_reconcile_and_purge_against_the_dev_host(
    stack: RunningStack, stack_stores: tuple[JobStore, QuotaStore]
) -> None:
    jobs, quota = stack_stores
    started = datetime.now(UTC) - timedelta(seconds=5)
    app = stack.client.create_app("pro")
    # A finished video whose record is put back to in_progress: its orchestration has ended.
    done_id = stack.client.create_video(app.api_key, {"prompt": f"Reconcile me {uuid.uuid4().hex}"}).json()[
        "id"
    ]
    stack.client.wait_finished(app.api_key, done_id)
    done = jobs.update_job(app.id, done_id, allow_finished=True, status="in_progress", created_at=OLD)
    # A queued record that never had an orchestration, holding a quota slot.
    lost = add_job(jobs, app.id)
    quota.admit(app.id, LIMITS, lost.id, time.time())
    fresh = add_job(jobs, app.id, created_at=int(time.time()))  # within the grace period
    used_before = stack.client.usage(app.api_key)["used"]["hour"]
    client = durable_client(stack)
    upstream = RecordingUpstream()
    stack_assets = VideoAssets(blob_service(stack.storage_connection_string), "videos")
    done_files = [name for name, _ in stack_assets.list_blobs() if name.startswith(f"{app.id}/{done_id}/")]
    assert f"{app.id}/{done_id}/video.mp4" in done_files

    async def scenario() -> tuple[str | None, str | None, int, int, str | None]:
        for _ in range(150):  # the record is final a moment before the orchestration is
            done_status, _ = await orchestration_state(client, done_id)
            if done_status == "Completed":
                break
            await asyncio.sleep(0.2)
        lost_status, _ = await orchestration_state(client, lost.id)
        settled = await reconcile(client, Reconciler(jobs, quota, upstream, stack_assets), time.time())
        purged = await purge_history(client, time.time() + 1, created_after=started)
        return done_status, lost_status, settled, purged, (await orchestration_state(client, done_id))[0]

    done_status, lost_status, settled, purged, after_purge = asyncio.run(with_fresh_session(scenario()))

    assert (done_status, lost_status) == ("Completed", None)
    assert settled >= 2
    video = stack.client.get_video(app.api_key, done_id).json()
    assert (video["status"], video["error"]["code"]) == ("failed", ORCHESTRATION_FAILED)
    assert video["error"]["message"] == failure_message(ORCHESTRATION_FAILED)
    # A failed job keeps no files: the video its orchestration had stored is gone from storage.
    assert [name for name in done_files if stack_assets.exists(name)] == []
    assert done.upstream_id is not None
    assert upstream.deleted.count(done.upstream_id) == 1
    lost_video = stack.client.get_video(app.api_key, lost.id).json()
    assert (lost_video["status"], lost_video["error"]["code"]) == ("failed", ORCHESTRATION_LOST)
    assert stack.client.usage(app.api_key)["used"]["hour"] == used_before - 1  # the lost job's slot
    assert stack.client.get_video(app.api_key, fresh.id).json()["status"] == "queued"
    # The fresh record was written by hand and has no orchestration to finish it; remove it, or
    # the shared stack's end-of-session check (every job ends) rightly reports it.
    jobs.delete_job(app.id, fresh.id)
    assert purged >= 1
    assert after_purge is None  # the finished orchestration's history is gone
