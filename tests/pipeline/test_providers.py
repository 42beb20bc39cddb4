"""Jobs stay with the provider that accepted them: a catalog changed mid-job (here, across a
restart) moves new jobs only. Against one simulator outside the stack, which speaks every
provider's protocol, so upstream jobs survive the restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.config import load_values
from sorasim import SimulatorConfig, SoraSimulator
from tests.conftest import PROJECT_DIR, launch_stack


@pytest.fixture
def external_simulator() -> Iterator[SoraSimulator]:
    sample = load_values(PROJECT_DIR, {})
    config = SimulatorConfig(job_seconds=10, api_key=sample["SORA_SIM_API_KEY"])
    with SoraSimulator(config) as simulator:
        yield simulator


def catalog_with_sora_2_at(provider: str, provider_model: str) -> str:
    """The sample's catalog, with the public id `sora-2` made by another provider account."""
    catalog = json.loads(load_values(PROJECT_DIR, {})["MODEL_CATALOG"])
    for model in catalog:
        if model["id"] == "sora-2":
            model.update(
                provider=provider, provider_model=provider_model, sizes=["720x1280"], seconds=[4], remix=False
            )
    return json.dumps(catalog)


def test_a_job_finishes_at_its_provider_after_the_catalog_moves_its_model(
    tmp_path: Path, external_simulator: SoraSimulator
) -> None:
    stack = launch_stack(tmp_path / "stack", external_simulator)
    try:
        app = stack.client.create_app("pro")
        before = stack.client.create_video(app.api_key, {"prompt": "bound heron", "model": "sora-2"}).json()
        assert before["provider"] == "azure-openai"
        stack.client.wait_for(app.api_key, before["id"], ("in_progress",))
        stack.stop()
        time.sleep(1)
        # Now sora-2 is made by the AI/ML API account, whose protocol knows nothing of the Azure
        # job: were the old job checked or downloaded there, it would fail.
        stack.env["MODEL_CATALOG"] = catalog_with_sora_2_at("aimlapi", "google/veo-3.1-t2v")
        stack.start()
        after = stack.client.create_video(app.api_key, {"prompt": "moved heron", "model": "sora-2"}).json()
        done_before = stack.client.wait_finished(app.api_key, before["id"], timeout=120)
        done_after = stack.client.wait_finished(app.api_key, after["id"], timeout=120)
        stack.stop_after_every_job_ends()
    finally:
        stack.stop()

    assert (done_before["status"], done_before["provider"]) == ("completed", "azure-openai")
    assert (done_after["status"], done_after["provider"]) == ("completed", "aimlapi"), done_after
    assert done_before["video_url"]
    assert done_after["video_url"]
    assert external_simulator.stats()["jobs_created"] == 2  # one upstream job each, no more
