"""Accepting a request (gateway.submissions) and its Idempotency-Key claims (gateway.idempotency),
against Azurite: what is kept, given back and answered to a replay."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import types
from collections.abc import Callable

import pytest
from azure.core.exceptions import ResourceExistsError

from gateway import submissions as submissions_module
from gateway.apps import App
from gateway.blobs import VideoAssets
from gateway.errors import Conflict, Forbidden, NotFound, RateLimited
from gateway.idempotency import IDEMPOTENCY_TABLE, WINDOW_SECONDS, Claim, IdempotencyStore
from gateway.images import ReferenceImage
from gateway.jobs import JobStore
from gateway.quota import Limits, QuotaStore
from gateway.submissions import (
    ABANDONED_CLAIM_SECONDS,
    Accepted,
    Reservation,
    Submission,
    Submissions,
    plan_limits,
)
from gateway.tables import Tables
from gateway.validation import VideoSpec
from tests.gateway.test_validation_units import DEFAULTS

APP = App(id="app-1", name="Acme", plan="pro", created_at=0, key_hash="h", webhook_secret="s")
SETTINGS = dataclasses.replace(DEFAULTS, plan_limits={"pro": {"hour": 2, "day": 5}, "free": None})
SPEC = VideoSpec(prompt="a cat", model="sora-2", seconds="4", size="720x1280", metadata={"k": "v"})
PNG = ReferenceImage(content=b"\x89PNG\r\n\x1a\nrest", content_type="image/png", width=720, height=1280)


@pytest.fixture
def submissions(tables: Tables, video_assets: VideoAssets) -> Submissions:
    return Submissions(
        SETTINGS,
        quota=QuotaStore(tables),
        jobs=JobStore(tables),
        assets=video_assets,
        idempotency=IdempotencyStore(tables),
    )


def used_this_hour(tables: Tables) -> int:
    return QuotaStore(tables).usage(APP.id, Limits(hour=2, day=5), time.time()).used["hour"]


# --- Idempotency-Key claims ------------------------------------------------------------------------


def test_the_first_claim_holds_the_key_and_later_ones_get_it(tables: Tables) -> None:
    store = IdempotencyStore(tables)
    first = Claim("job-1", "body", 1000.0)
    assert store.claim("app", "key", first) == first
    held = store.claim("app", "key", Claim("job-2", "other", 1001.0))
    assert held == Claim("job-1", "body", 1000.0, recorded=False)
    assert held.etag
    # The same key of another app is another claim; the key is stored hashed.
    assert store.claim("app-b", "key", Claim("job-3", "body", 1001.0)).job_id == "job-3"
    rows = list(tables.get(IDEMPOTENCY_TABLE).list_entities())
    assert {row["RowKey"] for row in rows} == {hashlib.sha256(b"key").hexdigest()}


def test_a_claim_lasts_its_window_and_is_then_taken_over(tables: Tables) -> None:
    store = IdempotencyStore(tables)
    store.claim("app", "key", Claim("job-1", "body", 1000.0))
    almost = Claim("job-2", "body", 1000.0 + WINDOW_SECONDS - 1)
    assert store.claim("app", "key", almost).job_id == "job-1"
    expired = Claim("job-3", "body", 1000.0 + WINDOW_SECONDS)
    assert store.claim("app", "key", expired) == expired
    assert store.claim("app", "key", Claim("job-4", "body", 1000.0 + WINDOW_SECONDS)).job_id == "job-3"


def test_a_take_over_fails_when_the_claim_changed_meanwhile(tables: Tables) -> None:
    store = IdempotencyStore(tables)
    store.claim("app", "key", Claim("job-1", "body", 1000.0))
    held = store.claim("app", "key", Claim("job-x", "body", 1000.0))
    store.mark_recorded("app", "key", "job-1")  # changes the row's ETag
    assert store.take_over("app", "key", held, Claim("job-2", "body", 2000.0)) is None
    fresh = store.claim("app", "key", Claim("job-x", "body", 1000.0))
    assert store.take_over("app", "key", fresh, Claim("job-2", "body", 2000.0)) == Claim(
        "job-2", "body", 2000.0
    )


def test_the_record_stamp_counts_only_for_the_job_that_holds_the_key(tables: Tables) -> None:
    store = IdempotencyStore(tables)
    store.mark_recorded("app", "key", "job-1")  # no claim: nothing to stamp, no error
    store.claim("app", "key", Claim("job-1", "body", 1000.0))
    store.mark_recorded("app", "key", "job-other")
    assert store.claim("app", "key", Claim("job-2", "body", 1000.0)).recorded is False
    store.mark_recorded("app", "key", "job-1")
    assert store.claim("app", "key", Claim("job-2", "body", 1000.0)).recorded is True


def test_release_drops_only_ones_own_claim(tables: Tables) -> None:
    store = IdempotencyStore(tables)
    store.release("app", "key", "job-1")  # nothing held: nothing to do
    store.claim("app", "key", Claim("job-1", "body", 1000.0))
    store.release("app", "key", "job-other")
    assert store.claim("app", "key", Claim("job-2", "body", 1000.0)).job_id == "job-1"
    store.release("app", "key", "job-1")
    assert store.claim("app", "key", Claim("job-2", "body", 1000.0)).job_id == "job-2"


def nothing() -> None:
    return None


class RacedStore(IdempotencyStore):
    """A store where another request acts at the worst moment: just before or just after its
    first read of a claim, or when it takes one over (its first take-over loses)."""

    def __init__(
        self, tables: Tables, *, before: Callable[[], None] = nothing, after: Callable[[], None] = nothing
    ) -> None:
        super().__init__(tables)
        self.before, self.after = before, after
        self.reads = 0
        self.lost_take_overs = 0

    def _read(self, app_id: str, key: str) -> Claim | None:
        self.reads += 1
        if self.reads == 1:
            self.before()
        held = super()._read(app_id, key)
        if self.reads == 1:
            self.after()
        return held

    def take_over(self, app_id: str, key: str, held: Claim, candidate: Claim) -> Claim | None:
        if self.lost_take_overs == 0:
            self.lost_take_overs += 1
            return None  # someone else changed the row first
        return super().take_over(app_id, key, held, candidate)


def test_a_claim_released_or_taken_meanwhile_is_tried_again(tables: Tables) -> None:
    other = IdempotencyStore(tables)
    other.claim("app", "key", Claim("job-1", "body", 1000.0))

    def release_job_1() -> None:
        other.release("app", "key", "job-1")

    # The insert found job-1's claim; by the read it was gone: the insert is tried again.
    raced = RacedStore(tables, before=release_job_1)
    assert raced.claim("app", "key", Claim("job-2", "body", 2000.0)) == Claim("job-2", "body", 2000.0)
    assert raced.reads == 1
    # An expired claim whose take-over loses a race is read and decided again.
    late = Claim("job-3", "body", 2000.0 + WINDOW_SECONDS)
    assert RacedStore(tables).claim("app", "key", late) == late
    assert other.claim("app", "key", Claim("job-4", "body", 2000.0 + WINDOW_SECONDS)).job_id == "job-3"


@pytest.mark.parametrize("change", ["stamped", "deleted"])
def test_release_leaves_a_claim_that_changed_after_it_was_read(tables: Tables, change: str) -> None:
    store = IdempotencyStore(tables)
    store.claim("app", "key", Claim("job-1", "body", 1000.0))

    def stamp() -> None:
        store.mark_recorded("app", "key", "job-1")

    def delete() -> None:
        tables.get(IDEMPOTENCY_TABLE).delete_entity("app", hashlib.sha256(b"key").hexdigest())

    RacedStore(tables, after=stamp if change == "stamped" else delete).release("app", "key", "job-1")
    held = store.claim("app", "key", Claim("job-2", "body", 1000.0))
    assert held.job_id == ("job-1" if change == "stamped" else "job-2")


# --- Submissions ------------------------------------------------------------------------------------


def test_a_plan_without_video_is_refused_and_a_plan_with_it_has_its_limits() -> None:
    assert plan_limits(APP, SETTINGS) == Limits(hour=2, day=5)
    with pytest.raises(Forbidden) as refused:
        plan_limits(dataclasses.replace(APP, plan="free"), SETTINGS)
    assert refused.value.code == "plan_not_allowed"
    assert "'free' plan" in refused.value.message


def test_an_accepted_request_records_its_job_and_takes_one_slot(
    submissions: Submissions, tables: Tables, video_assets: VideoAssets
) -> None:
    submission = Submission(SPEC, webhook_url="https://hook.example/x", provider="azure", provider_model="m")
    accepted = submissions.accept(APP, submission, PNG)

    job = accepted.job
    assert not accepted.replayed
    assert accepted.usage.used == {"hour": 1, "day": 1}
    assert JobStore(tables).get_job(APP.id, job.id) == job
    assert (job.app_id, job.model, job.prompt, job.seconds, job.size) == (
        APP.id,
        "sora-2",
        "a cat",
        "4",
        "720x1280",
    )
    assert (job.metadata, job.webhook_url, job.provider, job.provider_model) == (
        {"k": "v"},
        "https://hook.example/x",
        "azure",
        "m",
    )
    assert abs(job.created_at - time.time()) < 5
    assert job.reference_blob is not None
    assert job.reference_blob.endswith("reference.png")
    assert video_assets.download_bytes(job.reference_blob) == (PNG.content, "image/png")
    assert used_this_hour(tables) == 1


def test_a_request_over_the_limit_is_refused_and_frees_its_key(
    submissions: Submissions, tables: Tables
) -> None:
    submissions.accept(APP, Submission(SPEC))
    submissions.accept(APP, Submission(SPEC))
    with pytest.raises(RateLimited) as refused:
        submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    error = refused.value
    assert error.extra == {"window": "hour"}
    assert error.message.startswith("Rate limit reached: 2 videos per hour for this app.")
    assert error.headers["Retry-After"] == str(int(error.headers["Retry-After"]))
    assert 3500 <= int(error.headers["Retry-After"]) <= 3600
    assert error.headers["x-ratelimit-remaining-hour"] == "0"
    assert f"Try again in {error.headers['Retry-After']} seconds." in error.message
    assert IdempotencyStore(tables).claim(APP.id, "k1", Claim("mine", "f", time.time())).job_id == "mine"


def test_a_replay_answers_the_same_job_without_another_slot(submissions: Submissions, tables: Tables) -> None:
    first = submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    again = submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    assert again == Accepted(job=first.job, usage=again.usage, replayed=True)
    assert again.usage.used["hour"] == 1
    assert used_this_hour(tables) == 1


def test_a_key_reused_with_another_body_is_refused(submissions: Submissions) -> None:
    submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    with pytest.raises(Conflict) as refused:
        submissions.accept(APP, Submission(dataclasses.replace(SPEC, prompt="a dog"), idempotency_key="k1"))
    assert refused.value.code == "idempotency_key_reused"


def test_a_replay_while_the_first_request_is_unrecorded_waits_then_takes_over(
    submissions: Submissions, tables: Tables
) -> None:
    submission = Submission(SPEC, idempotency_key="k1")
    reserved = submissions.reserve(APP, plan_limits(APP, SETTINGS), submission)
    assert isinstance(reserved, Reservation)
    with pytest.raises(Conflict) as refused:
        submissions.accept(APP, submission)
    assert refused.value.code == "idempotency_request_in_progress"
    assert refused.value.headers == {"Retry-After": "1"}

    # The first request never came back: once its claim is old enough, a replay makes the job.
    claims = IdempotencyStore(tables)
    held = claims.claim(APP.id, "k1", Claim("probe", "f", time.time()))
    old = Claim(reserved.job_id, submission.fingerprint(), time.time() - ABANDONED_CLAIM_SECONDS - 1)
    assert claims.take_over(APP.id, "k1", held, old) == old
    accepted = submissions.accept(APP, submission)
    assert not accepted.replayed
    assert accepted.job.id != reserved.job_id
    now_held = claims.claim(APP.id, "k1", Claim("probe", "f", time.time()))
    assert (now_held.job_id, now_held.recorded) == (accepted.job.id, True)


def test_a_claim_exactly_the_abandon_age_old_is_taken_over(
    submissions: Submissions, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boundary of "still in progress": a claim ABANDONED_CLAIM_SECONDS old is abandoned."""
    submission = Submission(SPEC, idempotency_key="k-edge")
    reserved = submissions.reserve(APP, plan_limits(APP, SETTINGS), submission)
    assert isinstance(reserved, Reservation)
    claims = IdempotencyStore(tables)
    held = claims.claim(APP.id, "k-edge", Claim("probe", "f", time.time()))
    now = time.time()
    edge = Claim(reserved.job_id, submission.fingerprint(), now - ABANDONED_CLAIM_SECONDS)
    assert claims.take_over(APP.id, "k-edge", held, edge) == edge
    # The replay's clock, fixed (only the submissions module's view of it).
    monkeypatch.setattr(submissions_module, "time", types.SimpleNamespace(time=lambda: now))

    accepted = submissions.accept(APP, submission)

    assert not accepted.replayed
    assert accepted.job.id != reserved.job_id


