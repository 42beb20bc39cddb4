"""generate_video replayed by the real durable library over histories shaped like the extension's.

Each test writes what the extension would record (activity results, failures after retries,
fired timers, raised events) and asserts what the orchestrator asks for next.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from activities import names as activity
from gateway.messages import (
    FAILURE_MESSAGES,
    JobRef,
    StoredAssets,
    StoreOutcome,
    UpstreamStatus,
    failure_message,
    rejection_code,
)
from gateway.polling import PollPolicy, ProgressTrack
from orchestrators.generate_video import JobRun
from orchestrators.names import CANCEL_EVENT
from tests.orchestrators.history import (
    CALL_ACTIVITY,
    CALL_ACTIVITY_WITH_RETRY,
    CREATE_TIMER,
    START,
    TRANSIENT,
    WAIT_FOR_EXTERNAL_EVENT,
    History,
    Leaf,
    timestamp,
)

JOB = JobRef(app_id="app_1", job_id="video_1")
RUN = JobRun(job=JOB, poll=PollPolicy(1.0, 3.0), timeout_minutes=10.0)
UPSTREAM_ID = "up_1"
WAIT_CANCEL = "wait:" + CANCEL_EVENT
TIMER = "timer"


def describe(leaves: list[Leaf]) -> list[str]:
    """Actions as short words: activity names, "timer", "wait:cancel"."""
    words = []
    for leaf in leaves:
        if leaf.kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
            words.append(str(leaf.name))
        elif leaf.kind == CREATE_TIMER:
            words.append(TIMER)
        else:
            assert leaf.kind == WAIT_FOR_EXTERNAL_EVENT
            words.append(f"wait:{leaf.name}")
    return words


def running(progress: int = 10) -> dict[str, Any]:
    track = ProgressTrack(origin=START.timestamp()).observe(5.0, progress)
    return UpstreamStatus(
        upstream_id=UPSTREAM_ID, status="in_progress", progress=progress, track=track.to_dict()
    ).to_dict()


def finished_upstream(status: str = "completed", error_code: str | None = None) -> dict[str, Any]:
    return UpstreamStatus(
        upstream_id=UPSTREAM_ID, status=status, progress=100, error_code=error_code
    ).to_dict()


STORED = StoreOutcome.stored(
    StoredAssets(video_blob="app_1/video_1/video.mp4", thumbnail_blob=None, video_bytes=1000)
).to_dict()


# -- the way to each stage ---------------------------------------------------------------------


def started(run: JobRun = RUN) -> History:
    history = History(run.to_dict())
    assert describe(history.step()) == [activity.RESERVE_UPSTREAM_SLOT, WAIT_CANCEL]
    return history


def reserved(run: JobRun = RUN) -> History:
    history = started(run)
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), history.now.timestamp())
    assert describe(history.step()) == [activity.CREATE_UPSTREAM_JOB]  # the cancel wait is not repeated
    return history


def created(run: JobRun = RUN) -> History:
    """The upstream job exists; the orchestrator sleeps on its first poll timer."""
    history = reserved(run)
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), running())
    assert describe(history.step()) == [TIMER]
    return history


def polling(run: JobRun = RUN) -> History:
    """A status check is under way."""
    history = created(run)
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.CHECK_UPSTREAM_JOB]
    return history


def copying(run: JobRun = RUN) -> History:
    """The upstream job completed; the assets are being copied."""
    history = polling(run)
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream())
    assert describe(history.step()) == [activity.STORE_VIDEO_ASSETS]
    return history


def run_out(history: History, new: list[Leaf]) -> list[Leaf]:
    """Let every activity the orchestrator asks for from here succeed, one episode each, until
    it finishes; returns every action asked for on the way (starting with `new`)."""
    asked = list(new)
    while not (history.last is not None and history.last.done):
        pending = [leaf for leaf in new if leaf.kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY)]
        assert len(pending) == 1, f"expected one activity at a time, got {describe(new)}"
        history.episode(1).complete(history.task(str(pending[0].name)), True)
        new = history.step()
        asked += new
    return asked


def exhaust_retries(history: History, name: str) -> list[Leaf]:
    """Fail every attempt of the running call of `name`, as the extension retries it; returns
    the orchestrator's new actions once the call has failed for good."""
    task = history.task(name)
    while True:
        history.episode(1)
        retry_timer = history.fail(task)
        assert retry_timer is not None, f"{name} is not called with retry"
        assert history.step() == []  # still retrying: nothing new
        attempt = history.fire(retry_timer)
        new = history.step()
        if attempt is None:
            return new
        assert new == []
        task = attempt


