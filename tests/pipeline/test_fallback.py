"""Routes with fallback, end to end: a model with several routes completes through a later one
when an earlier one's provider takes nothing, with exactly one upstream job, the Video naming the
provider that made it and the cost of that route; with every route failing, the job fails as
`no_route_available` and the slot goes back.

Against the local stack and one simulator outside it, which speaks every provider's protocol.
"Down" here is real: an account whose base URL is a loopback port where nothing listens
(connections refused, so nothing can have been made), and Google's retired Veo 3.1 preview ids,
which the simulated Gemini API answers 404 (as the real one does since October 2026).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sorasim import SimulatorConfig, SoraSimulator
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.pipeline.upstream_proxy import Rule, UpstreamProxy
from tests.sim_records import sim_created

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, every connection is refused
RETIRED = "veo-3.1-generate-preview"  # a Gemini API id the simulator answers 404 (retired)
SIZES = ["1280x720", "720x1280"]
COOL_DOWN_SECONDS = 20


def providers(sim: str, busy: str) -> dict[str, Any]:
    return {
        "aimlapi-down": {"kind": "aimlapi", "base_url": DEAD, "key_setting": "SORA_SIM_AIMLAPI_KEY"},
        # The AI/ML API through a proxy that answers every create 429 (Retry-After: 1).
        "aimlapi-busy": {"kind": "aimlapi", "base_url": busy, "key_setting": "SORA_SIM_AIMLAPI_KEY"},
        "gemini": {"kind": "gemini", "base_url": f"{sim}/v1beta", "key_setting": "SORA_SIM_GEMINI_KEY"},
        "fal": {"kind": "fal", "base_url": sim, "key_setting": "SORA_SIM_FAL_KEY"},
    }


def route(provider: str, provider_model: str, price: float) -> dict[str, Any]:
    return {"provider": provider, "provider_model": provider_model, "price_per_second": price}


CATALOG: list[dict[str, Any]] = [
    {  # the first route's provider is unreachable
        "id": "veo-unreachable-first",
        "sizes": SIZES,
        "seconds": [4, 8],
        "options": ["negative_prompt", "generate_audio"],  # both routes carry them
        "routes": [route("aimlapi-down", "google/veo-3.1-t2v", 0.5), route("fal", "fal-ai/veo3.1", 0.25)],
    },
    {  # the first route's model is retired there
        "id": "veo-retired-first",
        "sizes": SIZES,
        "seconds": [4, 8],
        "routes": [route("gemini", RETIRED, 0.4), route("fal", "fal-ai/veo3.1/fast", 0.1)],
    },
    {  # Google first, fal when Google cannot (the cool-down) or when asked for silence
        "id": "veo-google-first",
        "sizes": SIZES,
        "seconds": [4, 8],
        "options": ["negative_prompt", "generate_audio"],
        "routes": [
            # The Gemini API has no audio switch (Veo 3.x always has sound there).
            {**route("gemini", "veo-3.0-generate-001", 0.4), "options": ["negative_prompt"]},
            route("fal", "fal-ai/veo3.1", 0.25),
        ],
    },
    {  # the first route stays throttled longer than it may wait
        "id": "veo-busy-first",
        "sizes": SIZES,
        "seconds": [4, 8],
        "routes": [
            {**route("aimlapi-busy", "google/veo-3.1-t2v", 0.5), "max_wait_seconds": 3},
            route("fal", "fal-ai/veo3.1", 0.25),
        ],
    },
    {  # no route can take it
        "id": "veo-nowhere",
        "sizes": SIZES,
        "seconds": [4, 8],
        "routes": [route("aimlapi-down", "google/veo-3.1-t2v", 0.5), route("gemini", RETIRED, 0.4)],
    },
]


@pytest.fixture(scope="module")
def simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(job_seconds=2, fault_rate=0.0, creates_per_minute=0)) as running:
        yield running


@pytest.fixture(scope="module")
def busy(simulator: SoraSimulator) -> Iterator[UpstreamProxy]:
    with UpstreamProxy(simulator.url) as proxy:
        proxy.add(Rule("POST", r"^/v2/video/generations", status=429, retry_after=1))
        yield proxy


@pytest.fixture(scope="module")
def routed_stack(
    tmp_path_factory: pytest.TempPathFactory, simulator: SoraSimulator, busy: UpstreamProxy
) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        Path(tmp_path_factory.mktemp("routes")),
        DEVHOST_SIMULATOR="false",
        PROVIDERS=json.dumps(providers(simulator.url, busy.url)),
        MODEL_CATALOG=json.dumps(CATALOG),
        PROVIDER_FAILURES_TO_COOL_DOWN="2",
        PROVIDER_COOL_DOWN_SECONDS=str(COOL_DOWN_SECONDS),
    ) as running:
        yield running


# The provider each model's job starts on: its first route.
CATALOG_FIRST = {model["id"]: model["routes"][0]["provider"] for model in CATALOG}


def created_upstream(simulator: SoraSimulator, marker: str) -> int:
    return int(sim_created(simulator.url, marker)["jobs_created"])


def make(stack: RunningStack, model: str) -> tuple[str, str, str]:
    """A new app's video of `model`; (app key, video id, prompt marker)."""
    app = stack.client.create_app("pro", name=f"routes {model}")
    marker = uuid.uuid4().hex[:10]
    created = stack.client.create_video(
        app.api_key,
        {"prompt": f"A kite over dunes {marker}", "model": model, "seconds": "4", "size": "1280x720"},
    )
    assert created.status_code == 202, created.text
    assert created.json()["provider"] == CATALOG_FIRST[model]  # accepted on the first route
    return app.api_key, created.json()["id"], marker


