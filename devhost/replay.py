"""Calling an orchestrator and an activity exactly as the Python worker would.

Both go through the real converters of `azure.functions.durable_functions`, so the bytes an
orchestrator or activity sees are the ones the worker would hand it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

from devhost.functions import IndexedFunction
from devhost.history import JsonDict

# Replay schema V3 (numbered 2): cumulative actions in one list. The extension adds the
# long-timer settings only for backends that need timer splitting, so leaving them out keeps
# every timer a single durable timer.
UPPER_SCHEMA_VERSION = 2

_OUT_OF_PROC_MARKER = "$OutOfProcData$:"


@dataclass(frozen=True)
class ReplayOutcome:
    state: JsonDict | None
    error: str | None


def orchestration_context(
    instance_id: str, orchestration_input: Any, old_events: list[JsonDict], new_events: list[JsonDict]
) -> str:
    """The orchestration trigger payload: the full history, old events marked as played."""
    history = [{**event, "IsPlayed": True} for event in old_events]
    history += [{**event, "IsPlayed": False} for event in new_events]
    return json.dumps(
        {
            "history": history,
            "instanceId": instance_id,
            "isReplaying": bool(old_events),
            "parentInstanceId": None,
            "input": orchestration_input,
            "upperSchemaVersion": UPPER_SCHEMA_VERSION,
        }
    )


def _failure(message: str) -> ReplayOutcome:
    """Read the orchestrator state the library appends to the message of a failing orchestrator."""
    head, marker, tail = message.partition(_OUT_OF_PROC_MARKER)
    if not marker:
        return ReplayOutcome(None, message)
    try:
        state = json.loads(tail)
    except ValueError:
        return ReplayOutcome(None, head.strip())
    error = state.get("error") if isinstance(state, dict) else None
    return ReplayOutcome(state if isinstance(state, dict) else None, str(error or head.strip()))


def replay(function: IndexedFunction, context_json: str) -> ReplayOutcome:
    """Run one orchestrator episode. Blocking: call it on a worker thread."""
    context = OrchestrationTriggerConverter.decode(
        meta.Datum(type="json", value=context_json), trigger_metadata=None
    )
    try:
        # The library's orchestrator handle takes the context as its only parameter, whatever
        # name the trigger binding declares.
        result = function.call(context)
    except Exception as error:  # the library reports orchestrator failures by raising
        return _failure(str(error))
    datum = OrchestrationTriggerConverter.encode(result, expected_type=None)
    state = json.loads(datum.value) if isinstance(datum.value, str | bytes) else datum.value
    if not isinstance(state, dict):
        return ReplayOutcome(None, f"The orchestrator returned {type(state).__name__}, not its state.")
    return ReplayOutcome(state, None)


def decode_activity_input(serialized: str | None) -> Any:
    return ActivityTriggerConverter.decode(
        meta.Datum(type="json", value=serialized if serialized is not None else "null"), trigger_metadata=None
    )


def encode_activity_result(value: Any) -> str:
    datum = ActivityTriggerConverter.encode(value, expected_type=None)
    return str(datum.value)
