"""Job records, against Azurite."""

from __future__ import annotations

import time

from gateway.jobs import Job, JobStore, new_job_id
from gateway.tables import Tables


def make_job(app_id: str = "app_a", **overrides: object) -> Job:
    values: dict[str, object] = {
        "id": new_job_id(),
        "app_id": app_id,
        "model": "sora-2",
        "prompt": "p",
        "seconds": "4",
        "size": "720x1280",
        "created_at": int(time.time()),
        "metadata": {"k": "v"},
    }
    values.update(overrides)
    return Job(**values)  # type: ignore[arg-type]


def test_job_round_trips_and_is_invisible_to_other_apps(tables: Tables) -> None:
    store = JobStore(tables)
    job = make_job()
    store.add_job(job)
    assert store.get_job("app_a", job.id) == job
    assert store.get_job("app_b", job.id) is None


def test_a_finished_job_is_not_revived_by_a_late_update(tables: Tables) -> None:
    store = JobStore(tables)
    job = make_job()
    store.add_job(job)
    store.update_job("app_a", job.id, status="failed", error_code="cancelled")
    late = store.update_job("app_a", job.id, status="in_progress", progress=50)
    assert late.status == "failed"
    stored = store.get_job("app_a", job.id)
    assert stored is not None
    assert stored.status == "failed"
    assert stored.progress == 0


def test_clearing_a_field_removes_it(tables: Tables) -> None:
    store = JobStore(tables)
    job = make_job(error_code="x", error_message="y")
    store.add_job(job)
    store.update_job("app_a", job.id, error_code=None, error_message=None)
    stored = store.get_job("app_a", job.id)
    assert stored is not None
    assert stored.error_code is None


def test_job_ids_sort_newest_first() -> None:
    older = new_job_id(now=1_700_000_000.0)
    newer = new_job_id(now=1_700_000_001.0)
    assert newer < older
    assert older.startswith("video_")
