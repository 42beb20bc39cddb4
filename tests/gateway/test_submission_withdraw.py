"""Undoing an accepted request whose orchestration could not start, against Azurite.

Through the API this path needs the durable host to refuse a start, which the local stack does
not do on demand; `withdraw` is what the create handler calls then (api/videos.py), so it is
driven here directly, with the gateway's real stores.
"""

from __future__ import annotations

import time

from devhost.config import load_values
from gateway.apps import App
from gateway.blobs import VideoAssets
from gateway.idempotency import IdempotencyStore
from gateway.jobs import JobStore
from gateway.quota import Limits, QuotaStore
from gateway.settings import Settings
from gateway.submissions import Reservation, Submission, Submissions
from gateway.tables import Tables
from gateway.validation import VideoSpec
from tests.conftest import PROJECT_DIR

APP = App(id="app_withdraw", name="withdraw", plan="pro", created_at=0, key_hash="", webhook_secret="")
LIMITS = Limits(hour=5, day=20)
SUBMISSION = Submission(
    spec=VideoSpec(prompt="A harbour at dawn", model="sora-2", seconds="4", size="720x1280"),
    idempotency_key="start-failed",
)


def submissions_on(tables: Tables, assets: VideoAssets) -> Submissions:
    return Submissions(
        Settings.from_env(load_values(PROJECT_DIR, {})),
        quota=QuotaStore(tables),
        jobs=JobStore(tables),
        assets=assets,
        idempotency=IdempotencyStore(tables),
    )


def test_a_withdrawn_job_frees_its_idempotency_key_and_its_slot(
    tables: Tables, video_assets: VideoAssets
) -> None:
    submissions = submissions_on(tables, video_assets)
    reserved = submissions.reserve(APP, LIMITS, SUBMISSION)
    assert isinstance(reserved, Reservation)
    job = submissions.record(reserved, None).job

    submissions.withdraw(job, SUBMISSION.idempotency_key)
    retried = submissions.reserve(APP, LIMITS, SUBMISSION)

    # The client was told 503 "try again": the same key and body make a new job. Had the claim
    # stayed, it would name a recorded job that is gone, and the retry would be told 404.
    assert isinstance(retried, Reservation), retried
    assert retried.job_id != job.id
    assert JobStore(tables).get_job(APP.id, job.id) is None
    assert QuotaStore(tables).usage(APP.id, LIMITS, time.time()).used["hour"] == 1  # the retry's slot only