def test_a_replay_of_a_deleted_video_is_not_found(submissions: Submissions, tables: Tables) -> None:
    first = submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    JobStore(tables).delete_job(APP.id, first.job.id)
    with pytest.raises(NotFound) as refused:
        submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    assert refused.value.code == "video_not_found"
    assert first.job.id in refused.value.message


def test_abandon_and_withdraw_give_everything_back(
    submissions: Submissions, tables: Tables, video_assets: VideoAssets
) -> None:
    limits = plan_limits(APP, SETTINGS)
    reserved = submissions.reserve(APP, limits, Submission(SPEC, idempotency_key="k1"))
    assert isinstance(reserved, Reservation)
    assert used_this_hour(tables) == 1
    submissions.abandon(reserved)
    assert used_this_hour(tables) == 0
    assert IdempotencyStore(tables).claim(APP.id, "k1", Claim("next", "f", time.time())).job_id == "next"

    accepted = submissions.accept(APP, Submission(SPEC, idempotency_key="k2"), PNG)
    assert accepted.job.reference_blob is not None
    submissions.withdraw(accepted.job, "k2")
    assert used_this_hour(tables) == 0
    assert JobStore(tables).get_job(APP.id, accepted.job.id) is None
    assert not video_assets.exists(accepted.job.reference_blob)
    assert IdempotencyStore(tables).claim(APP.id, "k2", Claim("next", "f", time.time())).job_id == "next"


