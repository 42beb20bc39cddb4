"""No app can stall another: one app's slow requests are capped, and refused beyond the cap.

The attacker's image URL is a real loopback server trickling bytes (an attack a real host can
make); the victim is another app on the same stack. No timing thresholds: the test asserts the
mechanism, that the victim is answered while the attacker's requests are still pending and the
attacker's request beyond its cap is refused at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests

from tests.conftest import RunningStack
from tests.gateway.urls_server import LocalServer, wait_until


@pytest.fixture
def trickler() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


def create(stack: RunningStack, key: str, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{stack.api}/v1/videos", headers=stack.headers(key), json=body, timeout=60)


def test_a_third_slow_request_of_one_app_is_refused_while_another_app_is_served(
    stack: RunningStack, trickler: LocalServer
) -> None:
    attacker, victim = stack.client.create_app("pro"), stack.client.create_app("pro")
    slow = {"prompt": "p", "input_reference": {"image_url": trickler.url("/trickle")}}
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: list[Future[requests.Response]] = [
            pool.submit(create, stack, attacker.api_key, slow) for _ in range(2)
        ]
        assert wait_until(lambda: trickler.trickling == 2, timeout=30), "the attacker's fetches never started"

        third = create(stack, attacker.api_key, slow)
        served = stack.client.create_video(victim.api_key, {"prompt": "victim"})

        assert not any(request.done() for request in pending)  # the attack was running throughout
        assert trickler.trickling == 2  # and the third was refused before it fetched anything
    assert third.status_code == 429, third.text
    assert third.json()["error"]["code"] == "too_many_concurrent_requests"
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert third.headers["Retry-After"] == "1"
    assert served.status_code == 202, served.text
    # The trickle is cut at the fetch deadline: 400, and the slots the attacker took came back.
    assert [request.result().status_code for request in pending] == [400, 400]
    assert stack.client.usage(attacker.api_key)["used"]["hour"] == 0
    assert stack.client.wait_finished(victim.api_key, served.json()["id"])["status"] == "completed"
