"""The Azure OpenAI and OpenAI-compatible adapters, and exactly-once creation, against the real
simulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.blobs import VideoAssets
from gateway.creation import UpstreamCreator
from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.jobs import Job, JobStore, new_job_id
from gateway.messages import failure_message, rejection_code
from gateway.providers import azure_openai, openai_compatible
from gateway.providers.port import Capabilities, ProviderAccount, VideoProvider, VideoRequest
from gateway.tables import Tables
from sorasim import SimulatorConfig, SoraSimulator

API_KEY = "sim-test-key"


@pytest.fixture
def simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(job_seconds=2, api_key=API_KEY, seed=3)) as sim:
        yield sim


def azure_account(url: str, key: str = API_KEY) -> ProviderAccount:
    return ProviderAccount(name="azure-openai", kind="azure-openai", base_url=url, api_key=key)


def request(prompt: str, model: str = "sora-2") -> VideoRequest:
    return VideoRequest(
        model=model, prompt=prompt, seconds=4, size="720x1280", aspect_ratio="9:16", resolution="720p"
    )


@pytest.fixture
def sora(simulator: SoraSimulator) -> VideoProvider:
    return azure_openai.build(azure_account(simulator.url))


@pytest.fixture
def jobs(tables: Tables) -> JobStore:
    return JobStore(tables)


@pytest.fixture
def creator(
    jobs: JobStore, tables: Tables, sora: VideoProvider, video_assets: VideoAssets
) -> UpstreamCreator:
    return UpstreamCreator(jobs, tables, lambda _name: sora, video_assets)


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


def test_content_refusal_is_permanent_and_carries_the_upstream_code(sora: VideoProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as refused:
        sora.create(request("no #sim:blocked"))
    assert refused.value.code == "content_policy_violation"
    assert refused.value.status == 400


def test_upstream_quota_is_transient_with_its_retry_after(
    simulator: SoraSimulator, sora: VideoProvider
) -> None:
    simulator.update_config(creates_per_minute=1)
    sora.create(request("first"))
    with pytest.raises(UpstreamTransientError) as throttled:
        sora.create(request("second"))
    assert throttled.value.status == 429
    assert isinstance(throttled.value, UpstreamThrottled)
    assert throttled.value.retry_after is not None
    assert 1 <= throttled.value.retry_after <= 60


def test_server_faults_and_dropped_connections_are_transient(
    simulator: SoraSimulator, sora: VideoProvider
) -> None:
    simulator.update_config(fault_rate=1.0)
    seen = set()
    for _ in range(20):
        with pytest.raises(UpstreamTransientError) as fault:
            sora.get("video_any")
        seen.add(fault.value.status)
    assert None in seen  # a dropped connection has no status
    assert seen & {500, 503}


def test_unknown_video_is_permanent_404(sora: VideoProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as missing:
        sora.get("video_missing")
    assert missing.value.status == 404
    assert sora.delete("video_missing") is False


def test_a_retried_create_adopts_the_job_its_first_attempt_made(
    jobs: JobStore, creator: UpstreamCreator, simulator: SoraSimulator, sora: VideoProvider
) -> None:
    job = make_job()
    jobs.add_job(job)
    # Someone else's identical request, created before ours started: never adopted.
    sora.create(request(job.prompt))
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


def test_permanent_answers_become_the_jobs_codes(sora: VideoProvider, simulator: SoraSimulator) -> None:
    """What a status check, a copy or a create turns a permanent upstream answer into."""
    with pytest.raises(UpstreamRejectedError) as denied:
        azure_openai.build(azure_account(simulator.url, "not-the-key")).get("video_any")
    assert denied.value.status == 401
    assert rejection_code(401, denied.value.code, keep_upstream_code=False) == "upstream_access_denied"
    assert rejection_code(403, "permission_denied", keep_upstream_code=True) == "upstream_access_denied"

    with pytest.raises(UpstreamRejectedError) as missing:
        sora.get("video_missing")
    code = rejection_code(missing.value.status, missing.value.code, keep_upstream_code=False)
    assert code == "upstream_job_not_found"

    with pytest.raises(UpstreamRejectedError) as refused:
        sora.create(request("no #sim:blocked"))
    code = rejection_code(refused.value.status, refused.value.code, keep_upstream_code=True)
    assert code == "content_policy_violation"
    for code in ("upstream_access_denied", "upstream_job_not_found", "content_policy_violation"):
        assert failure_message(code) != failure_message("an_unknown_code")  # each has its own sentence


class NoListing:
    """The simulator's Azure API, seen as a provider that cannot list its jobs (no find_recent)."""

    def __init__(self, inner: VideoProvider) -> None:
        self._inner = inner
        self.name = "nolist"
        self.capabilities = Capabilities(delete=True)
        self.get, self.create, self.delete = inner.get, inner.create, inner.delete


