"""Orchestration histories shaped like the Durable extension's, replayed through the real library.

A `History` is written the way the extension writes one: every episode starts with
OrchestratorStarted and ends with OrchestratorCompleted; the orchestrator's new actions become
TaskScheduled / TimerCreated events numbered from the library's sequence counter, in the order the
orchestrator yielded them (an external-event wait takes no number); an activity called with retry
that fails gets a retry TimerCreated in the same episode and, when that timer fires, a new
TaskScheduled (also after the last attempt the extension creates the timer, and only when it fires
does the task fail). The test decides what happens in between: completions, failures, fired
timers, raised events.

Each replay runs the orchestrator the way the Python worker does (the function the Blueprint
registered, called with what `OrchestrationTriggerConverter` decodes) and checks that the
cumulative action list starts with every action of the earlier episodes: a replay that changes
its past is non-deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import azure.durable_functions as df
from azure.functions import meta
from azure.functions.durable_functions import OrchestrationTriggerConverter

from orchestrators import generate_video
from orchestrators.names import GENERATE_VIDEO

# Event types (DurableTask.Core.History.EventType).
EXECUTION_STARTED = 0
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15

# Action types of the out-of-process protocol.
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
WHEN_ANY = 11
WHEN_ALL = 12

START = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
# What the extension's Reason carries after "Activity function '<name>' failed: ".
TRANSIENT = "UpstreamTransientError: GET /videos/up_1: 503 The service is temporarily unavailable."


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@cache
def orchestrator() -> Any:
    """The function the Blueprint registered, as the worker indexes it (get_functions runs once)."""
    app = df.DFApp()
    app.register_functions(generate_video.bp)
    (function,) = [f for f in app.get_functions() if f.get_function_name() == GENERATE_VIDEO]
    return function.get_user_function()


@dataclass(frozen=True)
class Leaf:
    """One atomic action: an activity call, a timer or an external-event wait."""

    kind: int
    name: str | None = None  # activity function or event name
    input: Any = None  # the activity's input, decoded
    fire_at: str | None = None
    cancelled: bool = False
    retry: dict[str, Any] | None = None

    @property
    def signature(self) -> tuple[Any, ...]:
        # A timer may be cancelled in a later episode; everything else must never change.
        return (self.kind, self.name, json.dumps(self.input, sort_keys=True), self.fire_at)

    @property
    def numbered(self) -> bool:
        return self.kind != WAIT_FOR_EXTERNAL_EVENT


@dataclass(frozen=True)
class State:
    """What one replay answered: {isDone, actions, output, error, customStatus}."""

    raw: dict[str, Any]
    leaves: list[Leaf]

    @property
    def done(self) -> bool:
        return bool(self.raw.get("isDone"))

    @property
    def output(self) -> Any:
        return self.raw.get("output")

    @property
    def error(self) -> Any:
        return self.raw.get("error")


@dataclass
class _Scheduled:
    """A numbered leaf, where the action list has it (None for the extension's own retry work)
    and, for a call with retry, how many attempts it has had."""

    leaf: Leaf
    position: int | None = None
    attempts: int = 1


@dataclass
class History:
    orchestration_input: dict[str, Any]
    instance_id: str = "video_1"
    now: datetime = START
    events: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)  # every action leaf so far, in order
    ids: dict[int, _Scheduled] = field(default_factory=dict)  # task id -> what it is
    retry_timers: dict[int, int] = field(default_factory=dict)  # retry timer id -> first attempt id
    attempt_of: dict[int, int] = field(default_factory=dict)  # attempt id -> first attempt id
    next_id: int = 0
    last: State | None = None  # what the latest replay answered
    _open: bool = False

    def __post_init__(self) -> None:
        self.episode()
        self._add(
            EXECUTION_STARTED, Name=GENERATE_VIDEO, Input=json.dumps(self.orchestration_input), Version=""
        )

    # -- writing events -----------------------------------------------------------------

    def episode(self, after: float = 0.0) -> History:
        """Start a new episode `after` seconds later (closing the open one)."""
        if self._open:
            self._add(ORCHESTRATOR_COMPLETED)
        self.now += timedelta(seconds=after)
        self._add(ORCHESTRATOR_STARTED)
        self._open = True
        return self

    def complete(self, task_id: int, result: Any = None) -> History:
        self._require_activity(task_id)
        self._add(TASK_COMPLETED, TaskScheduledId=task_id, Result=json.dumps(result))
        return self

    def fail(self, task_id: int, message: str = TRANSIENT) -> int | None:
        """The activity failed once. For a call with retry the extension creates its retry timer
        in the same episode: its id is returned."""
        scheduled = self._require_activity(task_id)
        self._add(
            TASK_FAILED,
            TaskScheduledId=task_id,
            Reason=f"Activity function '{scheduled.leaf.name}' failed: {message}",
            Details=f"{message}\n   at Microsoft.Azure.WebJobs.Host.Executors.FunctionExecutor (internal)",
        )
        if scheduled.leaf.retry is None:
            return None
        interval = int(scheduled.leaf.retry["firstRetryIntervalInMilliseconds"])
        fire_at = timestamp(self.now + timedelta(milliseconds=interval))
        timer_id = self._number(Leaf(CREATE_TIMER, fire_at=fire_at))
        self.retry_timers[timer_id] = self.attempt_of.get(task_id, task_id)
        self._add(TIMER_CREATED, timer_id, FireAt=fire_at)
        return timer_id

    def fire(self, timer_id: int, late: float = 0.0) -> int | None:
        """Fire a timer in a new episode at its time (`late` seconds after it); a retry timer
        re-schedules its activity unless that was the last attempt. Returns the new attempt's id."""
        timer = self.ids[timer_id].leaf
        assert timer.kind == CREATE_TIMER
        assert timer.fire_at is not None
        fire_at = datetime.fromisoformat(timer.fire_at.replace("Z", "+00:00"))
        self.episode(max((fire_at - self.now).total_seconds(), 0.0) + late)
        self._add(TIMER_FIRED, TimerId=timer_id, FireAt=timer.fire_at)
        first = self.retry_timers.get(timer_id)
        if first is None:
            return None
        group = self.ids[first]
        assert group.leaf.retry is not None
        if group.attempts >= int(group.leaf.retry["maxNumberOfAttempts"]):
            return None
        group.attempts += 1
        attempt = self._number(group.leaf)
        self.attempt_of[attempt] = first
        self._add(TASK_SCHEDULED, attempt, Name=group.leaf.name, Input=json.dumps(group.leaf.input))
        return attempt

    def raise_event(self, name: str, data: Any = None) -> History:
        self._add(EVENT_RAISED, Name=name, Input=json.dumps(data))
        return self

    # -- replaying ------------------------------------------------------------------------

    def replay(self) -> State:
        """Run the orchestrator over the history; every episode before the open one is played."""
        last_start = max(i for i, e in enumerate(self.events) if e["EventType"] == ORCHESTRATOR_STARTED)
        history = [{**event, "IsPlayed": index < last_start} for index, event in enumerate(self.events)]
        context_json = json.dumps(
            {
                "history": history,
                "instanceId": self.instance_id,
                "isReplaying": last_start > 0,
                "parentInstanceId": None,
                "input": self.orchestration_input,
                "upperSchemaVersion": 2,
            }
        )
        context = OrchestrationTriggerConverter.decode(
            meta.Datum(type="json", value=context_json), trigger_metadata=None
        )
        result = orchestrator()(context)  # raises when the orchestrator itself failed
        datum = OrchestrationTriggerConverter.encode(result, expected_type=None)
        raw = json.loads(str(datum.value))
        leaves = [leaf for action in _flatten(raw.get("actions")) for leaf in _leaves(action)]
        for index, (before, now) in enumerate(zip(self.leaves, leaves, strict=False)):
            assert before.signature == now.signature, f"non-deterministic replay at action {index}"
        assert len(leaves) >= len(self.leaves), "a replay dropped earlier actions"
        return State(raw, leaves)

    def step(self) -> list[Leaf]:
        """Replay, then record the new actions as the extension would; returns those actions."""
        state = self.replay()
        assert state.error is None, state.error
        self.last = state
        return self.accept(state)

    def accept(self, state: State) -> list[Leaf]:
        new = state.leaves[len(self.leaves) :]
        for position, leaf in enumerate(new, start=len(self.leaves)):
            if not leaf.numbered:
                continue
            task_id = self._number(leaf, position)
            if leaf.kind == CREATE_TIMER:
                if not leaf.cancelled:  # cancelled before it was ever created: numbered, not created
                    self._add(TIMER_CREATED, task_id, FireAt=leaf.fire_at)
            else:
                self._add(TASK_SCHEDULED, task_id, Name=leaf.name, Input=json.dumps(leaf.input))
        self.leaves = list(state.leaves)
        return new

    # -- looking things up ------------------------------------------------------------------

    def task(self, name: str) -> int:
        """The id of the latest attempt of the latest call of activity `name`."""
        found = [i for i, s in self.ids.items() if s.leaf.kind != CREATE_TIMER and s.leaf.name == name]
        assert found, f"{name} was never scheduled"
        return max(found)

    def last_timer(self) -> int:
        timers = [
            i for i, s in self.ids.items() if s.leaf.kind == CREATE_TIMER and i not in self.retry_timers
        ]
        assert timers, "no timer was created"
        return max(timers)

    def timer_leaf(self, timer_id: int) -> Leaf:
        """A timer's action as the latest replay shows it (cancelled or not)."""
        position = self.ids[timer_id].position
        assert position is not None, f"timer {timer_id} is the extension's retry timer"
        return self.leaves[position]

    # -- internals ----------------------------------------------------------------------------

    def _number(self, leaf: Leaf, position: int | None = None) -> int:
        task_id = self.next_id
        self.next_id += 1
        self.ids[task_id] = _Scheduled(leaf, position)
        return task_id

    def _require_activity(self, task_id: int) -> _Scheduled:
        scheduled = self.ids[task_id]
        assert scheduled.leaf.kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY), (
            f"task {task_id} is no activity"
        )
        return scheduled

    def _add(self, event_type: int, event_id: int = -1, **fields: Any) -> None:
        self.events.append(
            {"EventType": event_type, "EventId": event_id, "Timestamp": timestamp(self.now), **fields}
        )


def _flatten(actions: Any) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for group in actions or []:
        flat.extend(group if isinstance(group, list) else [group])
    return flat


def _leaves(action: dict[str, Any]) -> list[Leaf]:
    kind = int(action["actionType"])
    if kind in (WHEN_ANY, WHEN_ALL):
        return [leaf for child in action["compoundActions"] for leaf in _leaves(child)]
    if kind in (CALL_ACTIVITY, CALL_ACTIVITY_WITH_RETRY):
        raw = action.get("input")
        return [
            Leaf(
                kind,
                name=action["functionName"],
                input=json.loads(raw) if isinstance(raw, str) else raw,
                retry=action.get("retryOptions"),
            )
        ]
    if kind == CREATE_TIMER:
        return [Leaf(kind, fire_at=action["fireAt"], cancelled=bool(action.get("isCanceled")))]
    if kind == WAIT_FOR_EXTERNAL_EVENT:
        return [Leaf(kind, name=action["externalEventName"])]
    raise AssertionError(f"unexpected action {action}")
