"""Issue 9's acceptance test: with the official `openai` SDK, the same script makes a video at every
provider of the local stack's catalog, and only `model` (with a duration and size that model
offers) changes between them.

The models come from `GET /api/v1/models` through the SDK, so a model or provider added to the
catalog is covered without touching this file. For each one: the job completes at the model's
provider, the SDK download is a playable MP4 of the asked duration, the Video's `video_url` is a
read-only SAS URL on the stack's Azurite serving those same bytes, and the simulator saw exactly
one upstream job for it.
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from openai import OpenAI
from openai.types import Model, Video

from devhost.config import load_values
from gateway.providers.registry import KINDS
from tests.conftest import PROJECT_DIR, RunningStack
from tests.mp4 import boxes, duration_seconds

# The SDK flags its Sora methods as deprecated upstream; that is not this gateway's concern.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# The sample's provider accounts, one of each kind (local.settings.sample.json PROVIDERS).
SAMPLE_ACCOUNTS = {"azure-openai", "openai", "aimlapi", "geminigen", "gemini", "fal"}


def script(client: OpenAI, model: str, seconds: str, size: str, marker: str) -> tuple[Video, bytes]:
    """What an app writes; the same for every provider but for `model`, `seconds` and `size`."""
    video = client.videos.create_and_poll(
        model=model,
        prompt=f"A lighthouse at dawn, waves rolling in {marker}",
        seconds=seconds,  # the SDK types both as Sora's values; the gateway takes what the model offers
        size=size,
    )
    return video, client.videos.download_content(video.id).read()


def blob_endpoint(stack: RunningStack) -> str:
    found = re.search(r"BlobEndpoint=([^;]+)", stack.storage_connection_string)
    assert found is not None
    return found.group(1)


def check_one_model(stack: RunningStack, model: Model) -> str:
    """Run the script for one model and check what it got; "ok: ...", or why not."""
    capabilities: dict[str, Any] = model.model_extra or {}
    # The second duration and the last size it offers: nobody's default (Sora's are 4 s portrait,
    # Veo's 8 s landscape), so a provider that dropped them would make a video that fails here.
    offered_seconds, offered_sizes = capabilities["seconds"], capabilities["sizes"]
    seconds = offered_seconds[1] if len(offered_seconds) > 1 else offered_seconds[0]
    size = offered_sizes[-1]
    marker = f"every-provider-{uuid.uuid4().hex}"
    app = stack.client.create_app("pro")  # an app per model: a catalog of any length fits the quota
    try:
        with OpenAI(base_url=f"{stack.api}/v1", api_key=app.api_key, max_retries=0, timeout=60) as client:
            video, content = script(client, model.id, seconds, size, marker)

        assert video.status == "completed", video.error
        assert (video.model, video.seconds, video.size) == (model.id, seconds, size)
        assert (video.model_extra or {})["provider"] == model.owned_by
        assert boxes(content)[0][0] == "ftyp"
        assert abs(duration_seconds(content) - int(seconds)) <= 0.5, duration_seconds(content)

        video_url = (video.model_extra or {})["video_url"]
        query = parse_qs(urlsplit(video_url).query)
        assert video_url.startswith(blob_endpoint(stack) + "/"), video_url
        assert query["sp"] == ["r"], video_url
        assert query["sig"], video_url
        from_blob = requests.get(video_url, timeout=30)
        assert from_blob.status_code == 200
        assert from_blob.content == content

        assert stack.upstream_jobs_for(marker) == 1
    except Exception as error:  # reported per model below, so one provider's failure hides no other
        return f"{type(error).__name__}: {error}"
    return f"ok: {model.owned_by}, {seconds} s at {size}: {duration_seconds(content):.2f} s, {len(content)} bytes"


def test_the_same_sdk_script_makes_a_video_at_every_provider(stack: RunningStack) -> None:
    reader = stack.client.create_app("pro")
    with OpenAI(base_url=f"{stack.api}/v1", api_key=reader.api_key, max_retries=0, timeout=60) as client:
        models = list(client.models.list())

    # Every kind of provider the gateway has an adapter for is in the catalog, at the sample's accounts.
    accounts = json.loads(load_values(PROJECT_DIR, stack.env)["PROVIDERS"])
    owners = {model.owned_by for model in models}
    assert owners >= SAMPLE_ACCOUNTS
    assert {accounts[owner]["kind"] for owner in owners} == set(KINDS)

    with ThreadPoolExecutor(max_workers=len(models)) as pool:  # the providers in parallel
        outcomes = dict(
            zip([m.id for m in models], pool.map(lambda m: check_one_model(stack, m), models), strict=True)
        )

    for model_id, outcome in outcomes.items():
        print(f"{model_id}: {outcome}")
    failed = {model_id: outcome for model_id, outcome in outcomes.items() if not outcome.startswith("ok:")}
    assert failed == {}