def test_an_interrupted_create_at_a_provider_that_cannot_list_is_ambiguous_not_repeated(
    jobs: JobStore, tables: Tables, sora: VideoProvider, simulator: SoraSimulator, video_assets: VideoAssets
) -> None:
    creator = UpstreamCreator(jobs, tables, lambda _name: NoListing(sora), video_assets)  # type: ignore[arg-type,return-value]
    job = make_job("ambiguous heron")
    jobs.add_job(job)
    creator.ensure_created(job, "sora-2")  # the first attempt reached the provider, then "died"
    interrupted = jobs.get_job(job.app_id, job.id)
    assert interrupted is not None
    assert interrupted.upstream_id is None

    with pytest.raises(UpstreamAmbiguousError):
        creator.ensure_created(interrupted, "sora-2")
    assert simulator.stats()["jobs_created"] == 1  # never a second upstream job


def test_a_throttled_create_leaves_no_start_mark_so_it_is_never_ambiguous(
    jobs: JobStore, tables: Tables, sora: VideoProvider, simulator: SoraSimulator, video_assets: VideoAssets
) -> None:
    creator = UpstreamCreator(jobs, tables, lambda _name: NoListing(sora), video_assets)  # type: ignore[arg-type,return-value]
    simulator.update_config(creates_per_minute=1)
    sora.create(request("someone else's"))
    job = make_job("throttled heron")
    jobs.add_job(job)
    with pytest.raises(UpstreamThrottled):
        creator.ensure_created(job, "sora-2")
    after = jobs.get_job(job.app_id, job.id)
    assert after is not None
    assert after.create_started_at is None
    assert simulator.stats()["jobs_created"] == 1


def test_the_openai_compatible_adapter_speaks_the_videos_api_with_a_bearer_key(
    simulator: SoraSimulator, video_assets: VideoAssets
) -> None:
    account = ProviderAccount(
        name="compat", kind="openai-compatible", base_url=simulator.url + "/openai/v1", api_key=API_KEY
    )
    provider = openai_compatible.build(account)
    assert provider.capabilities == Capabilities(True, True, True, True, True)
    video = provider.create(request("a compatible heron", model="sora-2-pro"))
    assert (video.status, video.model, video.size) == ("queued", "sora-2-pro", "720x1280")
    assert provider.recent(limit=5)[0].id == video.id
    deadline = time.monotonic() + 20
    while provider.get(video.id).status != "completed":
        assert time.monotonic() < deadline, "the simulated job never completed"
        time.sleep(0.2)
    with provider.open_asset(video.id) as chunks:
        content = b"".join(chunks)
    assert content[4:8] == b"ftyp"  # an MP4
    remix = provider.remix(video.id, "the same heron, at night")
    assert remix.remixed_from_video_id == video.id
    assert provider.delete(remix.id) is True
    assert provider.delete(remix.id) is False

    wrong = openai_compatible.build(ProviderAccount("compat", "openai-compatible", account.base_url, "nope"))
    with pytest.raises(UpstreamRejectedError) as denied:
        wrong.get(video.id)
    assert denied.value.status == 401
    assert "nope" not in str(denied.value)
    assert API_KEY not in str(denied.value)
    off = ProviderAccount(
        "compat", "openai-compatible", account.base_url, API_KEY, options={"remix": "false"}
    )
    assert openai_compatible.build(off).capabilities.remix is False