def test_an_unreachable_first_provider_falls_back_to_the_second(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    key, video_id, marker = make(routed_stack, "veo-unreachable-first")
    done = routed_stack.client.wait_finished(key, video_id, timeout=120)
    assert done["status"] == "completed", done
    assert done["provider"] == "fal"
    assert done["estimated_cost"] == {"amount": 1.0, "currency": "USD"}  # fal's price, 4 s
    assert requests.get(done["video_url"], timeout=30).content[4:8] == b"ftyp"
    assert created_upstream(simulator, marker) == 1


def test_a_model_retired_at_the_first_provider_falls_back_to_the_second(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    key, video_id, marker = make(routed_stack, "veo-retired-first")
    done = routed_stack.client.wait_finished(key, video_id, timeout=60)
    assert (done["status"], done["provider"]) == ("completed", "fal"), done
    assert done["estimated_cost"] == {"amount": 0.4, "currency": "USD"}
    assert created_upstream(simulator, marker) == 1
    assert routed_stack.client.usage(key)["used"] == {"hour": 1, "day": 1}


def test_a_route_throttled_past_its_max_wait_hands_the_job_to_the_next(
    routed_stack: RunningStack, simulator: SoraSimulator, busy: UpstreamProxy
) -> None:
    key, video_id, marker = make(routed_stack, "veo-busy-first")
    done = routed_stack.client.wait_finished(key, video_id, timeout=60)
    assert (done["status"], done["provider"]) == ("completed", "fal"), done
    throttled = [seen for seen in busy.requests_to("POST", r"^/v2/video/generations") if seen.answered == 429]
    assert len(throttled) >= 2  # waited out within its 3 seconds, then moved on
    assert created_upstream(simulator, marker) == 1
    assert routed_stack.client.usage(key)["used"] == {"hour": 1, "day": 1}


def options_created(simulator: SoraSimulator, marker: str) -> list[dict[str, Any]]:
    """The provider-native option fields of each upstream create whose prompt has `marker`."""
    return list(sim_created(simulator.url, marker)["options"])


def test_a_jobs_options_go_with_it_to_the_route_that_makes_it(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    """The first route (the AI/ML API) takes nothing; fal makes the video with the options the app
    sent, once."""
    app = routed_stack.client.create_app("pro", name="routes with options")
    marker = uuid.uuid4().hex[:10]
    asked = {"negative_prompt": "no people", "generate_audio": False}
    created = routed_stack.client.create_video(
        app.api_key, {"prompt": f"A kite {marker}", "model": "veo-unreachable-first", "seconds": "4", **asked}
    )
    assert created.status_code == 202, created.text
    assert created.json()["provider"] == "aimlapi-down"
    done = routed_stack.client.wait_finished(app.api_key, created.json()["id"], timeout=120)
    assert (done["status"], done["provider"]) == ("completed", "fal"), done
    assert done["options"] == asked  # the Video says what was asked
    assert options_created(simulator, marker) == [asked]


def test_a_job_starts_on_the_first_route_that_carries_its_options(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    """Silence is asked for: Google's route cannot make it, so the job starts at fal and Google is
    never called; without the option, the same model starts at Google."""
    app = routed_stack.client.create_app("pro", name="routes by option")
    silent, loud = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    body = {"model": "veo-google-first", "seconds": "4", "size": "1280x720"}
    created = routed_stack.client.create_video(
        app.api_key, {**body, "prompt": f"A quiet kite {silent}", "generate_audio": False}
    )
    plain = routed_stack.client.create_video(app.api_key, {**body, "prompt": f"A kite {loud}"})
    assert created.status_code == 202, created.text
    assert (created.json()["provider"], plain.json()["provider"]) == ("fal", "gemini")
    for video in (created.json(), plain.json()):
        done = routed_stack.client.wait_finished(app.api_key, video["id"], timeout=120)
        assert done["status"] == "completed", done
    assert options_created(simulator, silent) == [{"generate_audio": False}]
    # Google got no audio switch, only its default person rule for text alone.
    assert options_created(simulator, loud) == [{"personGeneration": "allow_all"}]


def test_no_route_left_fails_clearly_and_gives_the_slot_back(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    key, video_id, marker = make(routed_stack, "veo-nowhere")
    done = routed_stack.client.wait_finished(key, video_id, timeout=120)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "no_route_available"
    assert "None of the video services" in done["error"]["message"]
    assert created_upstream(simulator, marker) == 0
    assert routed_stack.client.usage(key)["used"] == {"hour": 0, "day": 0}


def gemini_health(stack: RunningStack) -> dict[str, Any]:
    answer = requests.get(f"{stack.api}/health", headers={"x-admin-key": stack.admin_key}, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["provider_details"]["gemini"])


def test_a_failing_route_cools_down_is_skipped_uncalled_and_is_used_again_after(
    routed_stack: RunningStack, simulator: SoraSimulator
) -> None:
    """Google's account goes down (the simulator answers 503 on its API): two jobs find out and
    move on to fal, which cools Google down (two failures in a row here); the third job skips it
    without calling it; once it is back and the cool-down is over, a job is made there again."""
    # From a known state whatever ran before (a retired-model refusal counts as a failure): a job
    # Google makes ends any run of failures.
    key, video_id, _marker = make(routed_stack, "veo-google-first")
    assert routed_stack.client.wait_finished(key, video_id, timeout=60)["provider"] == "gemini"
    assert gemini_health(routed_stack)["consecutive_failures"] == 0
    set_down = f"{simulator.url}/_sim/config"
    requests.patch(set_down, json={"down": "gemini"}, timeout=5).raise_for_status()
    try:
        finding_out = [make(routed_stack, "veo-google-first") for _ in range(2)]
        for key, video_id, _marker in finding_out:
            done = routed_stack.client.wait_finished(key, video_id, timeout=60)
            assert (done["status"], done["provider"]) == ("completed", "fal"), done
        cooled = gemini_health(routed_stack)
        assert cooled["consecutive_failures"] == 2
        assert cooled["cooling_down_until"] is not None
        answer = requests.get(f"{routed_stack.api}/health", timeout=10).json()
        assert answer["providers"]["gemini"] == "down"

        key, video_id, _marker = make(routed_stack, "veo-google-first")
        done = routed_stack.client.wait_finished(key, video_id, timeout=60)
        assert (done["status"], done["provider"]) == ("completed", "fal"), done
        # Not called while cooling down: a call would have met the outage and counted a failure.
        assert gemini_health(routed_stack)["failed"] == cooled["failed"]
    finally:
        requests.patch(set_down, json={"down": ""}, timeout=5).raise_for_status()

    time.sleep(max(0.0, cooled["cooling_down_until"] - time.time()) + 2.5)  # past it, and the 2 s cache
    key, video_id, marker = make(routed_stack, "veo-google-first")
    done = routed_stack.client.wait_finished(key, video_id, timeout=60)
    assert (done["status"], done["provider"]) == ("completed", "gemini"), done
    assert created_upstream(simulator, marker) == 1
    healed = gemini_health(routed_stack)
    assert healed["consecutive_failures"] == 0
    assert healed["accepted"] >= 1
