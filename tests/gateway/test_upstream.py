"""The gateway's Sora client and exactly-once creation, against the real simulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.blobs import VideoAssets
from gateway.creation import UpstreamCreator
from gateway.errors import UpstreamRejectedError, UpstreamThrottled, UpstreamTransientError
from gateway.jobs import Job, JobStore, new_job_id
from gateway.messages import failure_message, rejection_code
from gateway.sora import SoraClient
from gateway.tables import Tables
from sorasim import SimulatorConfig, SoraSimulator

API_KEY = "sim-test-key"


@pytest.fixture
def simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(job_seconds=2, api_key=API_KEY, seed=3)) as sim:
        yield sim


@pytest.fixture
def sora(simulator: SoraSimulator) -> SoraClient:
    return SoraClient(simulator.url, api_key=API_KEY, timeout=(2.0, 5.0))


@pytest.fixture
def jobs(tables: Tables) -> JobStore:
    return JobStore(tables)


@pytest.fixture
def creator(jobs: JobStore, tables: Tables, sora: SoraClient, video_assets: VideoAssets) -> UpstreamCreator:
    return UpstreamCreator(jobs, tables, sora, video_assets)


def make_job(prompt: str = "A heron takes off") -> Job:
    return Job(
        id=new_job_id(),
        app_id="app_x",
        model="sora-2",
        prompt=prompt,
        seconds="4",
        size="720x1280",
        created_at=int(time.time()),
    )


def test_content_refusal_is_permanent_and_carries_the_upstream_code(sora: SoraClient) -> None:
    with pytest.raises(UpstreamRejectedError) as refused:
        sora.create_video(model="sora-2", prompt="no #sim:blocked", seconds="4", size="720x1280")
    assert refused.value.code == "content_policy_violation"
    assert refused.value.status == 400


def test_upstream_quota_is_transient_with_its_retry_after(simulator: SoraSimulator, sora: SoraClient) -> None:
    simulator.update_config(creates_per_minute=1)
    sora.create_video(model="sora-2", prompt="first", seconds="4", size="720x1280")
    with pytest.raises(UpstreamTransientError) as throttled:
        sora.create_video(model="sora-2", prompt="second", seconds="4", size="720x1280")
    assert throttled.value.status == 429
    assert isinstance(throttled.value, UpstreamThrottled)
    assert throttled.value.retry_after is not None
    assert 1 <= throttled.value.retry_after <= 60


def test_server_faults_and_dropped_connections_are_transient(
    simulator: SoraSimulator, sora: SoraClient
) -> None:
    simulator.update_config(fault_rate=1.0)
    seen = set()
    for _ in range(20):
        with pytest.raises(UpstreamTransientError) as fault:
            sora.get_video("video_any")
        seen.add(fault.value.status)
    assert None in seen  # a dropped connection has no status
    assert seen & {500, 503}


def test_unknown_video_is_permanent_404(sora: SoraClient) -> None:
    with pytest.raises(UpstreamRejectedError) as missing:
        sora.get_video("video_missing")
    assert missing.value.status == 404
    assert sora.delete_video("video_missing") is False


def test_a_retried_create_adopts_the_job_its_first_attempt_made(
    jobs: JobStore, creator: UpstreamCreator, simulator: SoraSimulator, sora: SoraClient
) -> None:
    job = make_job()
    jobs.add_job(job)
    # Someone else's identical request, created before ours started: never adopted.
    sora.create_video(model="sora-2", prompt=job.prompt, seconds="4", size="720x1280")
    time.sleep(6)

    first = creator.ensure_created(job, "sora-2")
    # The first attempt "died" before recording the id; the retry sees only the start mark.
    interrupted = jobs.get_job(job.app_id, job.id)
    assert interrupted is not None
    assert interrupted.create_started_at is not None
    assert interrupted.upstream_id is None

    again = creator.ensure_created(interrupted, "sora-2")

    assert again.id == first.id
    assert simulator.stats()["jobs_created"] == 2  # the stranger's and ours; no third


def test_two_jobs_never_adopt_the_same_upstream_job(jobs: JobStore, creator: UpstreamCreator) -> None:
    first, second = make_job("twin"), make_job("twin")
    for job in (first, second):
        jobs.add_job(job)
    made = creator.ensure_created(first, "sora-2")
    marked = replace(second, create_started_at=time.time() - 1)  # as if its create had started

    adopted = creator.ensure_created(marked, "sora-2")

    assert adopted.id != made.id


def test_recorded_upstream_id_is_reused(
    jobs: JobStore, creator: UpstreamCreator, simulator: SoraSimulator
) -> None:
    job = make_job()
    jobs.add_job(job)
    video = creator.ensure_created(job, "sora-2")
    creator.record(job, video, next_check_at=time.time() + 5)
    recorded = jobs.get_job(job.app_id, job.id)
    assert recorded is not None
    assert creator.ensure_created(recorded, "sora-2").id == video.id
    assert simulator.stats()["jobs_created"] == 1


def test_permanent_answers_become_the_jobs_codes(sora: SoraClient, simulator: SoraSimulator) -> None:
    """What a status check, a copy or a create turns a permanent upstream answer into."""
    with pytest.raises(UpstreamRejectedError) as denied:
        SoraClient(simulator.url, api_key="not-the-key", timeout=(2.0, 5.0)).get_video("video_any")
    assert denied.value.status == 401
    assert rejection_code(401, denied.value.code, keep_upstream_code=False) == "upstream_access_denied"
    assert rejection_code(403, "permission_denied", keep_upstream_code=True) == "upstream_access_denied"

    with pytest.raises(UpstreamRejectedError) as missing:
        sora.get_video("video_missing")
    code = rejection_code(missing.value.status, missing.value.code, keep_upstream_code=False)
    assert code == "upstream_job_not_found"

    with pytest.raises(UpstreamRejectedError) as refused:
        sora.create_video(model="sora-2", prompt="no #sim:blocked", seconds="4", size="720x1280")
    code = rejection_code(refused.value.status, refused.value.code, keep_upstream_code=True)
    assert code == "content_policy_violation"
    for code in ("upstream_access_denied", "upstream_job_not_found", "content_policy_violation"):
        assert failure_message(code) != failure_message("an_unknown_code")  # each has its own sentence