def inputs_of(leaves: list[Leaf], name: str) -> list[Any]:
    return [leaf.input for leaf in leaves if leaf.name == name]


def assert_failed(history: History, code: str, *, recorded: bool = True) -> None:
    assert history.last is not None
    assert history.last.done
    assert history.last.output == {
        "job_id": JOB.job_id,
        "status": "failed",
        "error_code": code,
        "video_blob": None,
        "recorded": recorded,
    }


def cancel_waits(history: History) -> int:
    return sum(leaf.kind == WAIT_FOR_EXTERNAL_EVENT for leaf in history.leaves)


# -- the whole way -----------------------------------------------------------------------------


def test_a_job_runs_to_completion_with_exactly_one_cancel_waiter() -> None:
    history = copying()
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    assert history.step() == []
    assert history.last is not None
    assert history.last.done
    assert history.last.output["status"] == "completed"
    assert history.last.output["video_blob"] == "app_1/video_1/video.mp4"
    assert cancel_waits(history) == 1
    # Replaying the finished history again answers the same: the orchestrator is deterministic.
    again = history.replay()
    assert again.output == history.last.output
    assert again.raw["actions"] == history.last.raw["actions"]


def test_each_activity_on_the_way_is_given_the_job_and_what_it_needs_of_it() -> None:
    history = copying()
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    assert history.step() == []
    job = {"app_id": "app_1", "job_id": "video_1"}
    poll = {"min_seconds": 1.0, "max_seconds": 3.0}
    track = {
        "origin": START.timestamp(),
        "last_idle_at": 0.0,
        "first_progress_at": 5.0,
        "previous": None,
        "latest": [5.0, 10],
        "last_check_at": 5.0,
        "last_queued_at": None,
        "started_at": 5.0,
    }
    asked = [(leaf.name, leaf.input) for leaf in history.leaves if leaf.kind == CALL_ACTIVITY_WITH_RETRY]
    assert asked == [
        (activity.RESERVE_UPSTREAM_SLOT, job),
        (activity.CREATE_UPSTREAM_JOB, {**job, "poll": poll}),
        (activity.CHECK_UPSTREAM_JOB, {**job, "upstream_id": UPSTREAM_ID, "track": track, "poll": poll}),
        (activity.STORE_VIDEO_ASSETS, {**job, "upstream_id": UPSTREAM_ID}),
    ]


# Activity results as the code before blob-names-only recorded them: the status check carried the
# upstream's own words, the store result a SAS URL. Histories of in-flight instances hold these.
OLD_SAS_URL = "http://127.0.0.1:10000/devstoreaccount1/videos/app_1/video_1/video.mp4?se=2026&sp=r&sig=abc%3D"
OLD_STORED = {
    "status": "stored",
    "assets": {
        "video_blob": "app_1/video_1/video.mp4",
        "thumbnail_blob": None,
        "video_bytes": 1000,
        "video_url": OLD_SAS_URL,
    },
    "retry_after": None,
    "error_code": None,
}


def test_a_history_recorded_with_a_sas_url_in_the_store_result_replays_and_keeps_it_out() -> None:
    history = polling()
    old_check = {**finished_upstream(), "error_message": "GET /videos/up_1: the upstream's words"}
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), old_check)
    assert describe(history.step()) == [activity.STORE_VIDEO_ASSETS]
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), OLD_STORED)
    assert history.step() == []
    assert history.last is not None
    assert history.last.done
    assert history.last.output == {
        "job_id": JOB.job_id,
        "status": "completed",
        "error_code": None,
        "video_blob": "app_1/video_1/video.mp4",
        "recorded": True,
    }
    assert "sig=" not in json.dumps(history.last.output)  # the output never carries a URL
    again = history.replay()
    assert again.output == history.last.output


