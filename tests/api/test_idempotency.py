"""Idempotency-Key: one job per key and body, even when requests race; replays answer at once."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devhost.config import load_values
from gateway.idempotency import IDEMPOTENCY_TABLE, Claim
from gateway.jobs import new_job_id
from gateway.quota import QuotaStore
from gateway.submissions import ABANDONED_CLAIM_SECONDS
from gateway.tables import Tables, table_service
from tests.conftest import PROJECT_DIR, RunningStack
from tests.gateway.urls_server import LocalServer, wait_until
from tests.images_support import image_bytes
from tests.webhooks.receiver import Receiver


@pytest.fixture
def trickler() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


def stack_tables(stack: RunningStack) -> Tables:
    """The stack's own tables in its Azurite, under its prefix, as the gateway reads them."""
    prefix = load_values(PROJECT_DIR, stack.env).get("TABLE_PREFIX", "")
    return Tables(table_service(stack.storage_connection_string), prefix=prefix)


def claim_row_key(key: str) -> str:
    # The idempotency table's row key is the Idempotency-Key's SHA-256 (gateway.idempotency).
    return hashlib.sha256(key.encode()).hexdigest()


def create_with_key(stack: RunningStack, api_key: str, key: str, body: Any) -> requests.Response:
    return stack.client.create_video(api_key, body, headers={"Idempotency-Key": key})


def upload_with_key(stack: RunningStack, api_key: str, key: str, image: bytes) -> requests.Response:
    """A multipart create whose reference image is the uploaded file `image`."""
    files: dict[str, Any] = {
        "prompt": (None, "Animate this"),
        "input_reference": ("still.png", image, "image/png"),
    }
    return requests.post(
        f"{stack.api}/v1/videos",
        headers={**stack.headers(api_key), "Idempotency-Key": key},
        files=files,
        timeout=60,
    )


def assert_new_job(response: requests.Response, *not_ids: str) -> str:
    """A 202 that made a job of its own (not a replay, not one of `not_ids`); its id."""
    assert response.status_code == 202, response.text
    assert "Idempotent-Replayed" not in response.headers
    video_id = str(response.json()["id"])
    assert video_id not in not_ids
    return video_id


