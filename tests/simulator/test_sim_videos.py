"""The videos API through the official SDK and raw HTTP: create, retrieve, list, remix, delete."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI
from openai.types import Video, VideoDeleteResponse

from sorasim import SoraSimulator
from tests.simulator.support import (
    VIDEO_FIELDS,
    assert_openai_error,
    ffmpeg_image,
    finished_video,
    png_bytes,
)

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def test_json_create_returns_a_queued_video_object(sim: SoraSimulator, http: requests.Session) -> None:
    response = http.post(
        f"{sim.url}/openai/v1/videos",
        json={"prompt": "A lighthouse at dawn", "model": "sora-2-pro", "seconds": 8, "size": "1280x720"},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == VIDEO_FIELDS
    video = Video.model_validate(body)
    assert video.id.startswith("video_")
    assert (video.object, video.status, video.progress) == ("video", "queued", 0)
    assert (video.model, video.seconds, video.size) == ("sora-2-pro", "8", "1280x720")
    assert video.prompt == "A lighthouse at dawn"
    assert video.completed_at is None
    assert video.expires_at is None
    assert video.error is None
    assert abs(video.created_at - time.time()) <= 2
    assert sim.stats()["jobs_created"] == 1


def test_sdk_create_sends_multipart_and_gets_the_defaults(sim: SoraSimulator, client: OpenAI) -> None:
    raw = client.videos.with_raw_response.create(prompt="A paper boat on a stream")

    assert raw.http_request.headers["Content-Type"].startswith("multipart/form-data")
    video = raw.parse()
    assert (video.model, video.seconds, video.size, video.status) == ("sora-2", "4", "720x1280", "queued")
    assert client.videos.retrieve(video.id).id == video.id


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_input_reference_must_match_the_requested_size(
    sim: SoraSimulator, client: OpenAI, tmp_path: Path, image_format: str
) -> None:
    def image(width: int, height: int) -> bytes:
        if image_format == "png":
            return png_bytes(width, height)
        if image_format == "jpeg":
            return ffmpeg_image(tmp_path, width, height, ".jpg")
        return ffmpeg_image(tmp_path, width, height, ".webp", "-c:v", "libwebp")

    video = client.videos.create(
        prompt="Animate this", size="1280x720", input_reference=(f"ref.{image_format}", image(1280, 720))
    )
    assert video.size == "1280x720"

    with pytest.raises(openai.BadRequestError) as raised:
        client.videos.create(
            prompt="Animate this", size="1280x720", input_reference=(f"ref.{image_format}", image(720, 1280))
        )
    assert (raised.value.code, raised.value.param) == ("invalid_value", "input_reference")
    assert "720x1280" in raised.value.message
    assert sim.stats()["jobs_created"] == 1


def test_input_reference_as_json_data_url(sim: SoraSimulator, http: requests.Session) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(720, 1280)).decode()
    url = f"{sim.url}/openai/v1/videos"

    accepted = http.post(url, json={"prompt": "p", "input_reference": {"image_url": data_url}}, timeout=10)
    mismatched = http.post(
        url, json={"prompt": "p", "size": "1280x720", "input_reference": {"image_url": data_url}}, timeout=10
    )
    not_an_image = http.post(
        url, files={"prompt": (None, "p"), "input_reference": ("x.png", b"hello")}, timeout=10
    )

    assert accepted.status_code == 200, accepted.text
    assert_openai_error(mismatched, 400, "invalid_value", "input_reference")
    assert_openai_error(not_an_image, 400, "invalid_value", "input_reference")


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"prompt": "p", "model": "sora-3"}, "invalid_value", "model"),
        ({"prompt": "p", "seconds": "5"}, "invalid_value", "seconds"),
        ({"prompt": "p", "seconds": True}, "invalid_value", "seconds"),
        ({"prompt": "p", "size": "640x480"}, "invalid_value", "size"),
        ({"prompt": "p", "size": "1792x1024"}, "invalid_value", "size"),
        ({"prompt": "p", "model": "sora-2", "size": "1024x1792"}, "invalid_value", "size"),
        ({"model": "sora-2"}, "missing_required_parameter", "prompt"),
        ({"prompt": "   "}, "invalid_value", "prompt"),
        ({"prompt": "p", "duration": 4}, "unknown_parameter", "duration"),
    ],
    ids=[
        "model",
        "seconds",
        "seconds-bool",
        "size",
        "pro-size-by-default",
        "pro-size-for-sora-2",
        "no-prompt",
        "blank-prompt",
        "unknown",
    ],
)
def test_bad_create_values_are_400_naming_the_param(
    sim: SoraSimulator, http: requests.Session, body: dict[str, Any], code: str, param: str
) -> None:
    response = http.post(f"{sim.url}/openai/v1/videos", json=body, timeout=10)

    assert_openai_error(response, 400, code, param)
    assert sim.stats()["jobs_created"] == 0
    assert sim.stats()["client_errors"] == 1


def test_sizes_are_per_model_as_on_azure(sim: SoraSimulator, http: requests.Session) -> None:
    url = f"{sim.url}/openai/v1/videos"
    pro = http.post(url, json={"prompt": "p", "model": "sora-2-pro", "size": "1024x1792"}, timeout=10)
    plain = http.post(url, json={"prompt": "p", "model": "sora-2", "size": "1024x1792"}, timeout=10)

    assert pro.status_code == 200, pro.text
    assert pro.json()["size"] == "1024x1792"
    assert_openai_error(plain, 400, "invalid_value", "size")
    assert "'720x1280' and '1280x720'" in plain.json()["error"]["message"]
    assert sim.stats()["jobs_created"] == 1


def test_unparseable_bodies_are_refused(sim: SoraSimulator, http: requests.Session) -> None:
    url = f"{sim.url}/openai/v1/videos"
    broken = http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10)
    listed = http.post(url, json=["prompt"], timeout=10)
    text = http.post(url, data=b"prompt", headers={"Content-Type": "text/plain"}, timeout=10)

    assert_openai_error(broken, 400, "invalid_json")
    assert_openai_error(listed, 400, "invalid_json")
    assert_openai_error(text, 415, "unsupported_content_type")
    assert sim.stats()["jobs_created"] == 0


def test_status_and_progress_follow_the_wall_clock(sim: SoraSimulator, http: requests.Session) -> None:
    created = http.post(f"{sim.url}/openai/v1/videos", json={"prompt": "a timelapse"}, timeout=10).json()
    started = time.monotonic()
    seen: list[tuple[str, int]] = []
    while True:
        response = http.get(f"{sim.url}/openai/v1/videos/{created['id']}", timeout=10)
        video = Video.model_validate(response.json())
        seen.append((video.status, video.progress))
        if video.status == "completed":
            assert "openai-poll-after-ms" not in response.headers
            break
        assert int(response.headers["openai-poll-after-ms"]) == 200
        assert time.monotonic() - started < 5
        time.sleep(0.04)
    elapsed = time.monotonic() - started

    statuses = [status for status, _ in seen]
    assert statuses[0] == "queued"
    # queued, then in_progress, then completed: never going back.
    assert statuses == sorted(statuses, key=["queued", "in_progress", "completed"].index)
    progress = [value for _, value in seen]
    assert progress == sorted(progress)
    assert len({value for status, value in seen if status == "in_progress"}) >= 5
    assert max(value for status, value in seen if status != "completed") <= 99
    assert seen[-1] == ("completed", 100)
    assert 1.8 <= elapsed <= 3.0
    assert video.completed_at is not None
    assert video.expires_at == video.completed_at + 24 * 3600


def test_create_and_poll_waits_until_completed(sim: SoraSimulator, client: OpenAI) -> None:
    started = time.monotonic()

    video = client.videos.create_and_poll(prompt="A fox in the snow", seconds="8")

    assert (video.status, video.progress, video.seconds) == ("completed", 100, "8")
    assert video.completed_at is not None
    assert video.completed_at >= video.created_at
    assert 1.8 <= time.monotonic() - started <= 4.0


def test_list_is_newest_first_and_paginates(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    ids = [client.videos.create(prompt=f"video {number}").id for number in range(5)]
    newest_first = ids[::-1]

    first = http.get(f"{sim.url}/openai/v1/videos", params={"limit": 2}, timeout=10).json()
    assert first["object"] == "list"
    assert [video["id"] for video in first["data"]] == newest_first[:2]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (
        newest_first[0],
        newest_first[1],
        True,
    )
    assert all(set(video) == VIDEO_FIELDS for video in first["data"])

    page = client.videos.list(limit=2, after=first["last_id"])
    assert [video.id for video in page.data] == newest_first[2:4]
    last = client.videos.list(limit=2, after=newest_first[3])
    assert ([video.id for video in last.data], last.has_more) == ([newest_first[4]], False)

    assert [video.id for video in client.videos.list(limit=2)] == newest_first  # SDK auto-pagination
    assert [video.id for video in client.videos.list(order="asc")] == ids
    empty_tail = http.get(f"{sim.url}/openai/v1/videos", params={"after": ids[0]}, timeout=10).json()
    assert empty_tail == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "video_x"}, "after"),
    ],
)
def test_list_refuses_bad_parameters(
    sim: SoraSimulator, http: requests.Session, params: dict[str, Any], param: str
) -> None:
    assert_openai_error(
        http.get(f"{sim.url}/openai/v1/videos", params=params, timeout=10), 400, "invalid_value", param
    )


def test_remix_of_a_completed_video(sim: SoraSimulator, client: OpenAI, http: requests.Session) -> None:
    source = finished_video(http, sim, seconds="8", size="1280x720", model="sora-2-pro")
    assert source.status == "completed"

    remix = client.videos.remix(source.id, prompt="Same scene, at night")
    multipart = http.post(
        f"{sim.url}/openai/v1/videos/{source.id}/remix",
        files={"prompt": (None, "Same, in the rain")},
        timeout=10,
    )

    assert remix.remixed_from_video_id == source.id
    assert (remix.status, remix.prompt) == ("queued", "Same scene, at night")
    assert (remix.model, remix.seconds, remix.size) == ("sora-2-pro", "8", "1280x720")
    assert remix.id != source.id
    assert multipart.status_code == 200, multipart.text
    assert Video.model_validate(multipart.json()).remixed_from_video_id == source.id
    stats = sim.stats()
    assert (stats["jobs_created"], stats["remixes_created"]) == (3, 2)


def test_remix_needs_an_existing_completed_source(sim: SoraSimulator, client: OpenAI) -> None:
    running = client.videos.create(prompt="still rendering")

    with pytest.raises(openai.NotFoundError) as missing:
        client.videos.remix("video_does_not_exist", prompt="again")
    with pytest.raises(openai.ConflictError) as unfinished:
        client.videos.remix(running.id, prompt="again")

    assert missing.value.code == "video_not_found"
    assert unfinished.value.code == "video_not_ready"
    assert sim.stats()["jobs_created"] == 1


def test_delete_removes_finished_and_unfinished_jobs(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    finished = finished_video(http, sim)
    sim.update_config(job_seconds=30)
    unfinished = client.videos.create(prompt="long job")

    deleted = [client.videos.delete(video_id) for video_id in (finished.id, unfinished.id)]

    assert deleted == [
        VideoDeleteResponse(id=finished.id, object="video.deleted", deleted=True),
        VideoDeleteResponse(id=unfinished.id, object="video.deleted", deleted=True),
    ]
    for video_id in (finished.id, unfinished.id):
        with pytest.raises(openai.NotFoundError):
            client.videos.retrieve(video_id)
        assert_openai_error(
            http.delete(f"{sim.url}/openai/v1/videos/{video_id}", timeout=10),
            404,
            "video_not_found",
            "video_id",
        )
    assert client.videos.list().data == []
    assert sim.stats()["jobs_deleted"] == 2


def test_unknown_routes_and_methods_answer_in_the_openai_shape(
    sim: SoraSimulator, http: requests.Session
) -> None:
    assert_openai_error(http.get(f"{sim.url}/openai/v1/nothing-here", timeout=10), 404, "not_found")
    assert_openai_error(http.put(f"{sim.url}/openai/v1/videos", timeout=10), 405, "method_not_allowed")


def test_concurrent_creates_each_make_one_job(sim: SoraSimulator, http: requests.Session) -> None:
    def create(number: int) -> str:
        # One connection per call: a requests.Session is not meant to be shared between threads.
        response = requests.post(
            f"{sim.url}/openai/v1/videos",
            headers=http.headers,
            json={"prompt": f"parallel {number}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(24)))

    assert len(set(ids)) == 24
    assert sim.stats()["jobs_created"] == 24
    assert (
        len(http.get(f"{sim.url}/openai/v1/videos", params={"limit": 100}, timeout=10).json()["data"]) == 24
    )
