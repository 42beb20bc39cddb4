"""The built-in catalog (what a deployment without MODEL_CATALOG offers) asks each provider only
for what its protocol takes: every size and duration of every built-in model, sent the way the
gateway sends it (`gateway.creation`: the catalog size and its ratio/resolution), is accepted by the
provider's simulator, which refuses what the provider's documentation does not list. One job per
model is followed to the end and its MP4 has the requested pixels and length.

Its per-request options too: settings check MODEL_CATALOG's declared options against the adapters
at start-up, but not the built-in catalog's (that would import every adapter on a cold start), so
here every built-in model's options must be ones its adapter sends, and a create carrying all of
them (each value of a choice) must be accepted by the simulator with the native fields it records.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator, Mapping

import pytest

from gateway.catalog import BUILT_IN_MODELS, CatalogModel, built_in_catalog, shape_of
from gateway.providers.port import ProviderAccount, ProviderVideo, VideoProvider, VideoRequest
from gateway.providers.registry import build_provider, video_options
from gateway.video_options import CHOICE, OPTIONS, OptionValue
from sorasim import SimulatorConfig, SoraSimulator
from tests import mp4
from tests.providers.support import marker, options_created

KEYS = {
    "aimlapi": "sim-aimlapi-" + "k" * 24,
    "geminigen": "sim-geminigen-" + "k" * 24,
    "gemini": "sim-gemini-" + "k" * 24,
    "fal": "sim-fal-" + "k" * 24,
}
# Where each kind's API lives on the simulator (as the local stack's PROVIDERS points them).
PATHS = {"aimlapi": "", "geminigen": "/uapi/v1", "gemini": "/v1beta", "fal": ""}
# How each kind names the options on the wire (the adapters' module docs); others keep the name.
NATIVE_NAMES = {"gemini": {"negative_prompt": "negativePrompt", "person_generation": "personGeneration"}}
# What a text request carries without being asked (gemini always sends its persons value).
NATIVE_DEFAULTS: dict[str, dict[str, OptionValue]] = {"gemini": {"personGeneration": "allow_all"}}
# A value for each option that is not a choice.
SAMPLES: dict[str, OptionValue] = {"negative_prompt": "blurry, captions", "generate_audio": False}


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


def _account(sim: SoraSimulator, kind: str) -> ProviderAccount:
    return ProviderAccount(name=kind, kind=kind, base_url=sim.url + PATHS[kind], api_key=KEYS[kind])


def _option_sets(model: CatalogModel) -> list[dict[str, OptionValue]]:
    """Every declared option at once: one set per combination of the choices' values."""
    fixed = {name: SAMPLES[name] for name in model.options if OPTIONS[name].kind != CHOICE}
    choices = {name: values for name, values in model.options.items() if OPTIONS[name].kind == CHOICE}
    combinations = itertools.product(*choices.values())
    return [{**fixed, **dict(zip(choices, values, strict=True))} for values in combinations]


def _native(kind: str, options: Mapping[str, OptionValue]) -> dict[str, OptionValue]:
    names = NATIVE_NAMES.get(kind, {})
    return {
        **NATIVE_DEFAULTS.get(kind, {}),
        **{names.get(name, name): value for name, value in options.items()},
    }


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


@pytest.mark.parametrize("kind", sorted(BUILT_IN_MODELS))
def test_built_in_options_are_ones_the_adapter_sends(kind: str) -> None:
    account = ProviderAccount(name=kind, kind=kind, base_url="http://127.0.0.1:9", api_key=KEYS[kind])
    for model in _built_in(kind):
        carried = video_options(account, model.provider_model)
        assert carried is not None, f"the {kind} adapter is not installed"
        assert set(model.options) <= carried, (model.id, sorted(model.options), sorted(carried))


@pytest.mark.parametrize("kind", sorted(BUILT_IN_MODELS))
def test_a_create_with_every_built_in_option_is_accepted_as_native_fields(
    sim: SoraSimulator, kind: str
) -> None:
    provider = build_provider(_account(sim, kind))
    try:
        for model in _built_in(kind):
            size, seconds = model.sizes[0], model.seconds[0]
            tag = marker()
            option_sets = _option_sets(model)
            for options in option_sets:
                request = _request(model, size, seconds, f"options {model.id} {tag}")
                provider.create(dataclasses.replace(request, options=options))
            # One job per set, each carrying exactly the native fields of what it was given.
            assert options_created(sim, tag) == [_native(kind, options) for options in option_sets], model.id
    finally:
        provider.close()
