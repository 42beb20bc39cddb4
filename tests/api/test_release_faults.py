"""Storage out while a job that never reached the upstream is cleaned up: its orchestration still
ends (`failed`, `recorded: false`), and the maintenance timer finishes what the clean-up could
not: the record, the quota slot, the files. And a keyed job that ended that way is replayed as
it ended, taking no new slot.

On a stack of this module's own: one upstream creation a minute and a gateway deadline of 15 s,
so a job accepted after the first waits for a turn that comes after its deadline, and its
deadline timer is the next thing it does (no storage call before it fires). Storage is stopped
(SIGTERM, then started again on the same ports and data) rather than paused: each activity
attempt then fails in about a second, where a paused Azurite holds every one for about 8 s
(2 x 4 s read timeouts), i.e. 10 attempts for some 90 s. The dev host's task hub is not in
Azurite, so the durable host keeps running; its history is read through its management API.
The maintenance timer runs every few seconds; a job is reconciled only once it is ten minutes
old, so the job's `created_at` is moved into the past in its table row (injected state, standing
in for the minutes no test can wait).
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient

from gateway.messages import failure_message
from gateway.retention import RECONCILE_GRACE_SECONDS
from orchestrators.generate_video import STORAGE_RETRY
from tests import azurite_outage
from tests.azurite_outage import Restarted, stopped
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.contract.support import wait_until
from tests.images_support import image_bytes
from tests.webhooks.test_webhooks import finished_orchestration

EVERY_THREE_SECONDS = "*/3 * * * * *"  # NCRONTAB with seconds
NOTHING_USED = {"hour": 0, "day": 0}


@pytest.fixture(scope="module")
def restarted_azurites() -> Iterator[Restarted]:
    """Azurites this module started again after stopping the stack's; stopped after the stack."""
    yield from azurite_outage.restarted_azurites()


@pytest.fixture(scope="module")
def deadline_stack(
    tmp_path_factory: pytest.TempPathFactory, restarted_azurites: Restarted
) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("release-faults"),
        UPSTREAM_CREATES_PER_MINUTE="1",
        JOB_TIMEOUT_MINUTES="0.25",
        SWEEP_SCHEDULE=EVERY_THREE_SECONDS,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def turn_taken(deadline_stack: RunningStack) -> None:
    """A first job takes this minute's upstream creation and ends: every job accepted after it
    in this module is due a minute later or more, past its 15 s deadline."""
    client = deadline_stack.client
    app = client.create_app("pro")
    video_id = client.create_video(app.api_key, {"prompt": f"first in line [{app.id}]"}).json()["id"]
    wait_until(lambda: deadline_stack.upstream_jobs_for(app.id) == 1, timeout=30)
    client.wait_finished(app.api_key, video_id, timeout=60)


def history_events(stack: RunningStack, video_id: str) -> list[dict[str, Any]]:
    response = stack.management_get(f"instances/{video_id}", showHistory="true")
    response.raise_for_status()
    return list(response.json().get("historyEvents") or [])


def failed_attempts(history: list[dict[str, Any]]) -> Counter[str]:
    """TaskFailed events per activity: one per failed attempt."""
    return Counter(event.get("FunctionName") for event in history if event["EventType"] == "TaskFailed")


def video_ids(stack: RunningStack, api_key: str) -> list[str]:
    """The app's videos, as the list API answers them."""
    listed = requests.get(f"{stack.api}/v1/videos", headers=stack.headers(api_key), timeout=30)
    assert listed.status_code == 200, listed.text
    return sorted(video["id"] for video in listed.json()["data"])


def with_reference_image(app_id: str) -> dict[str, Any]:
    data_url = "data:image/jpeg;base64," + base64.b64encode(image_bytes(720, 1280, "JPEG")).decode()
    return {
        "model": "sora-2",
        "prompt": f"queued past its deadline [{app_id}]",
        "size": "720x1280",
        "input_reference": {"image_url": data_url},
    }