def assert_replay_of(response: requests.Response, video_id: str) -> None:
    assert response.status_code == 202, response.text
    assert response.headers["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == video_id


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


def test_same_key_with_another_uploaded_image_is_409(stack: RunningStack) -> None:
    """The uploaded file's bytes are part of the body: same size, another picture, another request."""
    app = stack.client.create_app("pro")
    red, blue = image_bytes(720, 1280, color=(200, 40, 40)), image_bytes(720, 1280, color=(40, 40, 200))

    first = upload_with_key(stack, app.api_key, "upload", red)
    same = upload_with_key(stack, app.api_key, "upload", red)
    other = upload_with_key(stack, app.api_key, "upload", blue)

    video_id = assert_new_job(first)
    assert_replay_of(same, video_id)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1


def test_same_key_with_another_webhook_url_is_409(stack: RunningStack) -> None:
    """Where the result is announced is part of the request: a replay must not send it elsewhere."""
    app = stack.client.create_app("pro")
    with Receiver() as receiver:

        def with_webhook(path: str) -> requests.Response:
            return create_with_key(
                stack, app.api_key, "hook", {"prompt": "p", "webhook_url": receiver.url(path)}
            )

        first, same, other = with_webhook("/first"), with_webhook("/first"), with_webhook("/other")

        video_id = assert_new_job(first)
        assert_replay_of(same, video_id)
        assert other.status_code == 409, other.text
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        assert stack.client.usage(app.api_key)["used"]["hour"] == 1
        # Kept open until the one job's event arrived, so its delivery does not fail for nothing.
        assert stack.client.wait_finished(app.api_key, video_id)["status"] == "completed"
        assert wait_until(lambda: len(receiver.on("/first")) == 1, timeout=30)


def test_a_request_refused_429_after_claiming_its_key_frees_the_key(stack: RunningStack) -> None:
    """`reserve` claims the key before it asks for a quota slot: a 429 must give the key back, or
    the retry once a slot frees is told 409 "in progress" for a request that is long over."""
    app = stack.client.create_app("pro")
    filled = [stack.client.create_video(app.api_key) for _ in range(5)]
    filled_ids = [assert_new_job(response) for response in filled]
    body = {"prompt": "One more than the hour allows"}

    refused = create_with_key(stack, app.api_key, "after-429", body)
    assert refused.status_code == 429, refused.text
    # Time travel: give back the first video's slot in the stack's quota table, as the hour
    # passing would (the same store the gateway uses).
    assert QuotaStore(stack_tables(stack)).release(app.id, filled_ids[0], time.time())
    retried = create_with_key(stack, app.api_key, "after-429", body)
    replayed = create_with_key(stack, app.api_key, "after-429", body)

    video_id = assert_new_job(retried, *filled_ids)
    assert_replay_of(replayed, video_id)  # the retry's own claim holds the key now
    assert stack.client.usage(app.api_key)["used"]["hour"] == 5


def test_an_image_refused_after_the_key_was_claimed_frees_the_key(stack: RunningStack) -> None:
    """A PNG cut short passes the upload's precheck (its signature is right) and fails only when
    decoded, after `reserve` claimed the key and took the slot: `abandon` gives both back."""
    app = stack.client.create_app("pro")
    whole = image_bytes(720, 1280)

    refused = upload_with_key(stack, app.api_key, "late", whole[:100])
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "input_reference"
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0
    retried = upload_with_key(stack, app.api_key, "late", whole)
    replayed = upload_with_key(stack, app.api_key, "late", whole)

    video_id = assert_new_job(retried)  # another image, yet no 409: the refused request's claim is gone
    assert_replay_of(replayed, video_id)
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1


def test_a_claim_whose_job_was_never_recorded_is_taken_over_once_abandoned(stack: RunningStack) -> None:
    """A request that crashed between claiming its key and recording its job leaves a claim
    naming a job that does not exist. Younger than ABANDONED_CLAIM_SECONDS it may still be in
    flight (409, retry); older, the same body takes the key over and makes the job."""
    app = stack.client.create_app("pro")
    body = {"prompt": "After a crash"}
    first_id = assert_new_job(create_with_key(stack, app.api_key, "model", body))
    claims = stack_tables(stack).get(IDEMPOTENCY_TABLE)
    # The fingerprint the gateway itself wrote for this body, so the injected claims are the same request.
    fingerprint = str(claims.get_entity(app.id, claim_row_key("model"))["fingerprint"])

    def inject_unrecorded_claim(key: str, age: float) -> str:
        """Written straight into the stack's idempotency table: the row a crashed request leaves."""
        claimed_at = time.time() - age
        crashed = Claim(job_id=new_job_id(claimed_at), fingerprint=fingerprint, created_at=claimed_at)
        claims.create_entity(crashed.entity(app.id, key))
        return crashed.job_id

    recent = inject_unrecorded_claim("recent", ABANDONED_CLAIM_SECONDS - 60)
    abandoned = inject_unrecorded_claim("abandoned", ABANDONED_CLAIM_SECONDS + 60)
    still_in_flight = create_with_key(stack, app.api_key, "recent", body)
    taken_over = create_with_key(stack, app.api_key, "abandoned", body)
    replayed = create_with_key(stack, app.api_key, "abandoned", body)

    assert still_in_flight.status_code == 409, still_in_flight.text
    assert still_in_flight.json()["error"]["code"] == "idempotency_request_in_progress"
    video_id = assert_new_job(taken_over, first_id, recent, abandoned)
    assert_replay_of(replayed, video_id)
    assert stack.client.usage(app.api_key)["used"]["hour"] == 2
