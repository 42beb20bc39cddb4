"""Turning an orchestrator's answer into history and work, the way the Durable extension does.

The durable library numbers every task it schedules from a sequence counter, and completion
events must name those numbers (TaskScheduledId, TimerId) or the orchestration waits forever.
The library assigns numbers (1) to new tasks in the order the orchestrator yields them, compound
tasks depth first, and (2) to the timer and the re-scheduled attempt of an activity called with
retry, at the moment it processes the TaskFailed / TimerFired that triggers them. This module
mirrors that counter. An episode may contain at most one event of kind (2), and only as its first
event, so that the host's order of numbering (retry work first, then the new actions) is the
library's order too; the engine picks batches with `triggers_retry_work` to guarantee it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from devhost.history import (
    ActionType,
    EventType,
    JsonDict,
    action_signature,
    consumes_sequence_number,
    flatten_actions,
    format_timestamp,
    leaf_actions,
    new_event,
)

UNSUPPORTED_ACTIONS = {
    ActionType.CALL_SUB_ORCHESTRATOR: "sub-orchestrations",
    ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY: "sub-orchestrations",
    ActionType.CALL_ENTITY: "durable entities",
    ActionType.SIGNAL_ENTITY: "durable entities",
    ActionType.CALL_HTTP: "durable HTTP calls",
}


@dataclass
class RetryGroup:
    """One call_activity_with_retry: the activity, its policy and how far it has got."""

    name: str
    input: str | None
    first_retry_ms: int
    max_attempts: int
    attempts: int = 1

    def to_json(self) -> JsonDict:
        return {
            "name": self.name,
            "input": self.input,
            "first_retry_ms": self.first_retry_ms,
            "max_attempts": self.max_attempts,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: JsonDict) -> RetryGroup:
        return cls(
            name=data["name"],
            input=data["input"],
            first_retry_ms=int(data["first_retry_ms"]),
            max_attempts=int(data["max_attempts"]),
            attempts=int(data["attempts"]),
        )


@dataclass
class EngineState:
    """The host's bookkeeping for one execution, persisted with the instance."""

    next_id: int = 0
    # One entry per top-level action seen so far: its signature and the ids of its leaves.
    signatures: list[str] = field(default_factory=list)
    leaf_ids: list[list[int | None]] = field(default_factory=list)
    groups: dict[str, RetryGroup] = field(default_factory=dict)
    retry_tasks: dict[int, str] = field(default_factory=dict)
    retry_timers: dict[int, str] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)

    def to_json(self) -> JsonDict:
        return {
            "next_id": self.next_id,
            "signatures": self.signatures,
            "leaf_ids": self.leaf_ids,
            "groups": {key: group.to_json() for key, group in self.groups.items()},
            "retry_tasks": {str(k): v for k, v in self.retry_tasks.items()},
            "retry_timers": {str(k): v for k, v in self.retry_timers.items()},
            "cancelled": sorted(self.cancelled),
        }

    @classmethod
    def from_json(cls, data: JsonDict) -> EngineState:
        return cls(
            next_id=int(data.get("next_id", 0)),
            signatures=list(data.get("signatures", [])),
            leaf_ids=[list(ids) for ids in data.get("leaf_ids", [])],
            groups={key: RetryGroup.from_json(value) for key, value in data.get("groups", {}).items()},
            retry_tasks={int(k): v for k, v in data.get("retry_tasks", {}).items()},
            retry_timers={int(k): v for k, v in data.get("retry_timers", {}).items()},
            cancelled={int(x) for x in data.get("cancelled", [])},
        )

    def take_id(self) -> int:
        taken = self.next_id
        self.next_id += 1
        return taken


@dataclass(frozen=True)
class ActivityWork:
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class TimerWork:
    timer_id: int
    fire_at: str


@dataclass
class Decision:
    """What one episode decided: events to record, work to start, and the resulting status."""

    status: str
    events: list[JsonDict] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    timers: list[TimerWork] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    output: Any = None
    custom_status: Any = None
    continue_input: Any = None

    @property
    def finished(self) -> bool:
        return self.status in ("Completed", "Failed")


def triggers_retry_work(state: EngineState, event: JsonDict) -> bool:
    """Whether processing `event` makes the library number a retry timer or a retry attempt."""
    kind = event.get("EventType")
    if kind == EventType.TASK_FAILED:
        return int(event.get("TaskScheduledId", -1)) in state.retry_tasks
    if kind == EventType.TIMER_FIRED:
        key = state.retry_timers.get(int(event.get("TimerId", -1)))
        if key is None:
            return False
        group = state.groups[key]
        # After the last attempt the library waits for one more timer and then fails the task
        # without numbering anything new.
        return group.attempts < group.max_attempts
    return False


def _retry_work(state: EngineState, event: JsonDict, now: dt.datetime, decision: Decision) -> None:
    timestamp = format_timestamp(now)
    if event.get("EventType") == EventType.TASK_FAILED:
        key = state.retry_tasks[int(event["TaskScheduledId"])]
        group = state.groups[key]
        timer_id = state.take_id()
        # Python's RetryOptions has no backoff coefficient, so every delay is the first interval;
        # the extension also creates this timer after the final attempt.
        fire_at = format_timestamp(now + dt.timedelta(milliseconds=group.first_retry_ms))
        state.retry_timers[timer_id] = key
        decision.events.append(new_event(EventType.TIMER_CREATED, timestamp, timer_id, FireAt=fire_at))
        decision.timers.append(TimerWork(timer_id, fire_at))
        return
    key = state.retry_timers[int(event["TimerId"])]
    group = state.groups[key]
    task_id = state.take_id()
    group.attempts += 1
    state.retry_tasks[task_id] = key
    decision.events.append(
        new_event(EventType.TASK_SCHEDULED, timestamp, task_id, Name=group.name, Input=group.input)
    )
    decision.activities.append(ActivityWork(task_id, group.name, group.input))


