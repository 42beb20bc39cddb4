"""DELETE of a video whose copy finishes between the handler's read and its cancel mark.

The handler reads the job (in flight), then marks it cancelled; the store activity's record
write can land in between, and a finished record takes no mark. The answer says the video is
deleted, so the video must be: its files and record go, as for any finished video's DELETE.
(Through the real stack this window is a few milliseconds wide: see
tests/pipeline/test_faults_in_flight.py, the cancel racing the end of the copy.)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

import api.videos
from gateway.jobs import Job
from tests.api.test_event_loop import APP, SOURCE, StandInDurableClient, handler, request

IN_FLIGHT = replace(SOURCE, id="video_racing", status="in_progress", progress=90)
COMPLETED = replace(
    IN_FLIGHT,
    status="completed",
    progress=100,
    video_blob=f"{APP.id}/video_racing/video.mp4",
    thumbnail_blob=f"{APP.id}/video_racing/thumbnail.jpg",
)


class Store:
    """The job store as the handler sees it in the race: the record it reads is in flight, the
    record it then writes to is already `record` (update_job leaves a finished record as is)."""

    def __init__(self, record: Job) -> None:
        self.record: Job | None = record
        self.deleted: list[str] = []

    def update_job(self, app_id: str, job_id: str, **changes: Any) -> Job:
        assert self.record is not None
        if self.record.status not in ("completed", "failed"):
            self.record = replace(self.record, **changes)
        return self.record

    def delete_job(self, app_id: str, job_id: str) -> None:
        self.deleted.append(job_id)
        self.record = None


class Assets:
    def __init__(self) -> None:
        self.deleted: list[str | None] = []

    def delete_all(self, *names: str | None) -> None:
        self.deleted += names


def cancel(monkeypatch: pytest.MonkeyPatch, record: Job) -> tuple[Any, Store, Assets, StandInDurableClient]:
    store, assets, client = Store(record), Assets(), StandInDurableClient()
    monkeypatch.setattr(api.videos, "authenticate_app", lambda req: APP)
    monkeypatch.setattr(api.videos, "get_owned_job", lambda app, video_id: IN_FLIGHT)
    monkeypatch.setattr(api.videos, "get_job_store", lambda: store)
    monkeypatch.setattr(api.videos, "get_video_assets", lambda: assets)
    delete = request("DELETE", f"http://h/api/v1/videos/{IN_FLIGHT.id}", video_id=IN_FLIGHT.id)
    response = asyncio.run(handler(api.videos.delete_video)(delete, client))
    return response, store, assets, client


def test_a_delete_whose_cancel_mark_loses_to_the_copy_deletes_the_completed_video(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    response, store, assets, client = cancel(monkeypatch, COMPLETED)
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"id": IN_FLIGHT.id, "object": "video.deleted", "deleted": True}
    # Not a completed video left standing after an answer that says it is deleted.
    assert store.deleted == [IN_FLIGHT.id]
    assert {COMPLETED.video_blob, COMPLETED.thumbnail_blob} <= set(assets.deleted)
    assert client.events == []  # nothing left to cancel


def test_a_delete_in_flight_still_cancels(monkeypatch: pytest.MonkeyPatch) -> None:
    response, store, assets, client = cancel(monkeypatch, IN_FLIGHT)
    assert response.status_code == 200
    assert store.record is not None
    assert (store.record.status, store.record.error_code) == ("failed", "cancelled")
    assert store.deleted == []
    assert assets.deleted == []
    assert client.events == [IN_FLIGHT.id]


def test_a_delete_whose_cancel_mark_meets_a_job_that_failed_on_its_own_deletes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same window, with the job failing by itself first (its deadline, say): the answer
    says deleted, so the failed record goes too, rather than standing with its own code."""
    timed_out = replace(IN_FLIGHT, status="failed", error_code="timeout", error_message="Timed out.")
    response, store, _assets, client = cancel(monkeypatch, timed_out)
    assert response.status_code == 200
    assert store.deleted == [IN_FLIGHT.id]
    assert client.events == []