def test_the_store_result_carries_blob_names_only() -> None:
    stored = StoreOutcome.stored(
        StoredAssets(
            video_blob="app_1/video_1/video.mp4", thumbnail_blob="app_1/video_1/thumbnail.jpg", video_bytes=1
        )
    ).to_dict()
    assert stored["assets"] == {
        "video_blob": "app_1/video_1/video.mp4",
        "thumbnail_blob": "app_1/video_1/thumbnail.jpg",
        "video_bytes": 1,
    }
    assert StoreOutcome.from_dict(OLD_STORED).assets == StoredAssets(
        video_blob="app_1/video_1/video.mp4", thumbnail_blob=None, video_bytes=1000
    )


def test_a_queued_job_waits_for_its_slot_on_a_timer() -> None:
    history = started()
    start_at = START + timedelta(seconds=20)
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), start_at.timestamp())
    new = history.step()
    assert describe(new) == [TIMER]
    assert new[0].fire_at == timestamp(start_at)
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.CREATE_UPSTREAM_JOB]


# -- cancel --------------------------------------------------------------------------------------


def test_cancel_before_the_first_wait_stops_before_anything_reaches_the_upstream() -> None:
    history = History(RUN.to_dict())
    history.raise_event(CANCEL_EVENT)  # delivered with the start, before any wait was made
    assert describe(history.step()) == [activity.RESERVE_UPSTREAM_SLOT, WAIT_CANCEL]
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), history.now.timestamp())
    asked = run_out(history, history.step())
    # No create; the slot goes back (nothing reached a provider), then the record is made final.
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert inputs_of(asked, activity.FAIL_JOB) == [{**JOB.to_dict(), "code": "cancelled", "charged": False}]
    assert_failed(history, "cancelled")


def test_cancel_during_a_status_check_stops_once_the_check_returns() -> None:
    history = polling()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert history.step() == []  # the check still runs: nothing to do until it returns
    assert history.last is not None
    assert not history.last.done
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), running(40))
    asked = run_out(history, history.step())
    # Not another timer and check: the job ends, the upstream job is deleted.
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert inputs_of(asked, activity.DELETE_UPSTREAM_JOB) == [{**JOB.to_dict(), "upstream_id": UPSTREAM_ID}]
    assert_failed(history, "cancelled")
    assert cancel_waits(history) == 1


def test_cancel_during_create_deletes_the_upstream_job_it_made() -> None:
    history = reserved()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert history.step() == []
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), running())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "cancelled")


def test_cancel_during_a_timer_cancels_the_timer() -> None:
    history = created()
    timer = history.last_timer()
    history.episode(1).raise_event(CANCEL_EVENT)
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert history.timer_leaf(timer).cancelled  # no timer outlives the orchestration
    assert_failed(history, "cancelled")


def test_cancel_during_a_retried_throttle_wait_at_create_creates_nothing_more() -> None:
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 30).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    assert describe(history.step()) == [TIMER]
    timer = history.last_timer()
    history.episode(5).raise_event(CANCEL_EVENT)
    asked = run_out(history, history.step())
    # Throttled, so nothing was made: the slot goes back.
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert history.timer_leaf(timer).cancelled  # the Retry-After timer does not outlive the job
    assert_failed(history, "cancelled")


def test_cancel_while_waiting_for_the_jobs_turn_cancels_that_timer() -> None:
    """Queued behind the gateway's pacing, the job sleeps on a timer until its turn. A cancel ends
    the job at once; the replay's actions must show that timer cancelled, not left pending for an
    orchestration that has finished."""
    history = started()
    turn = START + timedelta(seconds=40)
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), turn.timestamp())
    assert describe(history.step()) == [TIMER]
    timer = history.last_timer()
    assert not history.timer_leaf(timer).cancelled
    history.episode(5).raise_event(CANCEL_EVENT)
    asked = run_out(history, history.step())
    # No create: the slot goes back.
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert history.timer_leaf(timer).cancelled
    assert_failed(history, "cancelled")


def test_cancel_during_the_asset_copy_deletes_the_upstream_job() -> None:
    history = copying()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert history.step() == []  # the copy runs to its end; it sees the cancel mark itself
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), StoreOutcome.cancelled().to_dict())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "cancelled")


