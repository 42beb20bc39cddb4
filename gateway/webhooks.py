"""Signed webhook events, per the Standard Webhooks scheme.

`webhook-signature` is `v1,` + base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
app's secret (`whsec_` + base64 of 32 random bytes). The event id stays the same across retries
so receivers can deduplicate; the timestamp is each attempt's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import requests

from gateway.urls import check_public_url

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
DELIVERY_TIMEOUT = (5.0, 10.0)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str  # video.completed | video.failed
    created_at: int
    data: dict[str, Any]

    def body(self) -> str:
        return json.dumps(
            {"id": self.id, "type": self.type, "created_at": self.created_at, "data": self.data},
            separators=(",", ":"),
        )


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSender:
    def __init__(self, session: requests.Session, *, allow_local: bool) -> None:
        self._session = session
        self._allow_local = allow_local

    def send(self, url: str, secret: str, event: WebhookEvent) -> bool:
        """One delivery attempt; True when the receiver answered 2xx. Never raises for the
        receiver's sake: its failures are the retry loop's business, not the video's."""
        try:
            # Checked again at delivery: the name may resolve elsewhere than when it was given.
            check_public_url(url, param="webhook_url", allow_local=self._allow_local)
        except Exception as error:
            log.warning("webhook %s not sent: %s", event.id, error)
            return False
        body = event.body()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, event.id, timestamp, body),
            "User-Agent": "sora-gateway-webhooks/1",
        }
        try:
            response = self._session.post(
                url, data=body.encode(), headers=headers, timeout=DELIVERY_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as error:
            log.info("webhook %s to receiver failed: %s", event.id, type(error).__name__)
            return False
        response.close()
        log.info("webhook %s answered %s", event.id, response.status_code)
        return 200 <= response.status_code < 300
