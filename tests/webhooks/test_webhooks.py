"""Signed webhooks, verified with an independent Standard Webhooks implementation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.messages import failure_message
from tests.conftest import RunningStack
from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures=4) as running:
        yield running


def wait_for_deliveries(receiver: Receiver, path: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.on(path)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(receiver.on(path))} deliveries to {path}, expected {count}")
        time.sleep(0.2)


def test_completed_event_survives_four_failures_and_verifies(stack: RunningStack, receiver: Receiver) -> None:
    app = stack.client.create_app("pro")
    path = f"/hooks/{app.id}"
    created = stack.client.create_video(
        app.api_key, {"prompt": "A hummingbird", "webhook_url": receiver.url(path)}
    )
    assert created.status_code == 202, created.text
    video_id = created.json()["id"]

    wait_for_deliveries(receiver, path, 5)
    time.sleep(3)  # long enough for a sixth attempt, if one were (wrongly) made

    deliveries = receiver.on(path)
    assert [delivery.answered for delivery in deliveries] == [500, 500, 500, 500, 204]
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 1  # one event, retried
    verified = Webhook(app.webhook_secret).verify(deliveries[-1].body, deliveries[-1].headers)
    assert verified["type"] == "video.completed"
    assert verified["data"]["id"] == video_id
    assert verified["data"]["status"] == "completed"
    assert verified["data"]["video_url"].startswith("http://127.0.0.1:")
    # The event carries a URL signed as it is sent (sending, not storing) ...
    assert "sig=" in verified["data"]["video_url"]
    # The video itself was never held up by the failing receiver.
    assert stack.client.get_video(app.api_key, video_id).json()["status"] == "completed"
    # ... and the task hub keeps none: not in the delivery's input or result, nor anywhere else.
    stored = finished_orchestration(stack, video_id)
    assert "deliver_webhook" in stored
    assert "sig=" not in stored


def finished_orchestration(stack: RunningStack, instance_id: str, timeout: float = 30.0) -> str:
    """The instance's status with its whole history and every activity result, once it ended."""
    deadline = time.monotonic() + timeout
    while True:
        response = stack.management_get(
            f"instances/{instance_id}", showHistory="true", showHistoryOutput="true", showInput="true"
        )
        response.raise_for_status()
        if response.json()["runtimeStatus"] == "Completed" or time.monotonic() > deadline:
            return response.text
        time.sleep(0.2)


def test_failed_event_is_sent_for_a_refused_video(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    with Receiver() as receiver:
        path = "/failed"
        body = {"prompt": "not allowed #sim:blocked", "webhook_url": receiver.url(path)}
        stack.client.create_video(app.api_key, body)
        wait_for_deliveries(receiver, path, 1)
    event = Webhook(app.webhook_secret).verify(receiver.on(path)[0].body, receiver.on(path)[0].headers)
    assert event["type"] == "video.failed"
    assert event["data"]["error"] == {
        "code": "content_policy_violation",
        "message": failure_message("content_policy_violation"),  # never the upstream's words
    }


def test_tampered_body_or_signature_or_wrong_secret_fails_verification(stack: RunningStack) -> None:
    app, other = stack.client.create_app("pro"), stack.client.create_app("pro")
    with Receiver() as receiver:
        stack.client.create_video(app.api_key, {"prompt": "A lantern", "webhook_url": receiver.url("/t")})
        wait_for_deliveries(receiver, "/t", 1)
    delivery = receiver.on("/t")[0]
    event = json.loads(delivery.body)
    event["data"]["status"] = "failed"
    tampered_body = json.dumps(event).encode()
    signature = delivery.headers["webhook-signature"]
    tampered_signature = {
        **delivery.headers,
        "webhook-signature": signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB"),
    }

    with pytest.raises(WebhookVerificationError):
        Webhook(app.webhook_secret).verify(tampered_body, delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(app.webhook_secret).verify(delivery.body, tampered_signature)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.webhook_secret).verify(delivery.body, delivery.headers)
    assert (
        Webhook(app.webhook_secret).verify(delivery.body, delivery.headers)["id"]
        == delivery.headers["webhook-id"]
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/hook", "invalid_value"),
        ("http://169.254.169.254/latest/meta-data", "invalid_value"),
        ("not a url", "invalid_value"),
    ],
)
def test_unsafe_webhook_urls_are_refused_and_cost_nothing(stack: RunningStack, url: str, code: str) -> None:
    app = stack.client.create_app("pro")
    response = stack.client.create_video(app.api_key, {"prompt": "p", "webhook_url": url})
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, "webhook_url")
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0
