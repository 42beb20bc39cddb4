"""Issue 12's acceptance on the local stack as `make run` starts it (the sample catalog, the
simulator the stack starts itself): `veo-3.1`, made by the AI/ML API and then fal, keeps producing
videos while the AI/ML API is taken down at run time and brought back, with one upstream job per
video and exactly one quota slot per video.

"Down" is the simulator's `down` knob: every AI/ML API path answers 503 in its own error shape,
as an outage would (nothing is made there, so the jobs may move on).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack, stack_until_jobs_end

COOL_DOWN_SECONDS = 15
MODEL = "veo-3.1"  # the sample catalog's routes: aimlapi, then fal


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("route-outage"),
        PROVIDER_FAILURES_TO_COOL_DOWN="2",
        PROVIDER_COOL_DOWN_SECONDS=str(COOL_DOWN_SECONDS),
    ) as running:
        yield running


def set_down(stack: RunningStack, protocols: str) -> None:
    requests.patch(f"{stack.simulator}/_sim/config", json={"down": protocols}, timeout=5).raise_for_status()


def upstream_jobs(stack: RunningStack, marker: str) -> int:
    return stack.upstream_jobs_for(marker)


def make_video(stack: RunningStack, key: str) -> tuple[dict[str, Any], str]:
    """One finished video of MODEL and its prompt marker."""
    marker = uuid.uuid4().hex[:12]
    created = stack.client.create_video(
        key, {"prompt": f"A harbour at dusk {marker}", "model": MODEL, "seconds": "4"}
    )
    assert created.status_code == 202, created.text
    return stack.client.wait_finished(key, created.json()["id"], timeout=120), marker


def test_a_two_route_model_keeps_making_videos_through_an_outage_of_its_first_provider(
    local_stack: RunningStack,
) -> None:
    stack = local_stack
    app = stack.client.create_app("pro", name="route outage")
    made: list[tuple[dict[str, Any], str]] = [make_video(stack, app.api_key)]  # before: the first route

    set_down(stack, "aimlapi")
    try:
        made += [make_video(stack, app.api_key) for _ in range(3)]  # during: fal
        health = requests.get(
            f"{stack.api}/health", headers={"x-admin-key": stack.admin_key}, timeout=10
        ).json()
    finally:
        set_down(stack, "")
    time.sleep(COOL_DOWN_SECONDS + 1)
    made.append(make_video(stack, app.api_key))  # after: the first route again

    assert [video["status"] for video, _ in made] == ["completed"] * 5, made
    assert [video["provider"] for video, _ in made] == ["aimlapi", "fal", "fal", "fal", "aimlapi"]
    # Two jobs found the outage (a failed create each) and cooled the AI/ML API down; the third
    # skipped it without calling it.
    assert health["providers"]["aimlapi"] == "down"
    assert (
        health["provider_details"]["aimlapi"]["failed"],
        health["provider_details"]["fal"]["accepted"],
    ) == (2, 3)
    # Never two upstream jobs for one video, and nothing made at the provider that was down.
    assert [upstream_jobs(stack, marker) for _, marker in made] == [1] * 5
    for video, _ in made:
        assert requests.get(video["video_url"], timeout=30).content[4:8] == b"ftyp"
    # One slot per video: none lost to the outage, none given back for a video that was made.
    assert stack.client.usage(app.api_key)["used"] == {"hour": 5, "day": 5}
