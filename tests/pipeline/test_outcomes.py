"""How jobs end: upstream refusal and failure, cancellation, and the deadline."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests

from tests.conftest import RunningStack, stack_until_jobs_end
from tests.images_support import image_bytes

T = TypeVar("T")


def test_blocked_prompt_fails_with_the_upstreams_code_and_no_upstream_job(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    prompt = f"forbidden #sim:blocked [{app.id}]"
    video_id = stack.client.create_video(app.api_key, {"prompt": prompt}).json()["id"]
    failed = stack.client.wait_finished(app.api_key, video_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "content_policy_violation"
    assert failed["error"]["message"]
    assert failed["video_url"] is None
    assert stack.upstream_jobs_for(app.id) == 0


def test_upstream_failure_part_way_fails_the_video(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    video_id = stack.client.create_video(app.api_key, {"prompt": "a glitchy dream #sim:fail"}).json()["id"]
    failed = stack.client.wait_finished(app.api_key, video_id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "video_generation_failed"
    assert failed["progress"] < 100
    assert stack.client.usage(app.api_key)["used"]["hour"] == 1  # it reached the upstream: no refund


def test_cancel_while_in_progress_deletes_the_upstream_job(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    with stack.sim_configured(job_seconds=30):
        video_id = stack.client.create_video(app.api_key).json()["id"]
        stack.client.wait_for(app.api_key, video_id, ("in_progress",))
        deleted_before = stack.sim_stats()["jobs_deleted"]
        response = stack.client.delete_video(app.api_key, video_id)
    assert response.status_code == 200
    assert response.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
    cancelled = stack.client.get_video(app.api_key, video_id).json()
    assert cancelled["status"] == "failed"
    assert cancelled["error"]["code"] == "cancelled"
    wait_until(lambda: stack.sim_stats()["jobs_deleted"] == deleted_before + 1)


def test_deleting_a_finished_video_removes_it_and_its_blobs(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    video_id = stack.client.create_video(app.api_key).json()["id"]
    done = stack.client.wait_finished(app.api_key, video_id)
    assert requests.get(done["video_url"], timeout=10).status_code == 200
    assert stack.client.delete_video(app.api_key, video_id).json()["deleted"] is True
    assert requests.get(done["video_url"], timeout=10).status_code == 404
    assert stack.client.get_video(app.api_key, video_id).status_code == 404


def test_deleting_a_finished_video_deletes_every_file_of_it_from_blob_storage(stack: RunningStack) -> None:
    """All three files, read from the container itself: a 404 from the API for the video's URL
    says nothing about the thumbnail and the reference image, which no read serves after the
    record is gone. sora-2 on the simulator takes an image and makes a thumbnail."""
    app = stack.client.create_app("pro")
    data_url = "data:image/jpeg;base64," + base64.b64encode(image_bytes(720, 1280, "JPEG")).decode()
    body = {
        "model": "sora-2",
        "prompt": "Animate this",
        "size": "720x1280",
        "input_reference": {"image_url": data_url},
    }
    response = stack.client.create_video(app.api_key, body)
    assert response.status_code == 202, response.text
    video_id = response.json()["id"]
    done = stack.client.wait_finished(app.api_key, video_id)
    assert done["status"] == "completed", done["error"]
    prefix = f"{app.id}/{video_id}/"
    # Before: the video, its thumbnail and the reference image, so the check after means something.
    assert stack.stored_files(prefix) == [
        prefix + name for name in ("reference.jpg", "thumbnail.jpg", "video.mp4")
    ]
    assert stack.client.delete_video(app.api_key, video_id).json()["deleted"] is True
    # The DELETE deletes them before it answers: nothing is left to wait for.
    assert stack.stored_files(prefix) == []


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Upstream jobs that take a minute against a gateway deadline of 6 s."""
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("slow"), SORA_SIM_JOB_SECONDS="60", JOB_TIMEOUT_MINUTES="0.1"
    ) as running:
        yield running


def test_deadline_fails_the_job_with_timeout_and_deletes_the_upstream_job(slow_stack: RunningStack) -> None:
    app = slow_stack.client.create_app("pro")
    video_id = slow_stack.client.create_video(app.api_key).json()["id"]
    failed = slow_stack.client.wait_finished(app.api_key, video_id, timeout=60)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "timeout"
    assert slow_stack.sim_stats()["jobs_created"] == 1
    wait_until(lambda: slow_stack.sim_stats()["jobs_deleted"] == 1)