def test_cancel_during_a_copy_that_fails_for_good_still_ends_as_cancelled() -> None:
    history = copying()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert history.step() == []
    asked = run_out(history, exhaust_retries(history, activity.STORE_VIDEO_ASSETS))
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "cancelled")


def test_a_cancel_that_loses_the_race_with_the_copy_leaves_the_completed_video() -> None:
    history = copying()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert history.step() == []
    # The record turned completed before the cancel mark could be set: the video stands.
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    assert history.step() == []
    assert history.last is not None
    assert history.last.done
    assert history.last.output["status"] == "completed"


# -- permanent answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "code"),
    [(401, "upstream_access_denied"), (403, "upstream_access_denied"), (404, "upstream_job_not_found")],
)
def test_a_permanent_status_answer_fails_the_job_at_once(http_status: int, code: str) -> None:
    history = polling()
    refused = UpstreamStatus.refused(
        UPSTREAM_ID, rejection_code(http_status, "any", keep_upstream_code=False)
    )
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), refused.to_dict())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]  # no more timers
    assert inputs_of(asked, activity.FAIL_JOB) == [{**JOB.to_dict(), "code": code, "charged": True}]
    assert_failed(history, code)


@pytest.mark.parametrize(
    ("status", "error_code", "code"),
    [
        ("failed", "video_generation_failed", "video_generation_failed"),
        ("failed", None, "video_generation_failed"),
        ("cancelled", None, "upstream_cancelled"),
        ("expired", None, "upstream_error"),
    ],
)
def test_every_upstream_status_but_queued_and_in_progress_is_final(
    status: str, error_code: str | None, code: str
) -> None:
    history = polling()
    history.episode(1).complete(
        history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream(status, error_code)
    )
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, code)


def test_an_old_result_with_upstream_text_for_a_code_fails_as_upstream_error() -> None:
    # Recorded before codes were checked where they are read: the upstream's text as the code.
    history = polling()
    old_check = {**finished_upstream("failed"), "error_code": "GET /videos/up_1: 500 boom"}
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), old_check)
    new = history.step()
    assert inputs_of(new, activity.FAIL_JOB) == [{**JOB.to_dict(), "code": "upstream_error", "charged": True}]
    run_out(history, new)
    assert_failed(history, "upstream_error")


def test_a_refused_create_keeps_the_slot_but_an_access_refusal_gives_it_back() -> None:
    history = reserved()
    refused = UpstreamStatus.refused(None, "content_policy_violation").to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), refused)
    assert describe(run_out(history, history.step())) == [activity.FAIL_JOB]
    assert_failed(history, "content_policy_violation")

    history = reserved()
    denied = UpstreamStatus.refused(None, rejection_code(401, "invalid_api_key", keep_upstream_code=True))
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), denied.to_dict())
    assert describe(run_out(history, history.step())) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "upstream_access_denied")


def test_an_ambiguous_create_is_never_retried_and_gives_the_slot_back() -> None:
    history = reserved()
    ambiguous = UpstreamStatus.refused(None, "upstream_ambiguous").to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), ambiguous)
    # No second create, no upstream job to delete: refund, then the record.
    assert describe(run_out(history, history.step())) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "upstream_ambiguous")


# -- failures after retries --------------------------------------------------------------------


def test_reserve_failing_after_its_retries_refunds_and_fails_the_job() -> None:
    history = started()
    asked = run_out(history, exhaust_retries(history, activity.RESERVE_UPSTREAM_SLOT))
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "storage_unavailable")


def stay_on_route(history: History, exhausted: bool = False) -> list[Leaf]:
    """The create failed through its retries and the orchestrator asked to move the job on;
    the answer: no route to move to. Returns what the orchestrator asks next."""
    history.episode(1).complete(
        history.task(activity.MOVE_TO_NEXT_ROUTE), {"moved": False, "exhausted": exhausted}
    )
    return history.step()


