"""Storage that hangs or is down: every endpoint answers 503 in the OpenAI error shape with
Retry-After within seconds (never a 500, never a hang), a refused create consumes nothing, and
once storage is back the gateway serves again and every job ends.

On a stack of this module's own, whose real Azurite is paused (SIGSTOP: connections are
accepted, nothing answers) or stopped (SIGTERM, then started again on the same ports and data),
so no other test's stack is disturbed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from devhost.net import wait_for_http
from tests import azurite_outage
from tests.azurite_outage import Restarted, azurite_pid, stopped
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.gateway.test_storage_seam import paused
from tests.gateway_client import AppCredentials

# Generous bounds, far from both the ~2 s / ~8 s the timeouts give and the minutes storage
# calls without timeouts hang for: what matters is that an answer arrives at all.
HEALTH_BOUND_SECONDS = 10.0
REQUEST_BOUND_SECONDS = 20.0
# Health gives up after one short try, well before a point read would (about 8 s).
HEALTH_ONE_TRY_SECONDS = 5.0


@pytest.fixture(scope="module")
def restarted_azurites() -> Iterator[Restarted]:
    """Azurites this module started again after stopping the stack's; stopped after the stack."""
    yield from azurite_outage.restarted_azurites()


@pytest.fixture(scope="module")
def outage_stack(
    tmp_path_factory: pytest.TempPathFactory, restarted_azurites: Restarted
) -> Iterator[RunningStack]:
    with stack_until_jobs_end(tmp_path_factory.mktemp("storage-outage")) as running:
        yield running


@pytest.fixture(scope="module")
def app(outage_stack: RunningStack) -> AppCredentials:
    return outage_stack.client.create_app(name="storage outage")


def timed(method: str, url: str, **kwargs: object) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=120, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def assert_storage_unavailable(response: requests.Response, code: str = "storage_unavailable") -> None:
    assert response.status_code == 503, response.text
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
    assert response.json()["error"]["type"] == "server_error"
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) > 0


def snapshot(stack: RunningStack, app: AppCredentials) -> tuple[dict[str, int], list[str]]:
    """The app's quota use and its video ids, read once storage answers again."""
    used = stack.client.usage(app.api_key)["used"]
    listed = requests.get(f"{stack.api}/v1/videos", headers=stack.headers(app.api_key), timeout=30)
    assert listed.status_code == 200, listed.text
    return used, sorted(video["id"] for video in listed.json()["data"])


def refused_while_storage_is_out(stack: RunningStack, app: AppCredentials, idempotency_key: str) -> None:
    health, health_seconds = timed("GET", f"{stack.api}/health")
    listing, listing_seconds = timed("GET", f"{stack.api}/v1/videos", headers=stack.headers(app.api_key))
    create, create_seconds = timed(
        "POST",
        f"{stack.api}/v1/videos",
        headers={**stack.headers(app.api_key), "Idempotency-Key": idempotency_key},
        json={"prompt": "A lighthouse in a storm " + idempotency_key},
    )

    assert_storage_unavailable(health, code="storage_unreachable")
    assert health_seconds < HEALTH_BOUND_SECONDS
    assert_storage_unavailable(listing)
    assert listing_seconds < REQUEST_BOUND_SECONDS
    assert_storage_unavailable(create)
    assert create_seconds < REQUEST_BOUND_SECONDS


def served_again_with_nothing_consumed(
    stack: RunningStack, app: AppCredentials, before: tuple[dict[str, int], list[str]], idempotency_key: str
) -> None:
    wait_for_http(f"{stack.api}/health", timeout=60)
    assert snapshot(stack, app) == before  # no new job, not one quota slot taken
    # The refused create held no claim on its key: the same key now makes the job.
    retried = stack.client.create_video(
        app.api_key,
        {"prompt": "A lighthouse in a storm " + idempotency_key},
        headers={"Idempotency-Key": idempotency_key},
    )
    assert retried.status_code == 202, retried.text
    assert retried.headers.get("Idempotent-Replayed") != "true"
    assert retried.json()["id"] not in before[1]
    stack.client.wait_finished(app.api_key, retried.json()["id"])


def test_paused_storage_is_a_503_with_retry_after_and_nothing_is_consumed(
    outage_stack: RunningStack, app: AppCredentials
) -> None:
    # A job in flight across the pause: its orchestration may stall, and must still end.
    running = outage_stack.client.create_video(app.api_key, {"prompt": "A kite over dunes"})
    assert running.status_code == 202, running.text
    before = snapshot(outage_stack, app)
    key = "outage-" + uuid.uuid4().hex

    with paused(azurite_pid(outage_stack)):
        refused_while_storage_is_out(outage_stack, app, key)

    served_again_with_nothing_consumed(outage_stack, app, before, key)
    assert outage_stack.client.wait_finished(app.api_key, running.json()["id"])["status"] == "completed"


def test_health_gives_up_on_paused_storage_after_one_short_try(outage_stack: RunningStack) -> None:
    with paused(azurite_pid(outage_stack)):
        health, seconds = timed("GET", f"{outage_stack.api}/health")
    assert_storage_unavailable(health, code="storage_unreachable")
    assert seconds < HEALTH_ONE_TRY_SECONDS
    wait_for_http(f"{outage_stack.api}/health", timeout=60)


def test_stopped_storage_is_a_503_with_retry_after_and_nothing_is_consumed(
    outage_stack: RunningStack, app: AppCredentials, restarted_azurites: Restarted
) -> None:
    before = snapshot(outage_stack, app)
    key = "down-" + uuid.uuid4().hex
    # Azurite saves its data and exits: storage is down; then up again on the same ports and data.
    with stopped(outage_stack, restarted_azurites):
        refused_while_storage_is_out(outage_stack, app, key)

    served_again_with_nothing_consumed(outage_stack, app, before, key)
