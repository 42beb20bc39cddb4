"""The managed-identity token endpoint, and authentication of the videos API."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import openai
import pytest
import requests
from azure.identity import DefaultAzureCredential
from openai import OpenAI

from devhost.net import wait_for_http
from sorasim import SimulatorConfig, SoraSimulator
from sorasim.tokens import PRINCIPAL_ID, TENANT_ID
from tests.simulator.conftest import COGNITIVE_SERVICES_SCOPE, use_managed_identity_of
from tests.simulator.support import assert_openai_error

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def raw_token(sim: SoraSimulator, resource: str = "https://cognitiveservices.azure.com") -> dict[str, str]:
    response = requests.get(
        sim.token_endpoint,
        params={"api-version": "2019-08-01", "resource": resource},
        headers={"X-IDENTITY-HEADER": sim.identity_header},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_default_azure_credential_gets_a_working_token_from_the_simulator(
    sim: SoraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_managed_identity_of(sim, monkeypatch)

    access = DefaultAzureCredential().get_token(COGNITIVE_SERVICES_SCOPE)

    assert 3500 < access.expires_on - time.time() <= 3600
    assert sim.stats()["tokens_issued"] == 1
    with OpenAI(base_url=f"{sim.url}/openai/v1/", api_key=access.token, max_retries=0) as client:
        assert client.videos.list().data == []


def test_token_answer_has_the_app_service_format(sim: SoraSimulator) -> None:
    before = time.time()
    body = raw_token(sim)

    assert body["token_type"] == "Bearer"
    assert body["resource"] == "https://cognitiveservices.azure.com"
    # App Service sends expires_on as a string of unix seconds.
    assert isinstance(body["expires_on"], str)
    assert before + 3599 <= int(body["expires_on"]) <= time.time() + 3600
    assert len(body["access_token"]) >= 32
    assert body["access_token"] != raw_token(sim)["access_token"]


def test_a_storage_token_is_an_unsigned_jwt_with_the_claims_azurite_checks(sim: SoraSimulator) -> None:
    before = int(time.time())
    body = raw_token(sim, "https://storage.azure.com")

    header, payload, signature = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "none"
    assert signature == ""
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{TENANT_ID}/"
    assert before <= claims["iat"] == claims["nbf"] <= time.time()
    assert claims["exp"] == int(body["expires_on"])
    assert (claims["oid"], claims["tid"]) == (PRINCIPAL_ID, TENANT_ID)
    assert raw_token(sim, "https://storage.azure.com")["access_token"] != body["access_token"]
    # Tokens for other audiences stay opaque strings.
    assert "." not in raw_token(sim)["access_token"]


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"}, 400),
        ({"X-IDENTITY-HEADER": "not-the-secret"}, {"api-version": "2019-08-01", "resource": "x"}, 401),
        (None, {"resource": "https://cognitiveservices.azure.com"}, 400),
        (None, {"api-version": "2019-08-01"}, 400),
    ],
    ids=["missing-header", "wrong-header", "missing-api-version", "missing-resource"],
)
def test_token_endpoint_refuses_bad_requests(
    sim: SoraSimulator, headers: dict[str, str] | None, params: dict[str, str], status: int
) -> None:
    sent_headers = {"X-IDENTITY-HEADER": sim.identity_header} if headers is None else headers

    response = requests.get(sim.token_endpoint, params=params, headers=sent_headers, timeout=5)

    assert response.status_code == status
    assert "access_token" not in response.json()
    assert sim.stats()["token_requests_rejected"] == 1
    assert sim.stats()["tokens_issued"] == 0


def test_credential_with_the_wrong_identity_header_fails(
    sim: SoraSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_managed_identity_of(sim, monkeypatch)
    monkeypatch.setenv("IDENTITY_HEADER", "wrong-secret")

    with pytest.raises(Exception, match="ManagedIdentityCredential"):
        DefaultAzureCredential().get_token(COGNITIVE_SERVICES_SCOPE)
    assert sim.stats()["token_requests_rejected"] == 1


def test_videos_api_requires_a_bearer_token(sim: SoraSimulator) -> None:
    response = requests.get(f"{sim.url}/openai/v1/videos", timeout=5)

    assert_openai_error(response, 401, "invalid_api_key")
    assert sim.stats()["unauthorized"] == 1


def test_unknown_token_is_refused_by_the_sdk_as_authentication_error(sim: SoraSimulator) -> None:
    with (
        OpenAI(base_url=f"{sim.url}/openai/v1/", api_key="made-up-token", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        client.videos.create(prompt="a cat")
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert sim.stats()["jobs_created"] == 0


def test_token_for_another_audience_is_refused(sim: SoraSimulator) -> None:
    vault_token = raw_token(sim, resource="https://vault.azure.net")["access_token"]

    response = requests.get(
        f"{sim.url}/openai/v1/videos", headers={"Authorization": f"Bearer {vault_token}"}, timeout=5
    )

    assert_openai_error(response, 401, "invalid_api_key")


def test_expired_token_is_refused(sim: SoraSimulator) -> None:
    sim.update_config(token_ttl_seconds=1.5)
    issued = raw_token(sim)
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    assert requests.get(f"{sim.url}/openai/v1/videos", headers=headers, timeout=5).status_code == 200

    time.sleep(max(0.0, int(issued["expires_on"]) - time.time()) + 0.05)
    response = requests.get(f"{sim.url}/openai/v1/videos", headers=headers, timeout=5)

    assert_openai_error(response, 401, "token_expired")


def test_api_key_header_is_accepted_only_when_configured(sim: SoraSimulator) -> None:
    refused = requests.get(f"{sim.url}/openai/v1/videos", headers={"api-key": "anything"}, timeout=5)
    assert_openai_error(refused, 401, "invalid_api_key")

    with SoraSimulator(SimulatorConfig(api_key="sim-test-key")) as keyed:
        url = f"{keyed.url}/openai/v1/videos"
        wrong = requests.post(url, headers={"api-key": "other"}, json={"prompt": "a cat"}, timeout=5)
        assert_openai_error(wrong, 401, "invalid_api_key")

        with OpenAI(
            base_url=f"{keyed.url}/openai/v1/",
            api_key="unused",
            default_headers={"api-key": "sim-test-key"},
            max_retries=0,
        ) as client:
            video = client.videos.create(prompt="a cat")
        assert video.status == "queued"
        assert keyed.stats()["jobs_created"] == 1
        # Bearer tokens keep working in api-key mode.
        token = raw_token(keyed)["access_token"]
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_python_m_sorasim_serves_until_signalled(stop_signal: signal.Signals) -> None:
    env = {**os.environ, "SORA_SIM_IDENTITY_HEADER": "cli-secret", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        # Port 0: the simulator binds a free port itself and says which (no probe to lose).
        [sys.executable, "-m", "sorasim", "--port", "0"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        listening = process.stdout.readline().decode()
        assert listening.startswith("Sora simulator listening on http://127.0.0.1:"), listening
        port = int(listening.rsplit(":", 1)[1])
        wait_for_http(f"http://127.0.0.1:{port}/_sim/health", timeout=30)
        token = requests.get(
            f"http://127.0.0.1:{port}/msi/token",
            params={"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"},
            headers={"X-IDENTITY-HEADER": "cli-secret"},
            timeout=5,
        )
        assert token.status_code == 200

        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "Sora simulator stopped" in output.decode()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=2)
