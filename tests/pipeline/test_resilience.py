"""Bursts, faults and restarts: every accepted job ends, with exactly one upstream job each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sorasim import SimulatorConfig, SoraSimulator
from tests.conftest import RunningStack, launch_stack, stack_until_jobs_end

BURST_APPS = 3
PER_APP = 4


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """30% of upstream requests fail transiently, and the upstream allows 20 creations a
    minute while the gateway paces to 30: its own 429s must be waited out too."""
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("faulty"),
        SORA_SIM_FAULT_RATE="0.3",
        SORA_SIM_SEED="1234",
        SORA_SIM_CREATES_PER_MINUTE="20",
        UPSTREAM_CREATES_PER_MINUTE="30",
    ) as running:
        yield running


def test_a_burst_under_faults_all_completes_with_one_upstream_job_each(faulty_stack: RunningStack) -> None:
    client = faulty_stack.client
    apps = [client.create_app("pro") for _ in range(BURST_APPS)]
    requests_to_send = [app for app in apps for _ in range(PER_APP)]

    with ThreadPoolExecutor(max_workers=len(requests_to_send)) as pool:
        responses = list(pool.map(lambda app: (app, client.create_video(app.api_key)), requests_to_send))

    assert [response.status_code for _, response in responses] == [202] * len(requests_to_send)
    finished = [
        client.wait_finished(app.api_key, response.json()["id"], timeout=240) for app, response in responses
    ]
    assert [video["status"] for video in finished] == ["completed"] * len(requests_to_send)
    stats = faulty_stack.sim_stats()
    assert stats["faults_injected"] > 0
    assert stats["jobs_created"] == len(requests_to_send)


@pytest.fixture
def external_simulator() -> Iterator[SoraSimulator]:
    """A simulator outside the stack, so upstream jobs survive the stack's restart."""
    with SoraSimulator(SimulatorConfig(job_seconds=12)) as simulator:
        yield simulator


def test_a_restart_mid_job_still_ends_with_one_upstream_job(
    tmp_path: Path, external_simulator: SoraSimulator
) -> None:
    state_dir = tmp_path / "stack"
    stack = launch_stack(state_dir, external_simulator)
    try:
        app = stack.client.create_app("pro")
        video_id = stack.client.create_video(app.api_key).json()["id"]
        stack.client.wait_for(app.api_key, video_id, ("in_progress",))
        stack.stop()
        time.sleep(1)
        stack.start()  # same state dir, same ports: Azurite's files and the durable store resume
        done = stack.client.wait_finished(app.api_key, video_id, timeout=120)
    finally:
        stack.stop()
    assert done["status"] == "completed"
    assert external_simulator.stats()["jobs_created"] == 1
