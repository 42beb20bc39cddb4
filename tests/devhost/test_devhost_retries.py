"""call_activity_with_retry: the host retries, recording the history the library expects."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, event_types

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)

_attempts: Counter[str] = Counter()
_lock = threading.Lock()
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)


@app.activity_trigger(input_name="job")
def flaky(job: dict) -> str:  # type: ignore[type-arg] - the worker accepts only a class here
    """Fails `failures` times for a key, then succeeds."""
    with _lock:
        _attempts[job["key"]] += 1
        attempt = _attempts[job["key"]]
    if attempt <= job["failures"]:
        raise ConnectionError(f"attempt {attempt} of {job['key']} failed")
    return f"{job['key']} ok on attempt {attempt}"


@app.activity_trigger(input_name="value")
def identity(value: int) -> int:
    return value


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Any:
    job = context.get_input()
    try:
        result = yield context.call_activity_with_retry("flaky", RETRY, job)
    except Exception as error:
        return f"gave up: {error}"
    return result


@app.orchestration_trigger(context_name="context")
def retries_in_parallel(context: df.DurableOrchestrationContext) -> Any:
    key = context.get_input()
    tasks = [
        context.call_activity_with_retry("flaky", RETRY, {"key": f"{key}-a", "failures": 2}),
        context.call_activity("identity", 1),
        context.call_activity_with_retry("flaky", RETRY, {"key": f"{key}-b", "failures": 1}),
        context.call_activity("identity", 2),
    ]
    results = yield context.task_all(tasks)
    after = yield context.call_activity_with_retry("flaky", RETRY, {"key": f"{key}-c", "failures": 1})
    return [*results, after]


def test_activity_fails_twice_then_succeeds(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("retrying", {"key": "twice", "failures": 2})
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "twice ok on attempt 3"
    history = api.status(instance_id, history=True)["history"]
    assert event_types(history) == [
        "ExecutionStarted",
        "TaskFailed",
        "TimerCreated",
        "TimerFired",
        "TaskFailed",
        "TimerCreated",
        "TimerFired",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    failures = [event for event in history if event["EventType"] == "TaskFailed"]
    # The extension's words for a failed activity, around the worker's "<Type>: <message>".
    assert (
        failures[0]["Reason"]
        == "Activity function 'flaky' failed: ConnectionError: attempt 1 of twice failed"
    )
    assert failures[0]["FunctionName"] == "flaky"
    assert "ConnectionError" in failures[0]["Details"]


def test_always_failing_activity_reaches_the_orchestrator_after_max_attempts(
    start_host: StartHost,
) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("retrying", {"key": "always", "failures": 99})
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"].startswith(
        "gave up: Activity function 'flaky' failed: ConnectionError: attempt 3 of always failed"
    )
    assert _attempts["always"] == 3
    history = api.status(instance_id, history=True)["history"]
    # One timer follows every failure, including the last, before the orchestrator sees it.
    assert event_types(history) == [
        "ExecutionStarted",
        *["TaskFailed", "TimerCreated", "TimerFired"] * 3,
        "ExecutionCompleted",
    ]


def test_retries_interleaved_with_other_tasks_keep_task_ids_in_step(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("retries_in_parallel", "mixed")
    status = api.wait(instance_id, timeout=20)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [
        "mixed-a ok on attempt 3",
        1,
        "mixed-b ok on attempt 2",
        2,
        "mixed-c ok on attempt 2",
    ]
