"""The charge policy, replayed through the real Durable library: the count slot (released or
kept by the orchestration) and the money (`charged` handed to fail_job, which settles or
releases it) follow the one rule of gateway.charges, for every outcome and both policies."""

from __future__ import annotations

import pytest

from activities import names as activity
from gateway.budgets import ChargePolicy
from gateway.charges import COMPLETED, FAILED, NOT_ACCEPTED, OUTCOMES, REFUSED, charged
from gateway.messages import UpstreamStatus
from orchestrators.generate_video import JobRun
from orchestrators.names import CANCEL_EVENT
from tests.orchestrators.history import History
from tests.orchestrators.test_generate_video import (
    JOB,
    RUN,
    describe,
    finished_upstream,
    inputs_of,
    polling,
    reserved,
    run_out,
)

POLICIES = [
    ChargePolicy(),
    ChargePolicy(refused=False),
    ChargePolicy(failed=False),
    ChargePolicy(False, False),
]


def test_the_default_policy() -> None:
    policy = ChargePolicy()
    assert {outcome: charged(outcome, policy) for outcome in OUTCOMES} == {
        COMPLETED: True,
        NOT_ACCEPTED: False,
        REFUSED: True,
        FAILED: True,
    }
    assert charged(REFUSED, ChargePolicy(refused=False)) is False
    assert charged(FAILED, ChargePolicy(failed=False)) is False
    with pytest.raises(ValueError, match="unknown outcome"):
        charged("lost", policy)


def _refused(run: JobRun) -> History:
    history = reserved(run)
    refusal = UpstreamStatus.refused(None, "content_policy_violation").to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), refusal)
    return history


def _denied(run: JobRun) -> History:
    history = reserved(run)
    denied = UpstreamStatus.refused(None, "upstream_access_denied").to_dict()
    history.episode(1).complete(history.task(activity.CREATE_UPSTREAM_JOB), denied)
    return history


def _failed_upstream(run: JobRun) -> History:
    history = polling(run)
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream("failed"))
    return history


def _cancelled_while_queued(run: JobRun) -> History:
    history = History(run.to_dict())
    history.raise_event(CANCEL_EVENT)
    history.step()
    history.episode(1).complete(history.task(activity.RESERVE_UPSTREAM_SLOT), history.now.timestamp())
    return history


def _cancelled_while_rendering(run: JobRun) -> History:
    history = polling(run)
    history.episode(1).raise_event(CANCEL_EVENT)
    history.step()
    history.episode(1).complete(history.task(activity.CHECK_UPSTREAM_JOB), finished_upstream("in_progress"))
    return history


SCENARIOS = {
    "content refusal": (_refused, REFUSED),
    "access denied": (_denied, NOT_ACCEPTED),
    "failed upstream": (_failed_upstream, FAILED),
    "cancelled while queued": (_cancelled_while_queued, NOT_ACCEPTED),
    "cancelled while rendering": (_cancelled_while_rendering, FAILED),
}


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_slot_and_money_follow_the_one_rule(scenario: str, policy: ChargePolicy) -> None:
    build, outcome = SCENARIOS[scenario]
    history = build(JobRun(job=JOB, poll=RUN.poll, timeout_minutes=RUN.timeout_minutes, charges=policy))
    asked = run_out(history, history.step())

    expected = charged(outcome, policy)
    slot_released = activity.RELEASE_QUOTA_SLOT in describe(asked)
    (failure,) = inputs_of(asked, activity.FAIL_JOB)
    assert slot_released is not expected  # the count: released exactly when not charged
    assert failure["charged"] is expected  # the money: fail_job settles or releases it alike


def test_a_history_from_before_budgets_replays_with_the_default_policy() -> None:
    old_input = {key: value for key, value in RUN.to_dict().items() if key != "charges"}
    assert JobRun.from_dict(old_input).charges == ChargePolicy()