def failed(message: str, now: dt.datetime, custom_status: Any = None) -> Decision:
    event = new_event(
        EventType.EXECUTION_COMPLETED,
        format_timestamp(now),
        OrchestrationStatus="Failed",
        Result=json.dumps(message),
    )
    return Decision(status="Failed", events=[event], output=message, custom_status=custom_status)


def _schedule_leaf(
    state: EngineState, leaf: JsonDict, task_id: int, timestamp: str, decision: Decision
) -> None:
    kind = int(leaf.get("actionType", -1))
    if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
        name = str(leaf.get("functionName"))
        activity_input = leaf.get("input")
        if kind == ActionType.CALL_ACTIVITY_WITH_RETRY:
            options = leaf.get("retryOptions") or {}
            state.groups[str(task_id)] = RetryGroup(
                name=name,
                input=activity_input,
                first_retry_ms=int(options.get("firstRetryIntervalInMilliseconds", 1000)),
                max_attempts=int(options.get("maxNumberOfAttempts", 1)),
            )
            state.retry_tasks[task_id] = str(task_id)
        decision.events.append(
            new_event(EventType.TASK_SCHEDULED, timestamp, task_id, Name=name, Input=activity_input)
        )
        decision.activities.append(ActivityWork(task_id, name, activity_input))
    elif kind == ActionType.CREATE_TIMER and not leaf.get("isCanceled"):
        fire_at = str(leaf["fireAt"])
        decision.events.append(new_event(EventType.TIMER_CREATED, timestamp, task_id, FireAt=fire_at))
        decision.timers.append(TimerWork(task_id, fire_at))


def _is_cancelled_timer(leaf: JsonDict) -> bool:
    return int(leaf.get("actionType", -1)) == ActionType.CREATE_TIMER and bool(leaf.get("isCanceled"))


def _replay_mismatch(state: EngineState, actions: list[JsonDict]) -> str | None:
    """The cumulative action list must start with the actions of earlier episodes."""
    for index, signature in enumerate(state.signatures):
        seen = action_signature(actions[index]) if index < len(actions) else "nothing"
        if seen != signature:
            return (
                f"Non-deterministic workflow detected: action {index} was {signature} in an earlier "
                f"replay and is {seen} now."
            )
    return None


def _schedule_new_actions(
    state: EngineState, new_actions: list[JsonDict], timestamp: str, decision: Decision
) -> JsonDict | str | None:
    """Number and schedule the new tail of the action list.

    Returns the ContinueAsNew action if there is one, or the reason the host cannot run an action.
    """
    continue_action: JsonDict | None = None
    for action in new_actions:
        ids: list[int | None] = []
        for leaf in leaf_actions(action):
            kind = int(leaf.get("actionType", -1))
            if kind in UNSUPPORTED_ACTIONS:
                return f"The durable dev host does not support {UNSUPPORTED_ACTIONS[ActionType(kind)]}."
            if not consumes_sequence_number(leaf):
                ids.append(None)
                continue
            task_id = state.take_id()
            ids.append(task_id)
            if kind == ActionType.CONTINUE_AS_NEW:
                continue_action = leaf
            else:
                _schedule_leaf(state, leaf, task_id, timestamp, decision)
        state.signatures.append(action_signature(action))
        state.leaf_ids.append(ids)
    return continue_action


def decide(
    state: EngineState,
    batch: list[JsonDict],
    orchestrator_state: JsonDict | None,
    error: str | None,
    now: dt.datetime,
) -> Decision:
    """Record one episode's outcome. `state` is updated in place.

    Exactly one of `orchestrator_state` (the library's JSON answer) and `error` (the message of
    an orchestrator that raised) is given.
    """
    if error is not None or orchestrator_state is None:
        custom = orchestrator_state.get("customStatus") if orchestrator_state else None
        return failed(error or "The orchestrator returned no state.", now, custom)

    custom_status = orchestrator_state.get("customStatus")
    decision = Decision(status="Running", custom_status=custom_status)
    if batch and triggers_retry_work(state, batch[0]):
        _retry_work(state, batch[0], now, decision)

    actions = flatten_actions(orchestrator_state.get("actions"))
    mismatch = _replay_mismatch(state, actions)
    if mismatch is not None:
        return failed(mismatch, now, custom_status)
    timestamp = format_timestamp(now)
    scheduled = _schedule_new_actions(state, actions[len(state.signatures) :], timestamp, decision)
    if isinstance(scheduled, str):
        return failed(scheduled, now, custom_status)

    # A timer cancelled in a later episode still sits at its old place in the cumulative list,
    # now flagged isCanceled; dropping it keeps it from waking the instance.
    for action, ids in zip(actions, state.leaf_ids, strict=False):
        for leaf, leaf_id in zip(leaf_actions(action), ids, strict=False):
            if _is_cancelled_timer(leaf) and leaf_id is not None and leaf_id not in state.cancelled:
                state.cancelled.add(leaf_id)
                decision.cancelled_timers.append(leaf_id)

    if orchestrator_state.get("isDone"):
        if scheduled is not None:
            decision.status = "ContinuedAsNew"
            decision.continue_input = scheduled.get("input")
            return decision
        output = orchestrator_state.get("output")
        decision.status = "Completed"
        decision.output = output
        decision.events.append(
            new_event(
                EventType.EXECUTION_COMPLETED,
                timestamp,
                OrchestrationStatus="Completed",
                Result=json.dumps(output),
            )
        )
    return decision
