"""Racing key rotations and plan changes through the running stack."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import RunningStack


def test_of_ten_racing_rotations_one_hands_out_a_working_key_and_the_rest_are_409(
    stack: RunningStack,
) -> None:
    client = stack.client
    app = client.create_app("pro")
    barrier = threading.Barrier(10)

    def rotate(_: int) -> requests.Response:
        barrier.wait()
        return client.manage("POST", f"/apps/{app.id}/keys")

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(rotate, range(10)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 9, [response.text for response in responses]
    for refused in (response for response in responses if response.status_code == 409):
        error = refused.json()["error"]
        assert error["code"] == "concurrent_update"
        assert error["type"] == "invalid_request_error"
        assert int(refused.headers["Retry-After"]) >= 1
    new_key = next(response for response in responses if response.status_code == 200).json()["api_key"]
    assert (
        requests.get(f"{stack.api}/v1/usage", headers=stack.headers(new_key), timeout=10).status_code == 200
    )
    old = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(app.api_key), timeout=10)
    assert old.status_code == 401


def test_a_plan_change_racing_a_rotation_loses_neither(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("free")
    barrier = threading.Barrier(2)

    def call(request: tuple[str, str, dict[str, str] | None]) -> requests.Response:
        method, path, body = request
        barrier.wait()
        return client.manage(method, path, json=body)

    with ThreadPoolExecutor(max_workers=2) as pool:
        patched, rotated = pool.map(
            call, [("PATCH", f"/apps/{app.id}", {"plan": "business"}), ("POST", f"/apps/{app.id}/keys", None)]
        )

    assert (patched.status_code, rotated.status_code) == (200, 200)
    usage = client.usage(rotated.json()["api_key"])
    assert usage["plan"] == "business"
    assert client.manage("GET", f"/apps/{app.id}").json()["plan"] == "business"
