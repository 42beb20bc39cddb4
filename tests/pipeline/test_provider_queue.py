"""A provider with a queue of its own (fal) says where a job waits, and the Video object shows it
as `queue_position` while the job is queued there; the gateway's own pacing is not involved
(the test stack does not pace). Against the local stack and its simulated fal queue, whose
requests wait for the first 15 % of a job (sorasim.lifecycle.QUEUED_SHARE): long jobs here, so
the wait is seconds long."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningStack, stack_until_jobs_end

FAL_MODEL = "veo-3.1-fal"  # the sample catalog's model at its fal account


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        Path(tmp_path_factory.mktemp("fal-queue")), SORA_SIM_JOB_SECONDS="20"
    ) as running:
        yield running


def test_the_providers_queue_position_reaches_the_video_object(slow_stack: RunningStack) -> None:
    client = slow_stack.client
    apps = [client.create_app("pro", name=f"fal queue {n}") for n in range(3)]
    marker = uuid.uuid4().hex[:8]
    ids = []
    for app in apps:
        created = client.create_video(
            app.api_key, {"prompt": f"A queue at fal {marker}", "model": FAL_MODEL, "seconds": "4"}
        )
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])

    # The last one waits behind the two before it at fal, and says so while it does.
    last_app, last_id = apps[-1], ids[-1]
    seen: list[tuple[str, int | None]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        video = client.get_video(last_app.api_key, last_id).json()
        seen.append((video["status"], video["queue_position"]))
        if video["status"] != "queued":
            break
        time.sleep(0.2)
    positions = [position for status, position in seen if status == "queued" and position is not None]
    assert positions, f"no queue position was shown: {seen}"
    assert max(positions) >= 1
    assert positions == sorted(positions, reverse=True), "a position only ever falls"
    # Once it runs, it has no place in a queue.
    running = client.wait_for(last_app.api_key, last_id, ("in_progress", "completed"), timeout=30)
    assert running["queue_position"] is None
    assert running["provider"] == "fal"
    assert slow_stack.upstream_jobs_for(marker) == 3
    for app, video_id in zip(apps, ids, strict=True):
        client.delete_video(app.api_key, video_id)  # no need to wait out 20-second jobs
