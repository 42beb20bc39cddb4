"""Learned ETAs through the whole stack: finished jobs are learned per kind in Table Storage (the
devhost running the real worker and durable SDK, Azurite, the simulator over HTTP), and a job of
a kind that has been seen shows `estimated_completion_at` while it runs, and null once done."""

from __future__ import annotations

import time
from typing import Any

from gateway.durations import JobKind
from gateway.tables import DURATIONS_TABLE, Tables, table_service
from tests.conftest import RunningStack

# A kind few other tests make, so this test's jobs are most of its record.
BODY = {"model": "sora-2", "seconds": "12", "size": "720x1280"}
# What the job runs on in the stack: the default Azure OpenAI account, the model's deployment.
KIND = JobKind(provider="azure-openai", model="sora-2", size="720x1280", seconds="12")


def learned_jobs(stack: RunningStack) -> int:
    table = Tables(table_service(stack.storage_connection_string)).get(DURATIONS_TABLE)
    rows = [row for row in table.list_entities() if row["RowKey"] == KIND.row_key]
    return int(rows[0]["jobs"]) if rows else 0


def readings_until_finished(stack: RunningStack, key: str, video_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = stack.client.get_video(key, video_id)
        assert response.status_code == 200, response.text
        seen.append({**response.json(), "_retry_after": response.headers.get("Retry-After")})
        if seen[-1]["status"] in ("completed", "failed"):
            return seen
        time.sleep(0.15)
    raise AssertionError(f"{video_id} did not finish: {seen[-1]}")


def test_a_kind_seen_before_shows_when_its_next_job_will_be_ready(stack: RunningStack) -> None:
    app = stack.client.create_app("pro", name="learned eta")
    before = learned_jobs(stack)
    for index in range(3):
        created = stack.client.create_video(app.api_key, {**BODY, "prompt": f"a kite, take {index}"})
        assert created.status_code == 202, created.text
        finished = stack.client.wait_finished(app.api_key, created.json()["id"])
        assert finished["status"] == "completed", finished
    assert learned_jobs(stack) >= before + 3  # each completed job was learned, once

    created = stack.client.create_video(app.api_key, {**BODY, "prompt": "a kite, the one with an ETA"})
    readings = readings_until_finished(stack, app.api_key, created.json()["id"])
    running = [r for r in readings if r["status"] == "in_progress"]
    estimates = [r["estimated_completion_at"] for r in running if r["estimated_completion_at"] is not None]
    assert estimates, running
    created_at = readings[0]["created_at"]
    # The simulator's jobs take a few seconds; the estimate says so, not minutes.
    assert all(created_at <= eta <= created_at + 30 for eta in estimates), (created_at, estimates)
    done = readings[-1]
    assert done["status"] == "completed"
    assert done["estimated_completion_at"] is None  # an estimate only while it runs
    assert done["_retry_after"] is None
