"""The guard every stack fixture ends with: it waits for every job to end and fails when one never
does. Proven here on a stack of its own with a job record that no orchestration will ever finish
(written straight into its table: a fault no real path produces, injected on purpose)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devhost.config import load_values
from gateway.jobs import Job, JobStore
from gateway.tables import Tables
from tests.conftest import PROJECT_DIR, launch_stack


def test_a_job_left_unfinished_fails_the_stacks_teardown(tmp_path: Path) -> None:
    running = launch_stack(tmp_path / "stack")
    service = TableServiceClient.from_connection_string(running.storage_connection_string)
    jobs = JobStore(Tables(service, prefix=load_values(PROJECT_DIR, running.env).get("TABLE_PREFIX", "")))
    jobs.add_job(
        Job(
            id="video_orphan_for_the_guard",
            app_id="app_guard",
            model="sora-2",
            prompt="never started",
            seconds="4",
            size="1280x720",
            created_at=int(time.time()),
        )
    )

    assert running.unfinished_jobs() == ["video_orphan_for_the_guard"]
    with pytest.raises(AssertionError, match="video_orphan_for_the_guard"):
        running.stop_after_every_job_ends(timeout=2)
    assert running.process is None  # stopped all the same
