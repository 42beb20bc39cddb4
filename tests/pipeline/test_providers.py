"""Jobs stay with the provider that accepted them: a catalog changed mid-job (here, across a
restart) moves new jobs only. Against one simulator outside the stack, which speaks every
provider's protocol, so upstream jobs survive the restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.config import load_values
from sorasim import SimulatorConfig, SoraSimulator
from tests.conftest import PROJECT_DIR, launch_stack, stack_until_jobs_end
from tests.pipeline.upstream_proxy import Rule, UpstreamProxy


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


def test_a_create_whose_answer_is_lost_at_a_provider_that_cannot_list_fails_ambiguous_and_refunds(
    tmp_path: Path, external_simulator: SoraSimulator
) -> None:
    """The AI/ML API cannot be asked which jobs it has. When its answer to a create is cut off,
    the job it made may exist: the gateway fails the job (`upstream_ambiguous`) and gives the
    slot back rather than create again, so the provider has exactly the one job."""
    with UpstreamProxy(external_simulator.url) as proxy:
        proxy.add(Rule("POST", r"^/v2/video/generations", cut=True, times=1))
        with stack_until_jobs_end(
            tmp_path / "stack",
            DEVHOST_SIMULATOR="false",
            AZURE_OPENAI_ENDPOINT=proxy.url,  # the sample's loopback accounts follow it
            IDENTITY_ENDPOINT=external_simulator.token_endpoint,
            IDENTITY_HEADER=external_simulator.identity_header,
            AZURE_TOKEN_CREDENTIALS="ManagedIdentityCredential",
        ) as stack:
            app = stack.client.create_app("pro")
            created = stack.client.create_video(app.api_key, {"prompt": "a lost heron", "model": "veo-3.1"})
            assert created.status_code == 202, created.text
            done = stack.client.wait_finished(app.api_key, created.json()["id"], timeout=60)
            usage = stack.client.usage(app.api_key)

    assert done["status"] == "failed"
    assert done["error"]["code"] == "upstream_ambiguous"
    assert "not charged twice" in done["error"]["message"]
    assert "sim-aimlapi-key" not in json.dumps(done)
    assert usage["used"]["hour"] == 0  # the slot was given back
    assert [seen.answered for seen in proxy.requests_to("POST", r"^/v2/video/generations")] == ["cut"]
    assert external_simulator.stats()["jobs_created"] == 1  # the one the lost answer made; never two


def test_without_a_catalog_the_gateway_offers_the_built_in_live_models_and_makes_them(tmp_path: Path) -> None:
    """A deployment that names its accounts but no models: no Sora (retired), the built-in Veo
    models of the first account that has them, and a request without `model` gets the first."""
    with stack_until_jobs_end(tmp_path / "stack", MODEL_CATALOG="") as stack:
        app = stack.client.create_app("pro")
        listed = requests.get(f"{stack.api}/v1/models", headers=stack.headers(app.api_key), timeout=10).json()
        created = stack.client.create_video(
            app.api_key, {"prompt": "a built-in heron", "aspect_ratio": "16:9"}
        )
        assert created.status_code == 202, created.text
        done = stack.client.wait_finished(app.api_key, created.json()["id"], timeout=60)
        document = requests.get(f"{stack.api}/openapi.json", timeout=10).json()

    # The sample's accounts in order: Azure OpenAI and the OpenAI-compatible one have no built-in
    # models; the AI/ML API account makes the Veo 3.1 ids, GeminiGen and fal the same models under
    # their names, and the Gemini API Google's own Veo 3.0.
    assert [(model["id"], model["owned_by"]) for model in listed["data"]] == [
        ("veo-3.1", "aimlapi"),
        ("veo-3.1-fast", "aimlapi"),
        ("veo-3.1-geminigen", "geminigen"),
        ("veo-3.1-fast-geminigen", "geminigen"),
        ("veo-3.0", "gemini"),
        ("veo-3.0-fast", "gemini"),
        ("veo-3.1-fal", "fal"),
        ("veo-3.1-fast-fal", "fal"),
    ]
    assert (done["status"], done["model"], done["provider"], done["size"]) == (
        "completed",
        "veo-3.1",
        "aimlapi",
        "1280x720",
    )
    create = document["paths"]["/v1/videos"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["model"]["enum"] == [model["id"] for model in listed["data"]]
