"""The asset URLs the API hands out: read-only, for exactly one blob, living SAS_TTL_MINUTES.

A link that outlives its TTL (a year, say) is a link that can no longer be taken back: whoever
it was forwarded to keeps reading the video. So the lifetime is checked on the URLs a client
really receives, against the stack's own setting, not on the signer alone (tests/gateway/test_sas.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devhost.config import load_values
from gateway.blobs import CLOCK_SKEW
from gateway.settings import AZURITE_ACCOUNT, Settings
from tests.conftest import PROJECT_DIR, RunningStack
from tests.gateway_client import AppCredentials

# SAS times are whole seconds, and the stack and the test read the same clock: a few seconds
# cover the rounding and the request's own duration, far below any lifetime worth catching.
SLACK = timedelta(seconds=5)


def stack_settings(stack: RunningStack) -> Settings:
    """The settings the stack runs with (the sample's values under the stack's environment)."""
    return Settings.from_env(load_values(PROJECT_DIR, stack.env))


def sas_time(query: dict[str, list[str]], name: str) -> datetime:
    return datetime.strptime(query[name][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def blob_origin(stack: RunningStack) -> str:
    return str(re.findall(r"BlobEndpoint=(http://[^/;]+)", stack.storage_connection_string)[0])


def assert_read_url_for(
    stack: RunningStack, url: str, blob_name: str, minted: tuple[datetime, datetime]
) -> None:
    """`url` reads `blob_name` and nothing else, and lives SAS_TTL_MINUTES from when it was
    minted (between minted[0] and minted[1]), give or take SLACK."""
    settings = stack_settings(stack)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == blob_origin(stack), url
    assert parts.path == f"/{AZURITE_ACCOUNT}/{settings.videos_container}/{blob_name}", url
    assert query["sr"] == ["b"], url  # signed for a blob, not for its container
    assert query["sp"] == ["r"], url  # read only
    ttl = timedelta(minutes=settings.sas_ttl_minutes)
    first, last = minted
    expiry = sas_time(query, "se")
    assert first + ttl - SLACK <= expiry <= last + ttl + SLACK, (url, ttl)
    if "st" in query:
        # Backdated by the signer's allowance for clock differences, never more: an earlier
        # start widens the window, a later one refuses the link the client was just handed.
        start = sas_time(query, "st")
        assert first - CLOCK_SKEW - SLACK <= start <= last, url


def minted_by(call: Any) -> tuple[requests.Response, tuple[datetime, datetime]]:
    """The response of `call()` and the span in which the stack minted its URLs."""
    before = datetime.now(UTC)
    response = call()
    return response, (before, datetime.now(UTC))


@pytest.fixture(scope="module")
def completed(stack: RunningStack) -> tuple[AppCredentials, str]:
    app = stack.client.create_app("pro", name="asset urls")
    created = stack.client.create_video(app.api_key, {"prompt": "A paper boat on a stream"})
    assert created.status_code == 202, created.text
    video_id = created.json()["id"]
    assert stack.client.wait_finished(app.api_key, video_id)["status"] == "completed"
    return app, video_id


def test_the_video_objects_urls_read_their_own_blob_for_sas_ttl_minutes(
    stack: RunningStack, completed: tuple[AppCredentials, str]
) -> None:
    app, video_id = completed

    response, minted = minted_by(lambda: stack.client.get_video(app.api_key, video_id))

    assert response.status_code == 200, response.text
    video = response.json()
    assets = {
        "video_url": f"{app.id}/{video_id}/video.mp4",
        "download_url": f"{app.id}/{video_id}/video.mp4",
        "thumbnail_url": f"{app.id}/{video_id}/thumbnail.jpg",
    }
    for field, blob_name in assets.items():
        assert_read_url_for(stack, video[field], blob_name, minted)
    # And they do open those blobs, today.
    assert requests.get(video["video_url"], timeout=30).headers["Content-Type"] == "video/mp4"
    assert requests.get(video["thumbnail_url"], timeout=30).headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(("variant", "asset"), [("video", "video.mp4"), ("thumbnail", "thumbnail.jpg")])
def test_the_content_redirect_reads_its_own_blob_for_sas_ttl_minutes(
    stack: RunningStack, completed: tuple[AppCredentials, str], variant: str, asset: str
) -> None:
    app, video_id = completed

    response, minted = minted_by(
        lambda: requests.get(
            f"{stack.api}/v1/videos/{video_id}/content",
            headers=stack.headers(app.api_key),
            params={"variant": variant},
            allow_redirects=False,
            timeout=30,
        )
    )

    assert response.status_code == 302, response.text
    assert_read_url_for(stack, response.headers["Location"], f"{app.id}/{video_id}/{asset}", minted)
