"""Storage failing while a create is withdrawn (its orchestration could not start): `withdraw`
raises StorageUnavailable (a 503 to the client) within seconds, and whatever it could not undo is
finished afterwards by the maintenance run (the reconciler, or the sweep's orphan clean-up):
no slot kept, no job left unfinished, no blob left, and a retry with the same Idempotency-Key
gets a definite answer.

Against an Azurite of this module's own with the gateway's real stores. Storage that hangs from
the first step is real (Azurite paused with SIGSTOP). A failure at a later step is injected (one
store method made to raise StorageUnavailable), because Azurite cannot be paused
deterministically between two storage calls of one function.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite
from devhost.config import load_values
from gateway.apps import App
from gateway.blobs import VideoAssets, blob_service
from gateway.errors import StorageUnavailable
from gateway.idempotency import IdempotencyStore
from gateway.images import ReferenceImage
from gateway.jobs import Job, JobStore
from gateway.quota import Limits, QuotaStore
from gateway.retention import (
    ORCHESTRATION_LOST,
    ORPHAN_MIN_AGE_SECONDS,
    RECONCILE_GRACE_SECONDS,
    Reconciler,
    RetentionSweeper,
    settlement_for,
)
from gateway.settings import Settings
from gateway.submissions import Accepted, Reservation, Submission, Submissions
from gateway.tables import Tables, table_service
from gateway.validation import VideoSpec
from tests.conftest import PROJECT_DIR, running_azurite
from tests.gateway.test_storage_seam import azurite_pid, paused

LIMITS = Limits(hour=5, day=20)
# A call on the request path gives up within about 10 s (gateway.tables.REQUEST_TIMEOUTS), plus
# what a busy 2-core machine may add; storage calls without timeouts hang for minutes.
WITHDRAW_BOUND_SECONDS = 15.0
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # stored as-is: only its bytes matter here


class NoUpstream:
    """The withdrawn job never reached a provider: the reconciler must not try to delete there."""

    def delete_upstream(self, job: Job) -> bool:
        raise AssertionError(f"{job.id} never had an upstream job")


@pytest.fixture(scope="module")
def own_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """An Azurite of this module's own, so pausing it disturbs no other test."""
    with running_azurite(tmp_path_factory.mktemp("withdraw-azurite")) as emulator:
        yield emulator


class Gateway:
    """The gateway's real stores on a prefix and container of their own."""

    def __init__(self, emulator: Azurite) -> None:
        self.connection_string = emulator.connection_string
        self.tables = Tables(table_service(self.connection_string), prefix="w" + uuid.uuid4().hex[:10])
        self.container = "withdraw-" + uuid.uuid4().hex[:10]
        self.assets = VideoAssets(blob_service(self.connection_string), self.container)
        self.jobs = JobStore(self.tables)
        self.quota = QuotaStore(self.tables)
        self.submissions = Submissions(
            Settings.from_env(load_values(PROJECT_DIR, {})),
            quota=self.quota,
            jobs=self.jobs,
            assets=self.assets,
            idempotency=IdempotencyStore(self.tables),
        )
        self.app = App(
            id="app_" + uuid.uuid4().hex[:8],
            name="withdraw",
            plan="pro",
            created_at=0,
            key_hash="",
            webhook_secret="",
        )
        self.submission = Submission(
            spec=VideoSpec(prompt="A harbour at dawn", model="sora-2", seconds="4", size="720x1280"),
            idempotency_key="withdraw-" + uuid.uuid4().hex,
            reference_digest="sha256-of-the-uploaded-image",
        )

    def recorded_job(self) -> Job:
        """A job accepted with its key and reference image, as the create handler has it just
        before starting the orchestration."""
        reserved = self.submissions.reserve(self.app, LIMITS, self.submission)
        assert isinstance(reserved, Reservation)
        reference = ReferenceImage(content=PNG, content_type="image/png", width=720, height=1280)
        job = self.submissions.record(reserved, reference).job
        assert job.reference_blob is not None
        assert self.blob_exists(job.reference_blob)  # so "gone" afterwards means something
        assert self.used() == 1
        return job

    def used(self) -> int:
        return self.quota.usage(self.app.id, LIMITS, time.time()).used["hour"]

    def retry(self) -> Reservation | Accepted:
        """The client's retry after its 503: same key, same body."""
        return self.submissions.reserve(self.app, LIMITS, self.submission)

    def blob_exists(self, name: str) -> bool:
        """Read from Blob Storage itself, not through the store under test."""
        service = BlobServiceClient.from_connection_string(self.connection_string)
        return bool(service.get_blob_client(self.container, name).exists())

    def reconcile(self, job: Job) -> None:
        """The maintenance run's decision and settlement, once the job is past its grace period:
        runtime status None, as the durable client reports an orchestration that never existed."""
        later = time.time() + RECONCILE_GRACE_SECONDS + 1
        settlement = settlement_for(job, None, later)
        assert settlement is not None
        assert settlement.code == ORCHESTRATION_LOST
        settled = Reconciler(self.jobs, self.quota, NoUpstream(), self.assets).settle(job, settlement, later)
        assert settled is not None


def timed_withdraw(gateway: Gateway, job: Job) -> float:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as raised:
        gateway.submissions.withdraw(job, gateway.submission.idempotency_key)
    # A 503 with Retry-After in the OpenAI shape (api.http maps ApiError), never a 500.
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "5"
    return time.monotonic() - started


def failing(method: Callable[..., object]) -> Callable[..., object]:
    """Injected fault: `method` raises StorageUnavailable, as the storage seam raises an outage."""

    def outage(*args: object, **kwargs: object) -> object:
        raise StorageUnavailable()

    return outage


