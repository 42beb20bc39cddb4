"""The create flow's order: the cheapest refusal first, and no image work for a refused request.

authenticate → plan → read the fields → validate → claim the key and take the quota slot → fetch
and decode the image → store → record. The image URL is a real loopback server that records
every request, so "never fetched" is observed, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.conftest import RunningStack
from tests.gateway.urls_server import LocalServer


@pytest.fixture
def images() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


def with_image_url(url: str, **fields: object) -> dict[str, object]:
    return {"prompt": "p", "input_reference": {"image_url": url}, **fields}


def test_a_free_app_is_403_before_its_body_is_read(stack: RunningStack, images: LocalServer) -> None:
    app = stack.client.create_app("free")
    # A body that would be 400 invalid_json if it were read: the plan is refused first.
    refused = requests.post(
        f"{stack.api}/v1/videos",
        headers={**stack.headers(app.api_key), "Content-Type": "application/json"},
        data=b"{not json" + b" " * 200_000,
        timeout=60,
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "plan_not_allowed"
    fetched = stack.client.create_video(app.api_key, with_image_url(images.url("/image?free")))
    assert fetched.status_code == 403
    assert images.paths == []


def test_an_over_quota_app_is_429_before_its_image_is_fetched(
    stack: RunningStack, images: LocalServer
) -> None:
    app = stack.client.create_app("pro")
    hourly = stack.client.usage(app.api_key)["limits"]["hour"]
    for _ in range(hourly):
        assert stack.client.create_video(app.api_key, {"prompt": "fill"}).status_code == 202

    refused = stack.client.create_video(app.api_key, with_image_url(images.url("/image?over-quota")))

    assert refused.status_code == 429, refused.text
    assert images.paths == []  # refused on the quota alone: the image was never asked for


def test_an_image_refused_after_the_slot_gives_slot_and_key_back_and_stores_nothing(
    stack: RunningStack, images: LocalServer
) -> None:
    app = stack.client.create_app("pro")
    # The server's /image is a PNG signature followed by junk: fetched, then refused on decoding.
    refused = stack.client.create_video(
        app.api_key, with_image_url(images.url("/image")), headers={"Idempotency-Key": "k"}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "input_reference"
    assert images.paths == ["/image"]  # it was fetched: the slot had been taken by then
    assert stack.client.usage(app.api_key)["used"] == {"hour": 0, "day": 0}
    assert stack.stored_files(f"{app.id}/") == []  # no orphan
    # The key was given back too: the same key with another body is a new request, not a 409.
    retried = stack.client.create_video(app.api_key, {"prompt": "no image"}, headers={"Idempotency-Key": "k"})
    assert retried.status_code == 202, retried.text
    assert "Idempotent-Replayed" not in retried.headers
