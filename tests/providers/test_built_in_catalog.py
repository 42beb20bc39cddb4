"""The built-in catalog (what a deployment without MODEL_CATALOG offers) asks each provider only
for what its protocol takes: every size and duration of every built-in model, sent the way the
gateway sends it (`gateway.creation`: the catalog size and its ratio/resolution), is accepted by the
provider's simulator, which refuses what the provider's documentation does not list. One job per
model is followed to the end and its MP4 has the requested pixels and length.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from gateway.catalog import BUILT_IN_MODELS, CatalogModel, built_in_catalog, shape_of
from gateway.providers.port import ProviderAccount, ProviderVideo, VideoProvider, VideoRequest
from gateway.providers.registry import build_provider
from sorasim import SimulatorConfig, SoraSimulator
from tests import mp4

KEYS = {
    "aimlapi": "sim-aimlapi-" + "k" * 24,
    "geminigen": "sim-geminigen-" + "k" * 24,
    "gemini": "sim-gemini-" + "k" * 24,
    "fal": "sim-fal-" + "k" * 24,
}
# Where each kind's API lives on the simulator (as the local stack's PROVIDERS points them).
PATHS = {"aimlapi": "", "geminigen": "/uapi/v1", "gemini": "/v1beta", "fal": ""}


@pytest.fixture(scope="module")
def sim() -> Iterator[SoraSimulator]:
    config = SimulatorConfig(
        aimlapi_key=KEYS["aimlapi"],
        geminigen_key=KEYS["geminigen"],
        gemini_key=KEYS["gemini"],
        fal_key=KEYS["fal"],
        job_seconds=0.5,
        fault_rate=0.0,
        creates_per_minute=0,
        video_bytes=0,
    )
    with SoraSimulator(config, host="127.0.0.1", port=0) as simulator:
        yield simulator


def _built_in(kind: str) -> list[CatalogModel]:
    return list(built_in_catalog({kind: kind}).values())


def _request(model: CatalogModel, size: str, seconds: str, prompt: str) -> VideoRequest:
    aspect_ratio, resolution = shape_of(size)
    return VideoRequest(
        model=model.provider_model,
        prompt=prompt,
        seconds=int(seconds),
        size=size,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
    )


def _wait(provider: VideoProvider, video: ProviderVideo, timeout: float = 20.0) -> ProviderVideo:
    deadline = time.monotonic() + timeout
    while not video.finished:
        assert time.monotonic() < deadline, f"{video.id} still {video.status}"
        time.sleep(0.1)
        video = provider.get(video.id)
    return video


def test_every_kind_with_built_in_models_is_covered() -> None:
    assert set(BUILT_IN_MODELS) == set(PATHS)
    assert all(_built_in(kind) for kind in BUILT_IN_MODELS)


@pytest.mark.parametrize("kind", sorted(BUILT_IN_MODELS))
def test_every_size_and_duration_of_a_built_in_model_is_accepted(sim: SoraSimulator, kind: str) -> None:
    account = ProviderAccount(name=kind, kind=kind, base_url=sim.url + PATHS[kind], api_key=KEYS[kind])
    provider = build_provider(account)
    try:
        for model in _built_in(kind):
            for size, seconds in itertools.product(model.sizes, model.seconds):
                video = provider.create(
                    _request(model, size, seconds, f"built-in {model.id} {size} {seconds}s")
                )
                assert video.status in ("queued", "in_progress"), (model.id, size, seconds, video)
            # The last combination made (the largest size, the longest duration) is followed to the end.
            done = _wait(provider, video)
            assert done.status == "completed", done
            with provider.open_asset(done.id) as chunks:
                data = b"".join(chunks)
            assert mp4.video_dimensions(data) == tuple(int(part) for part in size.split("x"))
            assert abs(mp4.duration_seconds(data) - int(seconds)) < 0.5
    finally:
        provider.close()