def test_storage_hanging_from_the_first_step_of_withdraw_leaves_a_job_the_reconciler_finishes(
    own_azurite: Azurite, record_property: Callable[[str, object], None]
) -> None:
    gateway = Gateway(own_azurite)
    job = gateway.recorded_job()

    with paused(azurite_pid(own_azurite)):  # real: every storage call hangs, from the quota release on
        seconds = timed_withdraw(gateway, job)
    record_property("withdraw_seconds", round(seconds, 2))
    assert seconds < WITHDRAW_BOUND_SECONDS

    # Nothing could be undone: the job is still queued with its slot, its image and its key.
    left = gateway.jobs.get_job(gateway.app.id, job.id)
    assert left is not None
    assert left.status == "queued"
    assert gateway.used() == 1
    assert job.reference_blob is not None
    assert gateway.blob_exists(job.reference_blob)
    # The client's retry (it was told 503 "try again") is answered with that same job: the key
    # still names it. No second job, no second slot.
    retried = gateway.retry()
    assert isinstance(retried, Accepted)
    assert retried.replayed
    assert retried.job.id == job.id
    assert gateway.used() == 1

    gateway.reconcile(left)

    finished = gateway.jobs.get_job(gateway.app.id, job.id)
    assert finished is not None
    assert (finished.status, finished.error_code) == ("failed", ORCHESTRATION_LOST)
    assert finished.reference_blob is None  # the record forgets the file ...
    assert not gateway.blob_exists(job.reference_blob)  # ... which is gone from Blob Storage
    assert gateway.used() == 0  # the slot is back
    # From then on the same key and body get the failed job (the client learns why, and sends a
    # new key to try again); a replay takes no slot.
    replayed = gateway.retry()
    assert isinstance(replayed, Accepted)
    assert replayed.replayed
    assert (replayed.job.id, replayed.job.status, replayed.job.error_code) == (
        job.id,
        "failed",
        ORCHESTRATION_LOST,
    )
    assert gateway.used() == 0


def test_storage_failing_after_the_slot_and_key_went_back_leaves_a_job_the_reconciler_finishes(
    own_azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = Gateway(own_azurite)
    job = gateway.recorded_job()
    monkeypatch.setattr(gateway.jobs, "delete_job", failing(gateway.jobs.delete_job))  # injected

    seconds = timed_withdraw(gateway, job)
    monkeypatch.undo()

    assert seconds < WITHDRAW_BOUND_SECONDS
    assert gateway.used() == 0  # the steps before the fault were done
    left = gateway.jobs.get_job(gateway.app.id, job.id)
    assert left is not None
    assert left.status == "queued"
    assert job.reference_blob is not None
    assert gateway.blob_exists(job.reference_blob)

    gateway.reconcile(left)

    finished = gateway.jobs.get_job(gateway.app.id, job.id)
    assert finished is not None
    assert (finished.status, finished.error_code) == ("failed", ORCHESTRATION_LOST)
    assert not gateway.blob_exists(job.reference_blob)
    assert gateway.used() == 0  # released once, not twice (the release is idempotent)
    # The key went back before the fault: the retry makes the video, as the 503 promised.
    retried = gateway.retry()
    assert isinstance(retried, Reservation), retried
    assert retried.job_id != job.id
    assert gateway.used() == 1


def test_storage_failing_at_the_last_steps_of_withdraw_leaves_only_an_orphan_the_sweep_deletes(
    own_azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is deleted, the image is not (injected: the blob delete fails). The key must
    not be left naming a recorded job that is gone: a retry would be told 404 "deleted" for a
    video its client never saw, for the key's whole 24 hours."""
    gateway = Gateway(own_azurite)
    job = gateway.recorded_job()
    monkeypatch.setattr(gateway.assets, "delete_all", failing(gateway.assets.delete_all))  # injected

    seconds = timed_withdraw(gateway, job)
    monkeypatch.undo()

    assert seconds < WITHDRAW_BOUND_SECONDS
    assert gateway.used() == 0
    assert gateway.jobs.get_job(gateway.app.id, job.id) is None
    assert job.reference_blob is not None
    assert gateway.blob_exists(job.reference_blob)
    retried = gateway.retry()
    assert isinstance(retried, Reservation), retried  # a new video, not a 404 for the withdrawn one
    assert retried.job_id != job.id

    # No record owns the image any more: the sweep's orphan clean-up deletes it once it is old.
    sweeper = RetentionSweeper(gateway.jobs, gateway.assets, retention_days=7)
    report = sweeper.sweep(time.time() + ORPHAN_MIN_AGE_SECONDS + 1)
    assert report.orphan_blobs == 1
    assert not gateway.blob_exists(job.reference_blob)


def test_a_replay_while_storage_hangs_raises_storage_unavailable_in_seconds_then_replays(
    own_azurite: Azurite, record_property: Callable[[str, object], None]
) -> None:
    """The replay path itself (claim, then the earlier job's record): through the API the app's
    key is read first, so a request that starts while storage hangs stops there
    (tests/api/test_replay_faults.py); here the replay's own storage calls hang."""
    gateway = Gateway(own_azurite)
    job = gateway.recorded_job()

    with paused(azurite_pid(own_azurite)):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            gateway.retry()
        seconds = time.monotonic() - started

    record_property("replay_seconds", round(seconds, 2))
    assert seconds < WITHDRAW_BOUND_SECONDS
    replayed = gateway.retry()
    assert isinstance(replayed, Accepted)
    assert replayed.replayed
    assert replayed.job.id == job.id
    assert gateway.used() == 1  # neither the failed replay nor the replay took a slot
