"""Idempotency-Key: one job per key and body, even when requests race."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import RunningStack


def test_ten_racing_identical_requests_make_one_job_one_slot_one_upstream_job(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    marker = f"[{app.id}]"
    body = {"prompt": f"A windmill at dusk {marker}", "seconds": "4"}

    def send(_: int) -> tuple[int, str, str | None]:
        response = stack.client.create_video(app.api_key, body, headers={"Idempotency-Key": "order-42"})
        return response.status_code, response.json()["id"], response.headers.get("Idempotent-Replayed")

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
