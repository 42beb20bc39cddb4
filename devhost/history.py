"""History events and orchestrator actions in the shapes the Durable extension uses.

The durable library replays an orchestration from a list of history events and answers with a
list of actions. This module is the single place that knows the wire names and numbers of both,
and the one timestamp format the host writes everywhere.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from typing import Any

JsonDict = dict[str, Any]

# The library formats timer fire times with this exact pattern, so the host uses it too.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


# Names the status API shows for event types (DurableTask's EventType enum spelling).
EVENT_TYPE_NAMES: dict[int, str] = {
    0: "ExecutionStarted",
    1: "ExecutionCompleted",
    2: "ExecutionFailed",
    3: "ExecutionTerminated",
    4: "TaskScheduled",
    5: "TaskCompleted",
    6: "TaskFailed",
    7: "SubOrchestrationInstanceCreated",
    8: "SubOrchestrationInstanceCompleted",
    9: "SubOrchestrationInstanceFailed",
    10: "TimerCreated",
    11: "TimerFired",
    12: "OrchestratorStarted",
    13: "OrchestratorCompleted",
    14: "EventSent",
    15: "EventRaised",
    16: "ContinueAsNew",
    17: "GenericEvent",
    18: "HistoryState",
    19: "ExecutionSuspended",
    20: "ExecutionResumed",
}


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


ACTION_TYPE_NAMES: dict[int, str] = {
    0: "CallActivity",
    1: "CallActivityWithRetry",
    2: "CallSubOrchestrator",
    3: "CallSubOrchestratorWithRetry",
    4: "ContinueAsNew",
    5: "CreateTimer",
    6: "WaitForExternalEvent",
    7: "CallEntity",
    8: "CallHttp",
    9: "SignalEntity",
    11: "WhenAny",
    12: "WhenAll",
}

# Orchestrations in these states never run again; raising events to them answers 410.
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_timestamp(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse the ISO-8601 forms the library and the client produce ('Z' or an offset)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def new_event(event_type: EventType, timestamp: str, event_id: int = -1, **fields: Any) -> JsonDict:
    """One history event as stored by the host; IsPlayed is added when the history is replayed."""
    return {"EventType": int(event_type), "EventId": event_id, "Timestamp": timestamp, **fields}


def flatten_actions(actions: Any) -> list[JsonDict]:
    """The cumulative action list from an orchestrator state.

    Replay schema V2+ sends one list inside a list; V1 sent one list per episode. Flattening both
    gives the same ordered, append-only sequence.
    """
    flat: list[JsonDict] = []
    if not isinstance(actions, list):
        return flat
    for group in actions:
        if isinstance(group, list):
            flat.extend(item for item in group if isinstance(item, dict))
        elif isinstance(group, dict):
            flat.append(group)
    return flat


def action_signature(action: JsonDict) -> str:
    """A short, stable description of an action, used to notice non-deterministic replays."""
    kind = int(action.get("actionType", -1))
    name = ACTION_TYPE_NAMES.get(kind, str(kind))
    if kind in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
        inner = ",".join(action_signature(child) for child in action.get("compoundActions", []))
        return f"{name}[{inner}]"
    target = action.get("functionName") or action.get("externalEventName") or ""
    return f"{name}:{target}" if target else name


def leaf_actions(action: JsonDict) -> list[JsonDict]:
    """The atomic actions inside an action, depth first.

    The library numbers tasks in exactly this order when it yields a compound task, so walking the
    leaves this way pairs each leaf with its sequence number.
    """
    kind = int(action.get("actionType", -1))
    if kind in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
        leaves: list[JsonDict] = []
        for child in action.get("compoundActions", []):
            if isinstance(child, dict):
                leaves.extend(leaf_actions(child))
        return leaves
    return [action]


def consumes_sequence_number(action: JsonDict) -> bool:
    """Whether the library gives this atomic action a task id from its sequence counter.

    External-event waits are keyed by event name instead of a number.
    """
    return int(action.get("actionType", -1)) != ActionType.WAIT_FOR_EXTERNAL_EVENT


def status_history(events: list[JsonDict], show_output: bool) -> list[JsonDict]:
    """History as the extension's status API shows it with showHistory=true.

    Like the extension, it drops the episode markers and TaskScheduled, names event types, and
    attaches the activity name and scheduled time to each task outcome.
    """
    scheduled: dict[int, JsonDict] = {}
    shown: list[JsonDict] = []
    hidden = {EventType.ORCHESTRATOR_STARTED, EventType.ORCHESTRATOR_COMPLETED, EventType.TASK_SCHEDULED}
    for event in events:
        kind = int(event["EventType"])
        if kind == EventType.TASK_SCHEDULED:
            scheduled[int(event["EventId"])] = event
        if kind in hidden:
            continue
        item: JsonDict = {"EventType": EVENT_TYPE_NAMES.get(kind, str(kind)), "EventId": event["EventId"]}
        item["Timestamp"] = event["Timestamp"]
        for key, value in event.items():
            if key in ("EventType", "EventId", "Timestamp"):
                continue
            if key in ("Result", "Input", "Details") and not show_output:
                continue
            item[key] = value
        if kind == EventType.EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
        if kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
            origin = scheduled.get(int(event.get("TaskScheduledId", -1)))
            if origin is not None:
                item["FunctionName"] = origin.get("Name")
                item["ScheduledTime"] = origin.get("Timestamp")
        shown.append(item)
    return shown