def test_create_failing_after_its_retries_refunds_and_fails_the_job() -> None:
    history = reserved()
    assert describe(exhaust_retries(history, activity.CREATE_UPSTREAM_JOB)) == [activity.MOVE_TO_NEXT_ROUTE]
    asked = run_out(history, stay_on_route(history))
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "upstream_unavailable")
    # The extension's failure text (activity and exception names) reaches nothing an app reads.
    assert history.last is not None
    everything = json.dumps([leaf.input for leaf in history.leaves]) + json.dumps(history.last.output)
    assert "create_upstream_job" not in everything
    assert "UpstreamTransientError" not in everything


def test_store_failing_after_its_retries_fails_the_job_and_deletes_the_upstream_job() -> None:
    history = copying(JobRun(job=JOB, poll=RUN.poll, timeout_minutes=10.0, webhook_delays=(1.0,)))
    asked = run_out(history, exhaust_retries(history, activity.STORE_VIDEO_ASSETS))
    # Not left in progress: the record fails (its blobs go with it), the upstream job is deleted,
    # and the webhook tells the app.
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB, activity.DELIVER_WEBHOOK]
    assert_failed(history, "upstream_unavailable")


def test_a_status_check_failing_after_its_retries_keeps_polling() -> None:
    history = polling()
    assert describe(exhaust_retries(history, activity.CHECK_UPSTREAM_JOB)) == [TIMER]
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.CHECK_UPSTREAM_JOB]
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream())
    assert describe(history.step()) == [activity.STORE_VIDEO_ASSETS]


def test_the_deadline_after_failed_checks_says_the_upstream_was_unavailable() -> None:
    history = polling()
    assert describe(exhaust_retries(history, activity.CHECK_UPSTREAM_JOB)) == [TIMER]
    history.fire(history.last_timer(), late=600)  # past the 10-minute deadline
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "upstream_unavailable")


def test_the_deadline_while_the_upstream_works_is_a_timeout() -> None:
    history = created()
    history.fire(history.last_timer(), late=600)
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "timeout")


def test_the_deadline_before_the_jobs_turn_is_a_timeout_that_gives_the_slot_back() -> None:
    """The job's turn with its provider (the gateway's pacing) is an hour away, its deadline ten
    minutes: the wait is cut at the deadline, and as the upstream never had the job, its slot goes
    back before the record turns final."""
    history = started()
    turn = START + timedelta(hours=1)
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), turn.timestamp())
    new = history.step()
    assert describe(new) == [TIMER]
    assert new[0].fire_at == timestamp(START + timedelta(minutes=RUN.timeout_minutes))
    history.fire(history.last_timer())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert inputs_of(asked, activity.RELEASE_QUOTA_SLOT) == [JOB.to_dict()]
    assert inputs_of(asked, activity.FAIL_JOB) == [{**JOB.to_dict(), "code": "timeout", "charged": False}]
    assert_failed(history, "timeout")


def test_throttled_at_create_until_the_deadline_is_a_timeout_that_gives_the_slot_back() -> None:
    """The provider answers the create with 429 (no job made) and a Retry-After past the deadline:
    the job times out without the upstream ever having accepted it, so its slot goes back."""
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 3600).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    new = history.step()
    assert describe(new) == [TIMER]
    assert new[0].fire_at == timestamp(START + timedelta(minutes=RUN.timeout_minutes))
    history.fire(history.last_timer())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "timeout")


def test_delete_failing_after_its_retries_still_ends_the_orchestration() -> None:
    history = created()
    history.episode(1).raise_event(CANCEL_EVENT)
    assert describe(history.step()) == [activity.FAIL_JOB]
    history.episode(1).complete(history.task(activity.FAIL_JOB))
    assert describe(history.step()) == [activity.DELETE_UPSTREAM_JOB]
    assert exhaust_retries(history, activity.DELETE_UPSTREAM_JOB) == []
    assert_failed(history, "cancelled")


def test_release_failing_after_its_retries_still_fails_the_job() -> None:
    history = reserved()
    assert describe(exhaust_retries(history, activity.CREATE_UPSTREAM_JOB)) == [activity.MOVE_TO_NEXT_ROUTE]
    assert describe(stay_on_route(history)) == [activity.RELEASE_QUOTA_SLOT]
    new = exhaust_retries(history, activity.RELEASE_QUOTA_SLOT)
    assert describe(run_out(history, new)) == [activity.FAIL_JOB]
    assert_failed(history, "upstream_unavailable")