def test_storage_down_through_the_clean_up_leaves_a_job_the_maintenance_timer_finishes(
    deadline_stack: RunningStack,
    turn_taken: None,
    restarted_azurites: Restarted,
    record_property: Callable[[str, object], None],
) -> None:
    stack, client = deadline_stack, deadline_stack.client
    app = client.create_app("pro")
    response = client.create_video(app.api_key, with_reference_image(app.id))
    assert response.status_code == 202, response.text
    video_id = response.json()["id"]
    prefix = f"{app.id}/{video_id}/"
    assert client.usage(app.api_key)["used"] == {"hour": 1, "day": 1}
    assert stack.stored_files(prefix) == [prefix + "reference.jpg"]  # so "nothing left" means something
    # Its turn is reserved and its deadline timer set: storage is not touched until it fires.
    wait_until(lambda: any(e["EventType"] == "TimerCreated" for e in history_events(stack, video_id)))

    # Storage is down from here until the orchestration has ended.
    with stopped(stack, restarted_azurites):
        down_since = time.monotonic()
        # The deadline fires, then _fail: release_quota_slot and fail_job each fail every attempt.
        history = finished_orchestration(stack, video_id, timeout=60)
        record_property("storage_down_seconds", round(time.monotonic() - down_since, 2))

    attempts = failed_attempts(history_events(stack, video_id))
    # Every attempt failed (a clean-up that had run before the stop would show none).
    assert attempts["release_quota_slot"] == STORAGE_RETRY.max_number_of_attempts
    assert attempts["fail_job"] == STORAGE_RETRY.max_number_of_attempts
    status = stack.orchestration_status(video_id)
    assert status["runtimeStatus"] == "Completed", history
    output = status["output"]
    assert (output["status"], output["error_code"], output["recorded"]) == ("failed", "timeout", False)

    # Storage is back, and nothing has finished the job yet: unfinished, holding its slot and file.
    assert client.get_video(app.api_key, video_id).json()["status"] == "queued"
    assert client.usage(app.api_key)["used"] == {"hour": 1, "day": 1}
    assert stack.stored_files(prefix) == [prefix + "reference.jpg"]

    # Injected state: the job as old as the reconciler's grace period, as ten minutes would make it.
    jobs = TableServiceClient.from_connection_string(stack.storage_connection_string).get_table_client("jobs")
    row = jobs.get_entity(app.id, video_id)
    row["created_at"] = int(time.time() - RECONCILE_GRACE_SECONDS - 60)
    jobs.update_entity(row)

    # The dev host's maintenance timer (as Azure runs it) reconciles it: its orchestration ended,
    # and its output says why, which the record now says too.
    video = wait_until(
        lambda: (found := client.get_video(app.api_key, video_id).json())["status"] == "failed" and found,
        timeout=30,
    )
    assert video["error"]["code"] == "timeout"
    assert video["error"]["message"] == failure_message("timeout")
    # The record turns failed first; the refund and the file deletion follow it (Reconciler.settle).
    wait_until(lambda: client.usage(app.api_key)["used"] == NOTHING_USED, timeout=30)  # never upstream
    wait_until(lambda: stack.stored_files(prefix) == [], timeout=30)
    assert stack.upstream_jobs_for(app.id) == 0


def test_a_keyed_job_that_timed_out_is_replayed_as_it_ended_and_takes_no_new_slot(
    deadline_stack: RunningStack, turn_taken: None
) -> None:
    stack, client = deadline_stack, deadline_stack.client
    app = client.create_app("pro")
    body, key = {"prompt": f"queued, keyed [{app.id}]"}, {"Idempotency-Key": f"timeout-{app.id}"}
    created = client.create_video(app.api_key, body, headers=key)
    assert created.status_code == 202, created.text
    video_id = created.json()["id"]
    failed = client.wait_finished(app.api_key, video_id, timeout=60)
    assert (failed["status"], failed["error"]["code"]) == ("failed", "timeout")
    assert client.usage(app.api_key)["used"] == NOTHING_USED  # refunded: never reached the upstream

    replayed = client.create_video(app.api_key, body, headers=key)

    assert replayed.status_code == 202, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    video = replayed.json()
    assert (video["id"], video["status"], video["error"]["code"]) == (video_id, "failed", "timeout")
    assert client.usage(app.api_key)["used"] == NOTHING_USED  # the replay took no slot
    assert video_ids(stack, app.api_key) == [video_id]  # one job for the app, no second one
    assert stack.upstream_jobs_for(app.id) == 0
