"""Fixtures of the contract tests, on the shared local stack."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import RunningStack
from tests.contract.support import bearer
from tests.gateway_client import AppCredentials


@pytest.fixture
def pro_app(stack: RunningStack) -> AppCredentials:
    """A fresh app per test: each has its own quota (5 an hour on the shared stack)."""
    return stack.client.create_app("pro", name="contract")


@pytest.fixture(scope="module")
def completed_video(stack: RunningStack) -> tuple[AppCredentials, dict[str, Any]]:
    """One finished video (and its app) for the tests that only read it or remix it."""
    app = stack.client.create_app("pro", name="contract completed")
    response = requests.post(
        f"{stack.api}/v1/videos",
        headers=bearer(app.api_key),
        json={"prompt": "A kite over a beach", "metadata": {"suite": "contract"}},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return app, stack.client.wait_for(app.api_key, response.json()["id"], ("completed",))
