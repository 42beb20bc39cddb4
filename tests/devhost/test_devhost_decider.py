"""The decider's bookkeeping of task numbers, checked directly on orchestrator answers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from devhost.decider import EngineState, decide, triggers_retry_work
from devhost.history import EventType, new_event

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def activity(name: str, retry: bool = False) -> dict[str, Any]:
    action: dict[str, Any] = {"actionType": 1 if retry else 0, "functionName": name, "input": "null"}
    if retry:
        action["retryOptions"] = {"firstRetryIntervalInMilliseconds": 500, "maxNumberOfAttempts": 2}
        return {"actionType": 12, "compoundActions": [action]}
    return action


def timer(cancelled: bool = False) -> dict[str, Any]:
    return {"actionType": 5, "fireAt": "2024-05-01T12:00:05.000000Z", "isCanceled": cancelled}


def answer(*actions: dict[str, Any], done: bool = False, output: Any = None) -> dict[str, Any]:
    return {"isDone": done, "actions": [list(actions)], "output": output}


def test_new_actions_are_numbered_in_order_compound_children_depth_first() -> None:
    state = EngineState()
    wait = {"actionType": 6, "externalEventName": "go"}
    race = {"actionType": 11, "compoundActions": [wait, timer()]}
    decision = decide(state, [], answer(activity("a"), race, activity("b")), None, NOW)
    assert [(e["EventType"], e["EventId"]) for e in decision.events] == [
        (EventType.TASK_SCHEDULED, 0),
        (EventType.TIMER_CREATED, 1),
        (EventType.TASK_SCHEDULED, 2),
    ]
    assert state.leaf_ids == [[0], [None, 1], [2]]


def test_retry_work_is_numbered_before_the_new_actions_of_the_same_episode() -> None:
    state = EngineState()
    decide(state, [], answer(activity("flaky", retry=True)), None, NOW)
    failure = new_event(EventType.TASK_FAILED, "t", TaskScheduledId=0, Reason="x", Details="")
    assert triggers_retry_work(state, failure)
    decision = decide(state, [failure], answer(activity("flaky", retry=True), activity("other")), None, NOW)
    assert [(e["EventType"], e["EventId"]) for e in decision.events] == [
        (EventType.TIMER_CREATED, 1),
        (EventType.TASK_SCHEDULED, 2),
    ]
    assert decision.timers[0].fire_at == "2024-05-01T12:00:00.500000Z"

    fired = new_event(EventType.TIMER_FIRED, "t", TimerId=1)
    assert triggers_retry_work(state, fired)
    decision = decide(state, [fired], answer(activity("flaky", retry=True), activity("other")), None, NOW)
    assert [(e["EventType"], e["EventId"], e.get("Name")) for e in decision.events] == [
        (EventType.TASK_SCHEDULED, 3, "flaky")
    ]
    # The second attempt is the last one: its failure gets a timer, that timer nothing more.
    last_failure = new_event(EventType.TASK_FAILED, "t", TaskScheduledId=3, Reason="x", Details="")
    decide(state, [last_failure], answer(activity("flaky", retry=True), activity("other")), None, NOW)
    assert not triggers_retry_work(state, new_event(EventType.TIMER_FIRED, "t", TimerId=4))


def test_timer_cancelled_in_a_later_episode_is_reported_once() -> None:
    state = EngineState()
    decide(state, [], answer(timer()), None, NOW)
    decision = decide(state, [], answer(timer(cancelled=True)), None, NOW)
    assert decision.cancelled_timers == [0]
    assert decide(state, [], answer(timer(cancelled=True)), None, NOW).cancelled_timers == []


def test_changed_action_history_is_reported_as_non_deterministic() -> None:
    state = EngineState()
    decide(state, [], answer(activity("a")), None, NOW)
    decision = decide(state, [], answer(activity("b")), None, NOW)
    assert decision.status == "Failed"
    assert "Non-deterministic" in decision.output


def test_unsupported_actions_fail_the_instance_with_a_reason() -> None:
    sub_orchestration = {"actionType": 2, "functionName": "child", "input": "null"}
    decision = decide(EngineState(), [], answer(sub_orchestration), None, NOW)
    assert decision.status == "Failed"
    assert "sub-orchestrations" in decision.output


def test_completion_and_continue_as_new() -> None:
    done = decide(EngineState(), [], answer(done=True, output={"x": 1}), None, NOW)
    assert done.status == "Completed"
    assert done.output == {"x": 1}
    assert done.events[-1]["Result"] == '{"x": 1}'
    again = decide(EngineState(), [], answer({"actionType": 4, "input": "5"}, done=True), None, NOW)
    assert again.status == "ContinuedAsNew"
    assert again.continue_input == "5"


def test_state_round_trips_through_json() -> None:
    state = EngineState()
    decide(state, [], answer(activity("flaky", retry=True), timer()), None, NOW)
    restored = EngineState.from_json(state.to_json())
    assert restored == state