def test_a_record_that_cannot_be_written_undoes_the_reservation(
    submissions: Submissions, tables: Tables, video_assets: VideoAssets
) -> None:
    reserved = submissions.reserve(APP, plan_limits(APP, SETTINGS), Submission(SPEC, idempotency_key="k1"))
    assert isinstance(reserved, Reservation)
    JobStore(tables).add_job(submissions._new_job(reserved, PNG))  # its id is taken: the write fails
    with pytest.raises(ResourceExistsError):
        submissions.record(reserved, PNG)
    assert used_this_hour(tables) == 0
    assert not video_assets.exists(f"{APP.id}/{reserved.job_id}/reference.png")
    assert IdempotencyStore(tables).claim(APP.id, "k1", Claim("next", "f", time.time())).job_id == "next"


def test_the_fingerprint_is_the_body_and_not_where_it_is_made() -> None:
    base = Submission(SPEC)
    assert (
        base.fingerprint()
        == Submission(SPEC, provider="p", provider_model="m", idempotency_key="k").fingerprint()
    )
    different = [
        Submission(dataclasses.replace(SPEC, seconds="8")),
        Submission(SPEC, remixed_from="video_1"),
        Submission(SPEC, webhook_url="https://hook.example/"),
        Submission(SPEC, reference_digest="abc"),
    ]
    assert len({base.fingerprint(), *(s.fingerprint() for s in different)}) == 5