def test_fail_job_failing_after_its_retries_still_ends_with_a_failed_output() -> None:
    history = polling()
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream("failed"))
    assert describe(history.step()) == [activity.FAIL_JOB]
    new = exhaust_retries(history, activity.FAIL_JOB)
    assert describe(run_out(history, new)) == [activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "video_generation_failed", recorded=False)


def test_a_malformed_activity_result_is_an_internal_error_not_a_stuck_job() -> None:
    history = reserved()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), {"unexpected": True})
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "internal_error")


# -- throttling --------------------------------------------------------------------------------


def test_a_429_during_the_copy_is_waited_out_on_a_timer() -> None:
    history = copying()
    store = history.task(activity.STORE_VIDEO_ASSETS)
    history.episode(1).complete(store, StoreOutcome.throttled(7).to_dict())
    new = history.step()
    assert describe(new) == [TIMER]
    assert new[0].fire_at == timestamp(history.now + timedelta(seconds=7))
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.STORE_VIDEO_ASSETS]
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    history.step()
    assert history.last is not None
    assert history.last.output["status"] == "completed"


def test_a_permanent_refusal_of_the_content_fails_the_job() -> None:
    history = copying()
    outcome = StoreOutcome.failed(rejection_code(404, "video_expired", keep_upstream_code=False))
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), outcome.to_dict())
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "upstream_job_not_found")


# -- what apps read ---------------------------------------------------------------------------


def test_failure_messages_are_sentences_for_apps() -> None:
    for code, message in FAILURE_MESSAGES.items():
        assert message.endswith("."), code
        assert message[0].isupper(), code
        assert "_" not in message, code  # no function, activity or code names
        assert "Error" not in message, code
    assert failure_message("some_upstream_code") == "The video could not be generated."
    assert "Activity" not in failure_message(TRANSIENT)


# -- routes -------------------------------------------------------------------------------------


def test_a_create_that_moved_the_job_to_the_next_route_takes_a_turn_there_and_creates_again() -> None:
    history = reserved()
    history.episode(1).complete(
        history.task(activity.CREATE_UPSTREAM_JOB), UpstreamStatus.moved_on().to_dict()
    )
    # A turn at the new route's provider first (its pacing is its own), then the create there.
    assert describe(history.step()) == [activity.RESERVE_UPSTREAM_SLOT]
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), history.now.timestamp())
    assert describe(history.step()) == [activity.CREATE_UPSTREAM_JOB]
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), running())
    assert describe(history.step()) == [TIMER]  # bound to that provider now: polling


def test_retries_exhausted_at_one_route_move_the_job_to_the_next() -> None:
    history = reserved()
    assert describe(exhaust_retries(history, activity.CREATE_UPSTREAM_JOB)) == [activity.MOVE_TO_NEXT_ROUTE]
    history.episode(1).complete(
        history.task(activity.MOVE_TO_NEXT_ROUTE), {"moved": True, "exhausted": False}
    )
    assert describe(history.step()) == [activity.RESERVE_UPSTREAM_SLOT]


def test_no_route_left_fails_the_job_as_such_and_gives_the_slot_back() -> None:
    history = reserved()
    assert describe(exhaust_retries(history, activity.CREATE_UPSTREAM_JOB)) == [activity.MOVE_TO_NEXT_ROUTE]
    asked = run_out(history, stay_on_route(history, exhausted=True))
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "no_route_available")


def test_a_refusal_naming_no_route_gives_the_slot_back() -> None:
    history = reserved()
    history.episode(1).complete(
        history.task(activity.CREATE_UPSTREAM_JOB),
        UpstreamStatus.refused(None, "no_route_available").to_dict(),
    )
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.RELEASE_QUOTA_SLOT, activity.FAIL_JOB]
    assert_failed(history, "no_route_available")


