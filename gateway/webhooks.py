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

from gateway.errors import ApiError
from gateway.urls import open_public

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
DELIVERY_TIMEOUT_SECONDS = 10.0
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
    def __init__(self, *, allow_local: bool) -> None:
        self._allow_local = allow_local

    def send(self, url: str, secret: str, event: WebhookEvent) -> bool:
        """One delivery attempt; True when the receiver answered 2xx. Never raises for the
        receiver's sake: its failures are the retry loop's business, not the video's."""
        body = event.body()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, event.id, timestamp, body),
        }
        try:
            # Checked again at delivery and connected to the checked address only: the name may
            # resolve elsewhere now than when the URL was accepted.
            with open_public(
                "POST",
                url,
                param="webhook_url",
                allow_local=self._allow_local,
                timeout=DELIVERY_TIMEOUT_SECONDS,
                headers=headers,
                data=body.encode(),
            ) as response:
                status = response.status_code
        except ApiError as error:
            log.info("webhook %s not delivered: %s", event.id, error.code)
            return False
        log.info("webhook %s answered %s", event.id, status)
        return 200 <= status < 300
