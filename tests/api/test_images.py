"""Image-to-video through the API: type by content, byte and pixel caps, fitting, unsafe URLs."""

from __future__ import annotations

import base64

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from tests.conftest import RunningStack
from tests.images_support import dimensions, image_bytes


def post_multipart(
    stack: RunningStack, key: str, image: bytes, filename: str, **fields: str
) -> requests.Response:
    return requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(key),
        files={
            "prompt": (None, fields.pop("prompt", "Animate this")),
            **{name: (None, value) for name, value in fields.items()},
            "input_reference": (filename, image, "image/jpeg"),
        },
        timeout=60,
    )


def test_wrong_type_by_content_is_415_whatever_the_name_says(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = post_multipart(stack, app.api_key, b"GIF89a not really an image", "cat.jpg")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_image_type"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0


def test_oversize_image_is_413(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    oversize = image_bytes(8, 8) + b"\0" * (10 * 1024 * 1024)
    response = post_multipart(stack, app.api_key, oversize, "big.png")
    assert response.status_code == 413
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0


@pytest.mark.parametrize("sent_as", ["multipart", "data-url"])
def test_an_image_of_too_many_pixels_is_400_takes_no_quota_and_stores_nothing(
    stack: RunningStack, sent_as: str
) -> None:
    """The security review's PNG: a few hundred KB declaring 7000x7000 pixels (49 MP), which took
    400-600 MB to decode. Refused from its header, naming the limit."""
    app = stack.client.create_app("pro")
    huge = image_bytes(7000, 7000)
    assert len(huge) < 300_000
    if sent_as == "multipart":
        response = post_multipart(stack, app.api_key, huge, "huge.png")
    else:
        data_url = "data:image/png;base64," + base64.b64encode(huge).decode()
        response = stack.client.create_video(
            app.api_key, {"prompt": "p", "input_reference": {"image_url": data_url}}
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("image_too_large", "input_reference")
    assert "7000x7000" in error["message"]
    assert "4096x4096" in error["message"]
    assert stack.client.usage(app.api_key)["used"] == {"hour": 0, "day": 0}
    assert stack.stored_files(f"{app.id}/") == []  # no orphan


def test_mismatched_image_is_fitted_and_stored_beside_the_video(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = post_multipart(stack, app.api_key, image_bytes(640, 480, "JPEG"), "wide.jpg", size="720x1280")
    assert response.status_code == 202, response.text
    video_id = response.json()["id"]
    done = stack.client.wait_finished(app.api_key, video_id)
    assert done["status"] == "completed", done["error"]
    container = BlobServiceClient.from_connection_string(
        stack.storage_connection_string
    ).get_container_client("videos")
    assert stack.stored_files(f"{app.id}/{video_id}/") == [
        f"{app.id}/{video_id}/{asset}" for asset in ("reference.jpg", "thumbnail.jpg", "video.mp4")
    ]
    reference = container.get_blob_client(f"{app.id}/{video_id}/reference.jpg").download_blob().readall()
    assert dimensions(reference) == (720, 1280)


def test_json_data_url_reference(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    data_url = "data:image/png;base64," + base64.b64encode(image_bytes(1280, 720)).decode()
    body = {"prompt": "A still, moving", "size": "1280x720", "input_reference": {"image_url": data_url}}
    response = stack.client.create_video(app.api_key, body)
    assert response.status_code == 202, response.text
    assert stack.client.wait_finished(app.api_key, response.json()["id"])["status"] == "completed"


def test_private_address_image_url_is_refused_before_any_fetch(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    for url in (
        "http://169.254.169.254/latest/meta-data/iam",
        "https://[fe80::1]/x.png",
        "file:///etc/passwd",
    ):
        body = {"prompt": "p", "input_reference": {"image_url": url}}
        response = stack.client.create_video(app.api_key, body)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"]["param"] == "input_reference"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0
