"""Replaying an orchestrator and running an activity with the payloads the Durable extension sends.

The orchestration context and an activity's input go to the worker as JSON text, and the
runtime's converters (`azure.functions.durable_functions`) turn them into what the function
sees; see devhost.functions for the conversion path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure_functions_runtime.utils.tracing import serialize_exception

from devhost import rpc
from devhost.functions import IndexedFunction, Invoker, typed_value
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


async def replay(invoker: Invoker, function: IndexedFunction, context_json: str) -> ReplayOutcome:
    """Run one orchestrator episode."""
    try:
        result = await invoker.invoke(
            function, {function.trigger_parameter: rpc.TypedData(string=context_json)}
        )
    except Exception as error:  # the library reports orchestrator failures by raising
        return _failure(str(error))
    value = typed_value(result)
    state = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(state, dict):
        return ReplayOutcome(None, f"The orchestrator returned {type(state).__name__}, not its state.")
    return ReplayOutcome(state, None)


async def run_activity(invoker: Invoker, function: IndexedFunction, serialized_input: str | None) -> str:
    """Run an activity; its result as the JSON text the extension records in TaskCompleted."""
    argument = rpc.TypedData(string=serialized_input if serialized_input is not None else "null")
    value = typed_value(await invoker.invoke(function, {function.trigger_parameter: argument}))
    return value if isinstance(value, str) else json.dumps(value)


def activity_failure(activity_name: str, error: BaseException) -> tuple[str, str]:
    """TaskFailed's Reason and Details, as the extension reports a failed activity function.

    The extension's activity shim reports "Activity function '<name>' failed: <message>", where
    the message is the worker's report of the exception ("<Type>: <text>"), and the cause with
    its stack as the details.
    """
    report = serialize_exception(error, rpc)
    return f"Activity function '{activity_name}' failed: {report.message}", str(report.stack_trace)
