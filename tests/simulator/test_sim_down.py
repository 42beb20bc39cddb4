"""The `down` knob: a protocol taken down at run time answers 503 on its API paths, in its own
error shape, while the other protocols and every CDN keep serving; it comes back with "down": ""."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sorasim import SimulatorConfig, SoraSimulator

FAL_KEY = {"Authorization": "Key sim-fal-key"}


@pytest.fixture
def up_sim(sim: SoraSimulator) -> Iterator[SoraSimulator]:
    """The shared simulator, every protocol up again afterwards whatever the test did."""
    yield sim
    sim.update_config(down="")


def patch(sim: SoraSimulator, **knobs: Any) -> requests.Response:
    return requests.patch(f"{sim.url}/_sim/config", json=knobs, timeout=5)


def finished_fal_request(sim: SoraSimulator) -> dict[str, Any]:
    """Submit a fal request and wait for it to complete; its submit answer (queue URLs)."""
    sim.update_config(job_seconds=0.3)
    submitted = requests.post(
        f"{sim.url}/fal-ai/veo3.1", json={"prompt": "a lighthouse #sim-down"}, headers=FAL_KEY, timeout=10
    )
    assert submitted.status_code == 200, submitted.text
    urls: dict[str, Any] = submitted.json()
    deadline = time.monotonic() + 10
    while requests.get(urls["status_url"], headers=FAL_KEY, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the fal request never completed"
        time.sleep(0.05)
    return urls


def test_a_downed_fal_answers_503_and_its_cdn_keeps_serving(up_sim: SoraSimulator) -> None:
    urls = finished_fal_request(up_sim)
    result = requests.get(urls["response_url"], headers=FAL_KEY, timeout=10)
    assert result.status_code == 200, result.text
    cdn_url = result.json()["video"]["url"]

    changed = patch(up_sim, down="fal")
    assert changed.status_code == 200
    assert changed.json()["down"] == "fal"

    for method, url in (
        ("GET", urls["status_url"]),
        ("GET", urls["response_url"]),
        ("POST", f"{up_sim.url}/fal-ai/veo3.1"),
    ):
        answer = requests.request(method, url, headers=FAL_KEY, json={"prompt": "x"}, timeout=10)
        assert answer.status_code == 503, (method, url, answer.text)
        # fal's infrastructure error shape: detail, error_type, and the retryable headers.
        assert answer.json()["error_type"] == "runner_scheduling_failure"
        assert "detail" in answer.json()
        assert answer.headers["X-Fal-Retryable"] == "true"
    # The CDN is another host: the video downloads as before, without a key.
    download = requests.get(cdn_url, timeout=10)
    assert download.status_code == 200
    assert download.content[4:8] == b"ftyp"

    # Every other protocol still serves: with no credentials they answer their own 401/403.
    for method, path in (
        ("POST", "/openai/v1/videos"),
        ("POST", "/v2/video/generations"),
        ("POST", "/uapi/v1/video-gen/veo"),
        ("POST", "/v1beta/models/veo-3.0-generate-001:predictLongRunning"),
    ):
        answer = requests.request(method, f"{up_sim.url}{path}", json={}, timeout=10)
        assert answer.status_code in (400, 401, 403), (path, answer.status_code, answer.text)
    assert requests.get(f"{up_sim.url}/_sim/health", timeout=5).status_code == 200

    back = patch(up_sim, down="")
    assert back.status_code == 200
    assert back.json()["down"] == ""
    assert requests.get(urls["status_url"], headers=FAL_KEY, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("name", "method", "path", "shape"),
    [
        (
            "azure-openai",
            "POST",
            "/openai/v1/videos",
            lambda body: body["error"]["code"] == "service_unavailable",
        ),
        (
            "openai",
            "GET",
            "/openai/v1/videos/video_x/content",
            lambda body: body["error"]["type"] == "server_error",
        ),
        ("aimlapi", "POST", "/v2/video/generations", lambda body: body["statusCode"] == 503),
        (
            "geminigen",
            "POST",
            "/uapi/v1/video-gen/veo",
            lambda body: body["detail"]["error_code"] == "SYSTEM_ERROR",
        ),
        (
            "gemini",
            "POST",
            "/v1beta/models/veo-3.0-generate-001:predictLongRunning",
            lambda body: body["error"]["status"] == "UNAVAILABLE",
        ),
    ],
)
def test_each_protocol_goes_down_in_its_own_error_shape(
    up_sim: SoraSimulator, name: str, method: str, path: str, shape: Any
) -> None:
    assert patch(up_sim, down=name).status_code == 200
    answer = requests.request(method, f"{up_sim.url}{path}", json={}, timeout=10)
    assert answer.status_code == 503, answer.text
    assert shape(answer.json()), answer.text
    # Only that protocol: fal answers its own 401 for a missing key, not a 503.
    assert requests.post(f"{up_sim.url}/fal-ai/veo3.1", json={}, timeout=10).status_code == 401


def test_several_protocols_can_be_down_at_once(up_sim: SoraSimulator) -> None:
    assert patch(up_sim, down="gemini, aimlapi").status_code == 200
    assert requests.post(f"{up_sim.url}/v2/video/generations", json={}, timeout=10).status_code == 503
    gemini = f"{up_sim.url}/v1beta/models/veo-3.0-generate-001:predictLongRunning"
    assert requests.post(gemini, json={}, timeout=10).status_code == 503
    assert requests.post(f"{up_sim.url}/uapi/v1/video-gen/veo", json={}, timeout=10).status_code != 503


def test_an_unknown_protocol_is_refused_and_nothing_changes(up_sim: SoraSimulator) -> None:
    assert patch(up_sim, down="fal").status_code == 200
    for bad in ("sora", "fal,nope", 3):
        answer = patch(up_sim, down=bad)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_value"
    assert requests.get(f"{up_sim.url}/_sim/config", timeout=5).json()["down"] == "fal"


def test_the_environment_sets_it_too() -> None:
    assert SimulatorConfig.from_env({"SORA_SIM_DOWN": "fal, gemini"}).down_list == {"fal", "gemini"}
    assert SimulatorConfig.from_env({}).down == ""
    with pytest.raises(ValueError, match="down"):
        SimulatorConfig.from_env({"SORA_SIM_DOWN": "everything"})