def test_a_cancel_while_moving_routes_stops_the_job() -> None:
    history = reserved()
    assert describe(exhaust_retries(history, activity.CREATE_UPSTREAM_JOB)) == [activity.MOVE_TO_NEXT_ROUTE]
    history.episode(1).raise_event(CANCEL_EVENT)
    history.complete(history.task(activity.MOVE_TO_NEXT_ROUTE), {"moved": True, "exhausted": False})
    asked = run_out(history, history.step())
    assert activity.CREATE_UPSTREAM_JOB not in describe(asked)
    assert describe(asked)[-1] == activity.FAIL_JOB
    assert_failed(history, "cancelled")


def test_throttled_past_the_routes_max_wait_moves_the_job_to_the_next_route() -> None:
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 3, max_wait=5).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    assert describe(history.step()) == [TIMER]  # 0 + 3 s is within 5 s: wait it out
    history.episode(3).fire(history.last_timer())
    assert describe(history.step()) == [activity.CREATE_UPSTREAM_JOB]
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    # 4 s waited and 3 more asked: past 5 s, so the next route instead of another wait.
    assert describe(history.step()) == [activity.MOVE_TO_NEXT_ROUTE]
    history.episode(1).complete(
        history.task(activity.MOVE_TO_NEXT_ROUTE), {"moved": True, "exhausted": False}
    )
    assert describe(history.step()) == [activity.RESERVE_UPSTREAM_SLOT]


def test_throttled_past_max_wait_with_nowhere_to_go_keeps_waiting() -> None:
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 10, max_wait=5).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    assert describe(history.step()) == [activity.MOVE_TO_NEXT_ROUTE]
    history.episode(1).complete(
        history.task(activity.MOVE_TO_NEXT_ROUTE), {"moved": False, "exhausted": False}
    )
    assert describe(history.step()) == [TIMER]


def test_throttling_without_a_max_wait_never_asks_to_move() -> None:
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 30).to_dict()
    for _ in range(3):
        history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
        assert describe(history.step()) == [TIMER]
        history.episode(30).fire(history.last_timer())
        assert describe(history.step()) == [activity.CREATE_UPSTREAM_JOB]


def test_the_webhook_is_tried_once_more_after_each_delay_and_no_more() -> None:
    run = JobRun(job=JOB, poll=RUN.poll, timeout_minutes=10.0, webhook_delays=(2.0, 5.0))
    history = copying(run)
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    assert describe(history.step()) == [activity.DELIVER_WEBHOOK]
    delivery = {"app_id": "app_1", "job_id": "video_1", "event_id": "evt_video_1"}
    assert inputs_of(history.leaves, activity.DELIVER_WEBHOOK) == [delivery]

    history.episode(1).complete(history.task(activity.DELIVER_WEBHOOK), False)  # the app did not take it
    assert describe(history.step()) == [TIMER]
    assert history.timer_leaf(history.last_timer()).fire_at == timestamp(history.now + timedelta(seconds=2))
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.DELIVER_WEBHOOK]

    history.episode(1)
    history.fail(history.task(activity.DELIVER_WEBHOOK))  # our own failure counts as an attempt
    assert describe(history.step()) == [TIMER]
    assert history.timer_leaf(history.last_timer()).fire_at == timestamp(history.now + timedelta(seconds=5))
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.DELIVER_WEBHOOK]

    history.episode(1).complete(history.task(activity.DELIVER_WEBHOOK), False)
    assert history.step() == []  # three attempts: done, whatever the last one answered
    assert history.last is not None
    assert history.last.done
    assert inputs_of(history.leaves, activity.DELIVER_WEBHOOK) == [delivery] * 3


def test_a_delivered_webhook_is_not_sent_again() -> None:
    run = JobRun(job=JOB, poll=RUN.poll, timeout_minutes=10.0, webhook_delays=(2.0,))
    history = copying(run)
    history.episode(1).complete(history.task(activity.STORE_VIDEO_ASSETS), STORED)
    assert describe(history.step()) == [activity.DELIVER_WEBHOOK]
    history.episode(1).complete(history.task(activity.DELIVER_WEBHOOK), True)
    assert history.step() == []
    assert history.last is not None
    assert history.last.done


# -- decisions pinned by mutation testing ------------------------------------------------------