def test_the_fingerprint_is_stable_across_releases() -> None:
    # Claims keep it for a day: a release that hashed the same body differently would answer a
    # client's retry across the deployment with idempotency_key_reused.
    submission = Submission(
        SPEC, remixed_from="video_1", webhook_url="https://hook.example/", reference_digest="abc"
    )
    assert submission.fingerprint() == "591991eb720340c879131f8a7ba0a33a9430054e003c291c685fa7a848c2db04"


def test_the_job_keeps_everything_the_request_asked_for(submissions: Submissions) -> None:
    spec = dataclasses.replace(SPEC, user="user-7", options={"generate_audio": False})
    job = submissions.accept(APP, Submission(spec, remixed_from="video_0"), PNG).job
    assert (job.user, job.remixed_from_video_id, job.options) == (
        "user-7",
        "video_0",
        {"generate_audio": False},
    )
    assert job.reference_blob == f"{APP.id}/{job.id}/reference.png"


def test_a_full_day_is_named_in_the_refusal(submissions: Submissions) -> None:
    limits = Limits(hour=5, day=1)
    submissions.reserve(APP, limits, Submission(SPEC))
    with pytest.raises(RateLimited) as refused:
        submissions.reserve(APP, limits, Submission(SPEC))
    assert refused.value.extra == {"window": "day"}
    assert refused.value.message.startswith("Rate limit reached: 1 videos per day for this app.")


