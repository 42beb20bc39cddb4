"""Retrieve, list, download, delete and remix: real answers, each checked against the document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack
from tests.contract.document import assert_matches_document
from tests.contract.support import assert_error, bearer, create, get
from tests.gateway_client import AppCredentials

VIDEOS = "/v1/videos"
VIDEO = "/v1/videos/{video_id}"
CONTENT = "/v1/videos/{video_id}/content"
REMIX = "/v1/videos/{video_id}/remix"
UNKNOWN_ID = "video_ffffffffffff00000000000000000000"

Completed = tuple[AppCredentials, dict[str, Any]]


def queued(stack: RunningStack, app: AppCredentials, prompt: str = "A slow sunrise") -> dict[str, Any]:
    response = create(stack, app.api_key, json={"prompt": prompt})
    assert response.status_code == 202, response.text
    return dict(response.json())


@pytest.fixture
def in_flight(stack: RunningStack, pro_app: AppCredentials) -> Iterator[dict[str, Any]]:
    """A video that is certainly not finished while the test runs: the simulator takes a minute
    over it (a 3-second job may well be done before a loaded machine sends the next request).
    Cancelled afterwards, so that it still ends quickly (the stack checks every job ends)."""
    with stack.sim_configured(job_seconds=60):
        video = queued(stack, pro_app, "A very slow sunrise")
        # The upstream job takes its length from the simulator when it is made: keep the setting
        # until then.
        stack.client.wait_for(pro_app.api_key, video["id"], ("in_progress",), 60)
    yield video
    requests.delete(f"{stack.api}/v1/videos/{video['id']}", headers=bearer(pro_app.api_key), timeout=30)


def remix(stack: RunningStack, key: str, video_id: str, **kwargs: Any) -> requests.Response:
    return requests.post(f"{stack.api}/v1/videos/{video_id}/remix", headers=bearer(key), timeout=60, **kwargs)


def test_retrieve_in_flight_says_when_to_poll(
    stack: RunningStack, pro_app: AppCredentials, in_flight: dict[str, Any]
) -> None:
    video = in_flight

    response = get(f"{stack.api}/v1/videos/{video['id']}", pro_app.api_key)

    body = assert_matches_document("GET", VIDEO, response)
    assert body["status"] in ("queued", "in_progress")
    assert int(response.headers["openai-poll-after-ms"]) > 0
    assert int(response.headers["Retry-After"]) >= 1


def test_retrieve_completed_has_a_fresh_video_url(stack: RunningStack, completed_video: Completed) -> None:
    app, video = completed_video

    response = get(f"{stack.api}/v1/videos/{video['id']}", app.api_key)

    body = assert_matches_document("GET", VIDEO, response)
    assert (body["status"], body["progress"]) == ("completed", 100)
    assert body["video_url"]
    assert body["metadata"] == {"suite": "contract"}


def test_another_apps_video_and_an_unknown_id_are_404(
    stack: RunningStack, completed_video: Completed, pro_app: AppCredentials
) -> None:
    _, video = completed_video
    for video_id in (video["id"], UNKNOWN_ID):
        response = get(f"{stack.api}/v1/videos/{video_id}", pro_app.api_key)
        assert_error(response, VIDEO, 404, "video_not_found")


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", VIDEOS),
        ("GET", VIDEO),
        ("DELETE", VIDEO),
        ("GET", CONTENT),
        ("POST", REMIX),
        ("GET", "/v1/usage"),
    ],
)
def test_app_endpoints_without_a_valid_key_are_401(stack: RunningStack, method: str, template: str) -> None:
    url = stack.api + template.replace("{video_id}", UNKNOWN_ID)
    response = requests.request(
        method, url, headers={"Authorization": "Bearer sgw_unknown"}, json={"prompt": "p"}, timeout=30
    )

    assert_error(response, template, 401, "invalid_api_key")


def test_list_pages_newest_first_with_a_cursor(stack: RunningStack, pro_app: AppCredentials) -> None:
    ids = [queued(stack, pro_app, f"Video {n}")["id"] for n in range(3)]
    url = f"{stack.api}/v1/videos"

    everything = assert_matches_document("GET", VIDEOS, get(url, pro_app.api_key))
    first_page = assert_matches_document("GET", VIDEOS, get(url, pro_app.api_key, params={"limit": 2}))
    rest = assert_matches_document(
        "GET", VIDEOS, get(url, pro_app.api_key, params={"limit": 2, "after": first_page["last_id"]})
    )
    oldest_first = assert_matches_document("GET", VIDEOS, get(url, pro_app.api_key, params={"order": "asc"}))

    newest_first = ids[::-1]
    assert [video["id"] for video in everything["data"]] == newest_first
    assert (everything["object"], everything["has_more"]) == ("list", False)
    assert (everything["first_id"], everything["last_id"]) == (newest_first[0], newest_first[-1])
    assert [video["id"] for video in first_page["data"]] == newest_first[:2]
    assert first_page["has_more"] is True
    assert [video["id"] for video in rest["data"]] == newest_first[2:]
    assert rest["has_more"] is False
    assert [video["id"] for video in oldest_first["data"]] == ids


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"order": "up"}, "order"),
    ],
)
def test_list_rejects_bad_parameters(
    stack: RunningStack, pro_app: AppCredentials, params: dict[str, Any], param: str
) -> None:
    response = get(f"{stack.api}/v1/videos", pro_app.api_key, params=params)

    assert_error(response, VIDEOS, 400, "invalid_value", param)


def test_content_redirects_to_the_video_and_the_thumbnail(
    stack: RunningStack, completed_video: Completed
) -> None:
    app, video = completed_video
    url = f"{stack.api}/v1/videos/{video['id']}/content"

    default = get(url, app.api_key)
    thumbnail = get(url, app.api_key, params={"variant": "thumbnail"})

    assert_matches_document("GET", CONTENT, default)
    assert default.status_code == 302, default.text
    download = requests.get(default.headers["Location"], timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "video/mp4"
    # The simulated Sora keeps a thumbnail for every finished video, and the gateway copies it.
    assert video["thumbnail_url"]
    assert_matches_document("GET", CONTENT, thumbnail)
    assert thumbnail.status_code == 302, thumbnail.text
    picture = requests.get(thumbnail.headers["Location"], timeout=30)
    assert picture.status_code == 200
    assert picture.headers["Content-Type"].startswith("image/")


def test_content_before_completion_is_409(
    stack: RunningStack, pro_app: AppCredentials, in_flight: dict[str, Any]
) -> None:
    video = in_flight

    response = get(f"{stack.api}/v1/videos/{video['id']}/content", pro_app.api_key)

    assert_error(response, CONTENT, 409, "video_not_ready")


def test_content_of_an_unknown_video_is_404_and_a_bad_variant_400(
    stack: RunningStack, completed_video: Completed
) -> None:
    app, video = completed_video

    unknown = get(f"{stack.api}/v1/videos/{UNKNOWN_ID}/content", app.api_key)
    bad_variant = get(
        f"{stack.api}/v1/videos/{video['id']}/content", app.api_key, params={"variant": "poster"}
    )

    assert_error(unknown, CONTENT, 404, "video_not_found")
    assert_error(bad_variant, CONTENT, 400, "invalid_value", "variant")


def test_delete_in_flight_cancels(
    stack: RunningStack, pro_app: AppCredentials, in_flight: dict[str, Any]
) -> None:
    video = in_flight

    response = requests.delete(
        f"{stack.api}/v1/videos/{video['id']}", headers=bearer(pro_app.api_key), timeout=30
    )

    body = assert_matches_document("DELETE", VIDEO, response)
    assert body == {"id": video["id"], "object": "video.deleted", "deleted": True}
    cancelled = stack.client.wait_for(pro_app.api_key, video["id"], ("failed",))
    assert cancelled["error"]["code"] == "cancelled"
    assert_matches_document("GET", VIDEO, get(f"{stack.api}/v1/videos/{video['id']}", pro_app.api_key))


def test_delete_finished_removes_the_assets(stack: RunningStack, pro_app: AppCredentials) -> None:
    video = stack.client.wait_for(pro_app.api_key, queued(stack, pro_app)["id"], ("completed",))

    response = requests.delete(
        f"{stack.api}/v1/videos/{video['id']}", headers=bearer(pro_app.api_key), timeout=30
    )

    assert assert_matches_document("DELETE", VIDEO, response)["deleted"] is True
    content = get(f"{stack.api}/v1/videos/{video['id']}/content", pro_app.api_key)
    assert_matches_document("GET", CONTENT, content)
    assert content.status_code == 404


def test_delete_unknown_is_404(stack: RunningStack, pro_app: AppCredentials) -> None:
    response = requests.delete(
        f"{stack.api}/v1/videos/{UNKNOWN_ID}", headers=bearer(pro_app.api_key), timeout=30
    )

    assert_error(response, VIDEO, 404, "video_not_found")


def test_remix_of_a_completed_video_json_and_multipart(
    stack: RunningStack, completed_video: Completed
) -> None:
    app, source = completed_video

    as_json = remix(stack, app.api_key, source["id"], json={"prompt": "Now at night"})
    as_form = remix(stack, app.api_key, source["id"], files={"prompt": (None, "Now in winter")})

    for response in (as_json, as_form):
        video = assert_matches_document("POST", REMIX, response)
        assert response.status_code == 202, response.text
        assert video["remixed_from_video_id"] == source["id"]
        assert video["status"] == "queued"
        assert response.headers["Location"] == f"/api/v1/videos/{video['id']}"


def test_remix_of_a_video_in_flight_is_409(
    stack: RunningStack, pro_app: AppCredentials, in_flight: dict[str, Any]
) -> None:
    video = in_flight

    response = remix(stack, pro_app.api_key, video["id"], json={"prompt": "Again"})

    assert_error(response, REMIX, 409, "video_not_ready")


def test_remix_of_an_unknown_or_another_apps_video_is_404(
    stack: RunningStack, completed_video: Completed, pro_app: AppCredentials
) -> None:
    _, source = completed_video
    for video_id in (source["id"], UNKNOWN_ID):
        response = remix(stack, pro_app.api_key, video_id, json={"prompt": "Mine now"})
        assert_error(response, REMIX, 404, "video_not_found")


def test_remix_without_a_prompt_is_400(stack: RunningStack, completed_video: Completed) -> None:
    app, source = completed_video

    response = remix(stack, app.api_key, source["id"], json={})

    assert_error(response, REMIX, 400, "missing_required_parameter", "prompt")
