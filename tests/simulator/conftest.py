"""A real simulator on a free loopback port, real managed-identity tokens, the official SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.identity import DefaultAzureCredential
from openai import OpenAI

from sorasim import SimulatorConfig, SoraSimulator

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"

# The knobs every test starts from; tests change them through the simulator's runtime hooks.
BASELINE_KNOBS: dict[str, Any] = {
    "job_seconds": 2.0,
    "fault_rate": 0.0,
    "creates_per_minute": 0,
    "video_bytes": 0,
    "token_ttl_seconds": 3600.0,
}

# Anything that could make a credential look elsewhere than the simulator (or at IMDS).
_FOREIGN_IDENTITY_VARIABLES = (
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(scope="session")
def shared_simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(**BASELINE_KNOBS), host="127.0.0.1", port=0) as simulator:
        yield simulator


@pytest.fixture
def sim(shared_simulator: SoraSimulator) -> Iterator[SoraSimulator]:
    """The shared simulator with no jobs, zeroed counters and baseline knobs."""
    shared_simulator.update_config(**BASELINE_KNOBS)
    shared_simulator.reset()
    yield shared_simulator
    shared_simulator.update_config(**BASELINE_KNOBS)
    shared_simulator.reset()


def use_managed_identity_of(simulator: SoraSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point azure-identity at the simulator's App Service managed-identity endpoint only."""
    for name in _FOREIGN_IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", simulator.token_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", simulator.identity_header)
    # Only ManagedIdentityCredential in DefaultAzureCredential's chain, and without the IMDS probe.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def token(sim: SoraSimulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bearer token from the real DefaultAzureCredential, issued by the simulator."""
    use_managed_identity_of(sim, monkeypatch)
    return DefaultAzureCredential().get_token(COGNITIVE_SERVICES_SCOPE).token


@pytest.fixture
def client(sim: SoraSimulator, token: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{sim.url}/openai/v1/", api_key=token, max_retries=0, timeout=30) as openai:
        yield openai


@pytest.fixture
def http(sim: SoraSimulator, token: str) -> Iterator[requests.Session]:
    """A plain HTTP session that sends the bearer token, for what the SDK cannot express."""
    with requests.Session() as session:
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {token}"
        yield session