class FailingStamps(IdempotencyStore):
    def mark_recorded(self, app_id: str, key: str, job_id: str) -> None:
        raise RuntimeError("storage is down")


class LosingTakeOvers(IdempotencyStore):
    def take_over(self, app_id: str, key: str, held: Claim, candidate: Claim) -> Claim | None:
        return None  # another request took the abandoned claim first


def submissions_with(tables: Tables, video_assets: VideoAssets, idempotency: IdempotencyStore) -> Submissions:
    return Submissions(
        SETTINGS,
        quota=QuotaStore(tables),
        jobs=JobStore(tables),
        assets=video_assets,
        idempotency=idempotency,
    )


def test_a_job_stands_when_its_claim_cannot_be_stamped(
    tables: Tables, video_assets: VideoAssets, caplog: pytest.LogCaptureFixture
) -> None:
    failing = submissions_with(tables, video_assets, FailingStamps(tables))
    with caplog.at_level(logging.WARNING, logger="gateway.submissions"):
        accepted = failing.accept(APP, Submission(SPEC, idempotency_key="k1"))
    assert JobStore(tables).get_job(APP.id, accepted.job.id) == accepted.job
    [record] = [r for r in caplog.records if r.name == "gateway.submissions"]
    assert record.getMessage() == f"could not stamp the idempotency claim of {accepted.job.id}"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "storage is down"


def test_refusals_of_a_replay_say_why(
    submissions: Submissions, tables: Tables, video_assets: VideoAssets, caplog: pytest.LogCaptureFixture
) -> None:
    first = submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    with pytest.raises(Conflict) as reused:
        submissions.accept(APP, Submission(dataclasses.replace(SPEC, prompt="a dog"), idempotency_key="k1"))
    assert reused.value.message == "This Idempotency-Key was already used with a different request body."
    JobStore(tables).delete_job(APP.id, first.job.id)
    QuotaStore(tables).release(APP.id, first.job.id, time.time())  # room for the take-over below
    with pytest.raises(NotFound) as deleted:
        submissions.accept(APP, Submission(SPEC, idempotency_key="k1"))
    assert deleted.value.message == (
        f"Video '{first.job.id}', made by the first request with this Idempotency-Key, "
        "was deleted; send a new Idempotency-Key to make another."
    )

    submission = Submission(SPEC, idempotency_key="k2")
    reserved = submissions.reserve(APP, plan_limits(APP, SETTINGS), submission)
    assert isinstance(reserved, Reservation)
    with pytest.raises(Conflict) as in_progress:
        submissions.accept(APP, submission)
    assert in_progress.value.message == (
        "The first request with this Idempotency-Key is still in progress; retry shortly."
    )
    # Abandoned long ago: a replay takes it over, unless another request took it first.
    claims = IdempotencyStore(tables)
    held = claims.claim(APP.id, "k2", Claim("probe", "f", time.time()))
    abandoned = Claim(reserved.job_id, submission.fingerprint(), time.time() - ABANDONED_CLAIM_SECONDS - 1)
    claims.take_over(APP.id, "k2", held, abandoned)
    with pytest.raises(Conflict) as lost:
        submissions_with(tables, video_assets, LosingTakeOvers(tables)).accept(APP, submission)
    assert (lost.value.code, lost.value.headers) == ("idempotency_request_in_progress", {"Retry-After": "1"})
    assert lost.value.message == "Another request with this Idempotency-Key is in progress; retry shortly."
    with caplog.at_level(logging.WARNING, logger="gateway.submissions"):
        submissions.accept(APP, submission)
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.submissions"] == [
        f"app {APP.id}: idempotency claim for {reserved.job_id} was abandoned; taken over"
    ]