def test_a_create_that_finds_the_job_cancelled_ends_it_as_cancelled() -> None:
    history = reserved()
    history.episode(1).complete(
        history.task(activity.CREATE_UPSTREAM_JOB), UpstreamStatus.job_cancelled(None).to_dict()
    )
    run_out(history, history.step())
    assert_failed(history, "cancelled")


def test_a_status_check_that_finds_the_job_cancelled_ends_it_as_cancelled() -> None:
    history = polling()
    history.episode(1).complete(
        history.task(activity.CHECK_UPSTREAM_JOB), UpstreamStatus.job_cancelled(UPSTREAM_ID).to_dict()
    )
    asked = run_out(history, history.step())
    assert describe(asked) == [activity.FAIL_JOB, activity.DELETE_UPSTREAM_JOB]
    assert_failed(history, "cancelled")


def test_a_check_that_succeeds_after_failed_ones_makes_a_later_deadline_a_timeout() -> None:
    """The upstream answered again: running out of time after that is the job being slow
    (`timeout`), not the upstream being unreachable."""
    history = polling()
    assert describe(exhaust_retries(history, activity.CHECK_UPSTREAM_JOB)) == [TIMER]
    history.fire(history.last_timer())
    assert describe(history.step()) == [activity.CHECK_UPSTREAM_JOB]
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), running(20))
    assert describe(history.step()) == [TIMER]
    history.fire(history.last_timer(), late=600)  # past the 10-minute deadline
    run_out(history, history.step())
    assert_failed(history, "timeout")


def test_throttled_to_exactly_the_routes_max_wait_still_waits() -> None:
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 5, max_wait=5).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    assert describe(history.step()) == [TIMER]  # 0 + 5 s is not past 5 s


def test_moving_to_the_next_route_is_asked_for_this_job_with_storage_retries() -> None:
    # Throttled past the route's max wait, and a create that failed for good: both moves.
    history = reserved()
    throttled = UpstreamStatus.throttled(None, 10, max_wait=5).to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), throttled)
    after_throttling = history.step()
    failed_for_good = exhaust_retries(reserved(), activity.CREATE_UPSTREAM_JOB)
    for leaves in (after_throttling, failed_for_good):
        assert describe(leaves) == [activity.MOVE_TO_NEXT_ROUTE]
        assert leaves[0].input == JOB.to_dict()
        assert leaves[0].retry is not None
        assert leaves[0].retry["maxNumberOfAttempts"] == 5


def test_an_input_recorded_before_webhook_delays_existed_has_no_webhook() -> None:
    """Orchestrations started by an older version carry inputs without the field."""
    recorded = {key: value for key, value in RUN.to_dict().items() if key != "webhook_delays"}
    assert JobRun.from_dict(recorded).webhook_delays == ()


def test_each_checks_progress_sets_the_wait_before_the_next_check() -> None:
    history = polling()
    answered = running(60)
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), answered)
    new = history.step()
    assert describe(new) == [TIMER]
    delay = RUN.poll.next_delay(UpstreamStatus.from_dict(answered).progress_track)
    assert delay != RUN.poll.next_delay(UpstreamStatus.from_dict(running()).progress_track)  # it tells
    assert new[0].fire_at == timestamp(history.now + timedelta(seconds=delay))


def test_the_next_check_waits_until_the_time_the_planner_chose() -> None:
    """The check activity reads the learned durations and answers when to look again
    (`check_at`); the orchestrator sleeps until exactly then, not by its own estimate."""
    history = polling()
    planned = history.now + timedelta(seconds=42.5)
    answered = {**running(60), "check_at": planned.timestamp()}
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), answered)
    new = history.step()
    assert describe(new) == [TIMER]
    assert new[0].fire_at == timestamp(planned)


def test_a_planned_time_already_past_falls_back_to_the_tracks_estimate() -> None:
    """A check that failed leaves the previous answer's `check_at` behind: waiting until a time
    already past would check again at once, so the wait is timed from the track instead."""
    history = polling()
    answered = {**running(60), "check_at": (history.now - timedelta(seconds=1)).timestamp()}
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), answered)
    new = history.step()
    delay = RUN.poll.next_delay(UpstreamStatus.from_dict(answered).progress_track)
    assert new[0].fire_at == timestamp(history.now + timedelta(seconds=delay))
