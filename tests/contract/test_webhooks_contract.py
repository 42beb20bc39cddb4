"""Webhook deliveries are what the document's `webhooks` section says, signed per Standard Webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.conftest import RunningStack
from tests.contract.document import assert_webhook_matches_document
from tests.contract.support import create, webhook_receiver


@pytest.mark.parametrize(
    ("prompt", "event", "status"),
    [
        ("A quiet harbour", "video.completed", "completed"),
        ("A broken reel #sim:fail", "video.failed", "failed"),
    ],
)
def test_finished_video_posts_a_signed_event(
    stack: RunningStack, prompt: str, event: str, status: str
) -> None:
    app = stack.client.create_app("pro", name="contract webhooks")
    with webhook_receiver() as receiver:
        response = create(stack, app.api_key, json={"prompt": prompt, "webhook_url": receiver.url})
        assert response.status_code == 202, response.text
        delivery = receiver.wait_for(1)[0]

    body = json.loads(delivery.body)
    assert_webhook_matches_document(event, delivery.headers, body)
    assert (body["type"], body["data"]["id"], body["data"]["status"]) == (
        event,
        response.json()["id"],
        status,
    )
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    assert headers["webhook-id"] == body["id"]
    secret = base64.b64decode(app.webhook_secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery.body
    expected = "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" ")