@pytest.fixture(scope="module")
def queued_past_deadline_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One upstream creation a minute against a gateway deadline of 6 s: a job accepted behind
    another waits for a turn that comes after its deadline."""
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("queued-deadline"), UPSTREAM_CREATES_PER_MINUTE="1", JOB_TIMEOUT_MINUTES="0.1"
    ) as running:
        yield running


def test_a_job_that_times_out_before_its_turn_gives_its_slot_back(
    queued_past_deadline_stack: RunningStack,
) -> None:
    stack = queued_past_deadline_stack
    client = stack.client
    first, queued = client.create_app("pro"), client.create_app("pro")  # one app each: own usage
    first_id = client.create_video(first.api_key, {"prompt": f"first in line [{first.id}]"}).json()["id"]
    # The first job takes this minute's creation, so the next one's turn is a minute away.
    wait_until(lambda: stack.upstream_jobs_for(first.id) == 1)

    response = client.create_video(queued.api_key, {"prompt": f"next in line [{queued.id}]"})
    assert response.status_code == 202, response.text
    limit, remaining = (int(response.headers[f"x-ratelimit-{n}-hour"]) for n in ("limit", "remaining"))
    assert limit - remaining == 1  # accepted: it took a slot
    queued_id = response.json()["id"]
    failed = client.wait_finished(queued.api_key, queued_id, timeout=60)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "timeout")
    assert stack.upstream_jobs_for(queued.id) == 0  # it never reached the upstream
    # The refund comes before the record turns final, so it is visible as soon as the failure is.
    assert client.usage(queued.api_key)["used"] == {"hour": 0, "day": 0}

    # The first job reached the upstream: however it ended (done in 3 s, or its own deadline),
    # it keeps its slot. The refund is for jobs that never got there, not for every timeout.
    client.wait_finished(first.api_key, first_id, timeout=60)
    assert client.usage(first.api_key)["used"] == {"hour": 1, "day": 1}


@pytest.fixture(scope="module")
def paced_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Upstream creations paced to one every 3 seconds."""
    with stack_until_jobs_end(tmp_path_factory.mktemp("paced"), UPSTREAM_CREATES_PER_MINUTE="20") as running:
        yield running


def test_cancel_while_queued_for_an_upstream_slot_creates_nothing(paced_stack: RunningStack) -> None:
    client = paced_stack.client
    apps = [client.create_app("pro") for _ in range(3)]
    ids = [client.create_video(app.api_key).json()["id"] for app in apps]
    last_app, last_id = apps[-1], ids[-1]
    queued = wait_until(lambda: _queue_position(client.get_video(last_app.api_key, last_id).json()))
    assert queued >= 1

    assert client.delete_video(last_app.api_key, last_id).status_code == 200

    cancelled = client.get_video(last_app.api_key, last_id).json()
    assert (cancelled["status"], cancelled["error"]["code"], cancelled["queue_position"]) == (
        "failed",
        "cancelled",
        None,
    )
    # Cancelled before the upstream had the job: its slot goes back (docs/api.md, `cancelled`).
    # The record is final at once; the refund comes from the orchestration's clean-up, so the
    # usage is read once the orchestration has ended.
    wait_until(lambda: paced_stack.orchestration_status(last_id)["runtimeStatus"] == "Completed")
    assert paced_stack.orchestration_status(last_id)["output"]["error_code"] == "cancelled"
    assert client.usage(last_app.api_key)["used"] == {"hour": 0, "day": 0}
    for app, video_id in zip(apps[:2], ids[:2], strict=True):
        assert client.wait_finished(app.api_key, video_id)["status"] == "completed"
    # Its orchestration has ended, so nothing can create it later: only the other two were made.
    assert paced_stack.sim_stats()["jobs_created"] == 2


def test_queued_jobs_start_in_acceptance_order(paced_stack: RunningStack) -> None:
    client = paced_stack.client
    apps = [client.create_app("pro") for _ in range(3)]
    ids = [client.create_video(app.api_key).json()["id"] for app in apps]
    done = [client.wait_finished(app.api_key, video_id) for app, video_id in zip(apps, ids, strict=True)]
    assert [video["status"] for video in done] == ["completed"] * 3
    finished_at = [video["completed_at"] for video in done]
    assert finished_at == sorted(finished_at)
    assert finished_at[2] - finished_at[0] >= 5  # two 3-second pacing gaps, give or take a second


def _queue_position(video: dict[str, Any]) -> int | None:
    position = video.get("queue_position")
    return None if position is None else int(position)


def wait_until[T](condition: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
