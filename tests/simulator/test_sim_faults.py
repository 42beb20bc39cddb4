"""Prompt markers, the creation quota, injected faults, and the /_sim/ hooks that count them."""

from __future__ import annotations

import time
from collections import Counter

import openai
import pytest
import requests
from openai import OpenAI

from sorasim import SimulatorConfig, SoraSimulator
from tests.simulator.support import assert_openai_error, finished_video, wait_for_status

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def test_blocked_prompt_is_refused_without_creating_a_job(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.videos.create(prompt="Something forbidden #sim:blocked")

    assert raised.value.status_code == 400
    assert raised.value.code == "content_policy_violation"
    assert raised.value.type == "invalid_request_error"
    assert client.videos.list().data == []
    source = finished_video(http, sim)
    remix = http.post(
        f"{sim.url}/openai/v1/videos/{source.id}/remix", json={"prompt": "#sim:blocked"}, timeout=10
    )
    assert_openai_error(remix, 400, "content_policy_violation", "prompt")
    stats = sim.stats()
    assert (stats["jobs_created"], stats["creates_blocked"]) == (1, 2)


def test_fail_marker_makes_the_job_fail_part_way(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    sim.update_config(job_seconds=1.0)
    video = client.videos.create(prompt="A doomed render #sim:fail")
    assert video.status == "queued"

    running = wait_for_status(http, sim, video.id, {"in_progress"})
    failed = wait_for_status(http, sim, video.id, {"failed", "completed"})

    assert running.status == "in_progress"
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "video_generation_failed"
    assert failed.error.message
    assert 0 < failed.progress < 100
    assert failed.completed_at is None
    assert failed.expires_at is None
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    with pytest.raises(openai.ConflictError):
        client.videos.remix(video.id, prompt="again")
    assert client.videos.create_and_poll(prompt="again #sim:fail").status == "failed"


def test_creation_quota_answers_429_with_exact_retry_after(sim: SoraSimulator, client: OpenAI) -> None:
    sim.update_config(creates_per_minute=2)
    first_at = time.time()
    client.videos.create(prompt="one")
    client.videos.create(prompt="two")

    with pytest.raises(openai.RateLimitError) as raised:
        client.videos.create(prompt="three")

    retry_after = int(raised.value.response.headers["Retry-After"])
    # Whole seconds until the first creation leaves the 60 s window.
    assert retry_after in {59, 60}
    assert retry_after >= int(first_at + 60 - time.time())
    assert raised.value.code == "rate_limit_exceeded"
    stats = sim.stats()
    assert (stats["jobs_created"], stats["creates_rejected"]) == (2, 1)

    sim.update_config(creates_per_minute=0)
    assert client.videos.create(prompt="unlimited again").status == "queued"


def test_remix_counts_against_the_creation_quota(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    source = finished_video(http, sim)
    sim.update_config(creates_per_minute=2)

    client.videos.remix(source.id, prompt="remix one")
    with pytest.raises(openai.RateLimitError):
        client.videos.remix(source.id, prompt="remix two")
    with pytest.raises(openai.RateLimitError):
        client.videos.create(prompt="also over")
    assert sim.stats()["creates_rejected"] == 2


def test_full_fault_rate_faults_every_request_without_side_effects() -> None:
    with SoraSimulator(SimulatorConfig(seed=7)) as flaky:
        flaky.update_config(fault_rate=1.0)
        session = requests.Session()
        session.trust_env = False
        token = session.get(
            flaky.token_endpoint,
            params={"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"},
            headers={"X-IDENTITY-HEADER": flaky.identity_header},
            timeout=5,
        )
        assert token.status_code == 200  # the token endpoint never faults
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        outcomes: Counter[str] = Counter()
        for number in range(40):
            try:
                response = session.post(
                    f"{flaky.url}/openai/v1/videos", json={"prompt": f"n{number}"}, timeout=5
                )
            except requests.ConnectionError:
                outcomes["dropped"] += 1
                continue
            outcomes[str(response.status_code)] += 1
            assert response.status_code in (429, 500, 503), response.text
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            if response.status_code == 429:
                assert response.headers["Retry-After"] in {"1", "2"}

        stats = requests.get(f"{flaky.url}/_sim/stats", timeout=5).json()  # nor do the hooks
        assert set(outcomes) == {"429", "500", "503", "dropped"}
        assert stats["requests"] == stats["faults_injected"] == 40
        assert {kind: stats[f"faults_{kind}"] for kind in outcomes} == dict(outcomes)
        assert stats["jobs_created"] == 0

        # The outage ends: the same request now creates exactly one job.
        flaky.update_config(fault_rate=0.0)
        assert (
            session.post(f"{flaky.url}/openai/v1/videos", json={"prompt": "after"}, timeout=5).status_code
            == 200
        )
        assert flaky.stats()["jobs_created"] == 1


def test_sdk_sees_faults_as_transient_errors(sim: SoraSimulator, client: OpenAI) -> None:
    sim.update_config(fault_rate=1.0)
    transient = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)

    for _ in range(8):
        with pytest.raises(transient):
            client.videos.list()

    assert sim.stats()["faults_injected"] == 8


def test_stats_count_exactly(sim: SoraSimulator, client: OpenAI) -> None:
    sim.update_config(job_seconds=0)  # completed as soon as created: no polling to count
    source = client.videos.create(prompt="instant")
    assert source.status == "completed"
    client.videos.remix(source.id, prompt="remix")
    client.videos.download_content(source.id, variant="thumbnail")
    client.videos.delete(source.id)
    with pytest.raises(openai.BadRequestError):
        client.videos.create(prompt="#sim:blocked")
    with pytest.raises(openai.BadRequestError):
        client.videos.create(prompt="p", size="1x1")  # type: ignore[arg-type]
    requests.get(f"{sim.url}/openai/v1/videos", timeout=5)  # no token

    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()
    assert stats == {
        "requests": 7,
        "jobs_created": 2,
        "remixes_created": 1,
        "jobs_deleted": 1,
        "creates_rejected": 0,
        "creates_blocked": 1,
        "client_errors": 2,
        "unauthorized": 1,
        "faults_injected": 0,
        "faults_429": 0,
        "faults_500": 0,
        "faults_503": 0,
        "faults_dropped": 0,
        "downloads": 1,
        "tokens_issued": 1,
        "token_requests_rejected": 0,
        "jobs_stored": 1,
    }
    assert sim.stats() == stats


def test_config_hook_changes_knobs_and_refuses_bad_ones(sim: SoraSimulator) -> None:
    url = f"{sim.url}/_sim/config"

    changed = requests.patch(
        url, json={"fault_rate": 0.25, "creates_per_minute": 3, "job_seconds": 1}, timeout=5
    )
    assert changed.status_code == 200
    assert (
        changed.json()["fault_rate"],
        changed.json()["creates_per_minute"],
        changed.json()["job_seconds"],
    ) == (
        0.25,
        3,
        1.0,
    )
    # Secrets never leave through the hooks: the identity secret and every provider's key.
    for secret in ("identity_header", "aimlapi_key", "geminigen_key", "gemini_key", "fal_key"):
        assert changed.json()[secret] == "***", secret
    assert (sim.config.fault_rate, sim.config.creates_per_minute) == (0.25, 3)

    for bad in ({"fault_rate": 2}, {"creates_per_minute": 1.5}, {"api_key": "x"}, {"job_seconds": "fast"}):
        response = requests.patch(url, json=bad, timeout=5)
        assert_openai_error(response, 400, "invalid_value")
    assert requests.get(url, timeout=5).json()["fault_rate"] == 0.25


def test_reset_hook_forgets_jobs_and_counters(sim: SoraSimulator, client: OpenAI) -> None:
    video = client.videos.create(prompt="soon forgotten")
    assert sim.stats()["jobs_created"] == 1

    assert requests.post(f"{sim.url}/_sim/reset", timeout=5).json() == {"reset": True}

    assert set(sim.stats().values()) == {0}
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)  # the token issued before the reset still works
