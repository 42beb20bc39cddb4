"""An Idempotency-Key replay while storage hangs: a clear 503 within seconds, and once storage is
back the same replay answers the same video, with no second job and no second slot.

On a stack of this module's own whose real Azurite is paused (SIGSTOP: connections are accepted,
nothing answers), so no other test's stack is disturbed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from devhost.net import wait_for_http
from tests.api.test_release_faults import video_ids
from tests.api.test_storage_outage import (
    REQUEST_BOUND_SECONDS,
    assert_storage_unavailable,
    azurite_pid,
    timed,
)
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.gateway.test_storage_seam import paused

ONE_USED = {"hour": 1, "day": 1}


@pytest.fixture(scope="module")
def replay_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(tmp_path_factory.mktemp("replay-faults")) as running:
        yield running


def test_a_replay_while_storage_hangs_is_a_503_then_the_same_video(
    replay_stack: RunningStack, record_property: Callable[[str, object], None]
) -> None:
    stack, client = replay_stack, replay_stack.client
    app = client.create_app("pro")
    marker = uuid.uuid4().hex
    body = {"prompt": f"A tide pool [{marker}]"}
    key = {"Idempotency-Key": f"replay-{marker}"}
    created = client.create_video(app.api_key, body, headers=key)
    assert created.status_code == 202, created.text
    video_id = created.json()["id"]
    # Ended before the pause, so the pause disturbs nothing but the replay.
    assert client.wait_finished(app.api_key, video_id)["status"] == "completed"
    assert client.usage(app.api_key)["used"] == ONE_USED

    with paused(azurite_pid(stack)):
        during, seconds = timed(
            "POST", f"{stack.api}/v1/videos", headers={**stack.headers(app.api_key), **key}, json=body
        )

    record_property("replay_503_seconds", round(seconds, 2))
    assert_storage_unavailable(during)  # 503, OpenAI error shape, code storage_unavailable, Retry-After
    assert seconds < REQUEST_BOUND_SECONDS
    wait_for_http(f"{stack.api}/health", timeout=60)
    after = client.create_video(app.api_key, body, headers=key)
    assert after.status_code == 202, after.text
    assert after.headers["Idempotent-Replayed"] == "true"
    assert (after.json()["id"], after.json()["status"]) == (video_id, "completed")
    assert video_ids(stack, app.api_key) == [video_id]  # no second job ...
    assert stack.upstream_jobs_for(marker) == 1  # ... here or upstream
    assert client.usage(app.api_key)["used"] == ONE_USED  # and no second slot
