"""The official `openai` SDK as the client, against the local stack, with an app key."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import openai
import pytest
import requests
from azure.storage.blob import BlobServiceClient
from openai import OpenAI

from tests.conftest import RunningStack
from tests.images_support import image_bytes
from tests.mp4 import boxes

# The SDK flags its Sora methods as deprecated upstream; that is not this gateway's concern.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def sdk(stack: RunningStack) -> Iterator[OpenAI]:
    app = stack.client.create_app("pro")
    with OpenAI(base_url=f"{stack.api}/v1", api_key=app.api_key, max_retries=0, timeout=60) as client:
        yield client


def stored_blob(stack: RunningStack, video_url: str) -> bytes:
    container, blob = video_url.split("/devstoreaccount1/", 1)[1].split("?", 1)[0].split("/", 1)
    service = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    return bytes(service.get_blob_client(container, blob).download_blob().readall())


def test_create_and_poll_retrieve_download_and_delete(stack: RunningStack, sdk: OpenAI) -> None:
    video = sdk.videos.create_and_poll(prompt="A kite over the dunes", seconds="4", size="1280x720")

    assert video.status == "completed"
    assert video.progress == 100
    assert (video.seconds, video.size, video.model) == ("4", "1280x720", "sora-2")
    again = sdk.videos.retrieve(video.id)
    assert again.id == video.id
    video_url = (again.model_extra or {})["video_url"]

    content = sdk.videos.download_content(video.id).read()
    thumbnail = sdk.videos.download_content(video.id, variant="thumbnail").read()
    assert boxes(content)[0][0] == "ftyp"
    assert content == stored_blob(stack, video_url)
    assert thumbnail[:3] == b"\xff\xd8\xff"
    assert thumbnail == stored_blob(stack, (again.model_extra or {})["thumbnail_url"])

    deleted = sdk.videos.delete(video.id)
    assert (deleted.id, deleted.deleted) == (video.id, True)
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(video.id)


def test_multipart_create_with_an_input_reference_is_fitted_to_the_size(sdk: OpenAI) -> None:
    picture = ("photo.png", image_bytes(1000, 1000), "image/png")
    created = sdk.videos.create(prompt="Bring this still to life", size="720x1280", input_reference=picture)
    assert created.status == "queued"
    done = sdk.videos.poll(created.id)
    # The simulator, like Sora, refuses a reference whose size differs: completion proves the fit.
    assert done.status == "completed", done.error


def test_list_paginates_to_the_end(sdk: OpenAI) -> None:
    ids = [sdk.videos.create(prompt=f"frame {index}").id for index in range(3)]

    first_page = sdk.videos.list(limit=2)
    assert [video.id for video in first_page.data] == ids[::-1][:2]
    assert first_page.has_more is True
    everything = [video.id for video in sdk.videos.list(limit=2)]  # auto-pagination
    oldest_first = [video.id for video in sdk.videos.list(limit=2, order="asc")]

    assert everything == ids[::-1]
    assert oldest_first == ids


def test_remix_of_a_completed_video(sdk: OpenAI) -> None:
    source = sdk.videos.create_and_poll(prompt="A red ball bouncing")
    remix = sdk.videos.remix(source.id, prompt="Make the ball blue")
    assert remix.remixed_from_video_id == source.id
    assert (remix.seconds, remix.size, remix.model) == (source.seconds, source.size, source.model)
    finished = sdk.videos.poll(remix.id)
    assert finished.status == "completed"
    assert finished.prompt == "Make the ball blue"


def test_sdk_errors_carry_status_and_code(stack: RunningStack, sdk: OpenAI) -> None:
    with (
        OpenAI(base_url=f"{stack.api}/v1", api_key="sgw_wrong", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError) as unauthorized,
    ):
        stranger.videos.list()
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.code == "invalid_api_key"

    free = stack.client.create_app("free")
    with (
        OpenAI(base_url=f"{stack.api}/v1", api_key=free.api_key, max_retries=0) as free_client,
        pytest.raises(openai.PermissionDeniedError) as forbidden,
    ):
        free_client.videos.create(prompt="not on this plan")
    assert forbidden.value.code == "plan_not_allowed"

    with pytest.raises(openai.NotFoundError) as missing:
        sdk.videos.retrieve("video_unknown")
    assert missing.value.code == "video_not_found"

    running = sdk.videos.create(prompt="still rendering")
    with pytest.raises(openai.ConflictError) as not_ready:
        sdk.videos.remix(running.id, prompt="too early")
    assert not_ready.value.code == "video_not_ready"

    for _ in range(4):  # 5 per hour: `running` took one
        sdk.videos.create(prompt="filling the hour")
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.videos.create(prompt="one too many")
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["Retry-After"]) >= 1


def test_download_redirects_to_a_fresh_read_only_sas(stack: RunningStack, sdk: OpenAI) -> None:
    video = sdk.videos.create_and_poll(prompt="A quiet harbour")
    key = sdk.api_key
    first = requests.get(
        f"{stack.api}/v1/videos/{video.id}/content",
        headers={"Authorization": f"Bearer {key}"},
        allow_redirects=False,
        timeout=10,
    )
    not_a_variant = requests.get(
        f"{stack.api}/v1/videos/{video.id}/content?variant=spritesheet",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert first.status_code == 302
    assert "sp=r&" in first.headers["Location"]
    assert not_a_variant.status_code == 404
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pending = sdk.videos.create(prompt="not yet")
    too_early = requests.get(
        f"{stack.api}/v1/videos/{pending.id}/content", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert too_early.status_code == 409
    assert too_early.json()["error"]["code"] == "video_not_ready"
