"""Idempotency-Key: one job per key and body, even when requests race; replays answer at once."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import RunningStack
from tests.gateway.urls_server import LocalServer, wait_until
from tests.images_support import image_bytes


@pytest.fixture
def trickler() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


def test_ten_racing_identical_requests_make_one_job_one_slot_one_upstream_job(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    marker = f"[{app.id}]"
    body = {"prompt": f"A windmill at dusk {marker}", "seconds": "4"}

    def send(_: int) -> tuple[int, str, str | None]:
        # A replay racing the first request is told 409 "in progress" at once (no thread waits
        # for it); retrying after its Retry-After, as the openai SDK does, gets the job.
        while True:
            response = stack.client.create_video(app.api_key, body, headers={"Idempotency-Key": "order-42"})
            if response.status_code != 409:
                return (
                    response.status_code,
                    response.json()["id"],
                    response.headers.get("Idempotent-Replayed"),
                )
            assert response.json()["error"]["code"] == "idempotency_request_in_progress", response.text
            assert response.headers["Retry-After"] == "1"
            time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(send, range(10)))

    assert {status for status, _, _ in results} == {202}
    assert len({video_id for _, video_id, _ in results}) == 1
    assert sum(replayed == "true" for _, _, replayed in results) == 9
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1
    video_id = results[0][1]
    assert stack.client.wait_finished(app.api_key, video_id)["status"] == "completed"
    assert stack.upstream_jobs_for(marker) == 1


def test_same_key_with_another_body_is_409(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    first = stack.client.create_video(app.api_key, {"prompt": "one"}, headers={"Idempotency-Key": "k1"})
    clash = stack.client.create_video(app.api_key, {"prompt": "two"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1


def test_keys_are_per_app_and_a_refused_request_frees_its_key(stack: RunningStack) -> None:
    one, two = stack.client.create_app("pro"), stack.client.create_app("free")
    body = {"prompt": "shared key"}
    first = stack.client.create_video(one.api_key, body, headers={"Idempotency-Key": "same"})
    refused = stack.client.create_video(two.api_key, body, headers={"Idempotency-Key": "same"})
    assert first.status_code == 202
    assert refused.status_code == 403  # another app's key never collides, and this one is not allowed
    stack.client.manage("PATCH", f"/apps/{two.id}", json={"plan": "pro"})
    retried = stack.client.create_video(two.api_key, body, headers={"Idempotency-Key": "same"})
    assert retried.status_code == 202
    assert retried.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in retried.headers


def test_an_overlong_key_is_400(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = stack.client.create_video(app.api_key, {"prompt": "p"}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"


def test_a_deleted_videos_key_answers_404_at_once_and_makes_nothing(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    body = {"prompt": "soon deleted"}
    first = stack.client.create_video(app.api_key, body, headers={"Idempotency-Key": "gone"})
    video_id = first.json()["id"]
    assert stack.client.wait_finished(app.api_key, video_id)["status"] == "completed"
    assert stack.client.delete_video(app.api_key, video_id).status_code == 200

    replay = stack.client.create_video(app.api_key, body, headers={"Idempotency-Key": "gone"})

    assert replay.status_code == 404, replay.text  # not 503 after waiting for a job that is gone
    assert replay.json()["error"]["code"] == "video_not_found"
    assert video_id in replay.json()["error"]["message"]
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1  # the replay took no slot


def test_a_replay_while_the_first_request_is_in_flight_is_409_at_once(
    stack: RunningStack, trickler: LocalServer
) -> None:
    """The first request's image trickles in, so it holds its key for the fetch's 10 s deadline."""
    app = stack.client.create_app("pro")
    slow = {"prompt": "p", "input_reference": {"image_url": trickler.url("/trickle")}}
    headers = {**stack.headers(app.api_key), "Idempotency-Key": "busy"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(requests.post, f"{stack.api}/v1/videos", headers=headers, json=slow, timeout=60)
        assert wait_until(lambda: trickler.trickling == 1, timeout=30)

        replay = requests.post(f"{stack.api}/v1/videos", headers=headers, json=slow, timeout=60)

        assert not first.done()  # answered while the first was still in flight, not after it
    assert replay.status_code == 409, replay.text
    assert replay.json()["error"]["code"] == "idempotency_request_in_progress"
    assert replay.headers["Retry-After"] == "1"
    # The first is refused (its image never arrived in time): its slot and its key are given back.
    assert first.result().status_code == 400
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0
    data_url = "data:image/png;base64," + base64.b64encode(image_bytes(720, 1280)).decode()
    retried = stack.client.create_video(
        app.api_key,
        {"prompt": "p", "input_reference": {"image_url": data_url}},
        headers={"Idempotency-Key": "busy"},
    )
    assert retried.status_code == 202, retried.text  # a different image, yet no 409: the key was freed


def test_same_key_with_another_image_is_409(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")

    def with_image(width: int) -> requests.Response:
        data_url = "data:image/png;base64," + base64.b64encode(image_bytes(width, 1280)).decode()
        return stack.client.create_video(
            app.api_key,
            {"prompt": "p", "input_reference": {"image_url": data_url}},
            headers={"Idempotency-Key": "img"},
        )

    first, same, other = with_image(720), with_image(720), with_image(700)
    assert first.status_code == 202, first.text
    assert same.status_code == 202
    assert same.headers["Idempotent-Replayed"] == "true"
    assert same.json()["id"] == first.json()["id"]
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1
