"""Stopping the dev host mid-orchestration and starting a new one on the same state directory."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, event_types

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)

_runs: Counter[str] = Counter()
_first_run_entered = threading.Event()
_release_first_run = threading.Event()
_first_run_returned = threading.Event()


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.activity_trigger(input_name="token")
def slow_once(token: str) -> str:
    _runs[token] += 1
    run = _runs[token]
    if run == 1:
        # The host is stopped while this first run is in flight; its result is abandoned.
        _first_run_entered.set()
        _release_first_run.wait(10)
        _first_run_returned.set()
        return "first run"
    return f"run {run}"


@app.orchestration_trigger(context_name="context")
def timer_then_activity(context: df.DurableOrchestrationContext) -> Any:
    yield context.create_timer(context.current_utc_datetime + dt.timedelta(seconds=1.5))
    result = yield context.call_activity("double", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def activity_in_flight(context: df.DurableOrchestrationContext) -> Any:
    result = yield context.call_activity("slow_once", context.get_input())
    return result


def test_durable_timer_survives_a_restart(start_host: StartHost, tmp_path: Path) -> None:
    state = tmp_path / "restart-timer"
    first = start_host(app, state_dir=state)
    instance_id = Api(first.url).start("timer_then_activity", 21)
    Api(first.url).wait_for(instance_id, lambda s: s["runtimeStatus"] == "Running")
    time.sleep(0.3)
    first.stop()

    time.sleep(1.5)  # the timer falls due while no host runs
    second = start_host(app, state_dir=state)
    api = Api(second.url)
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 42
    types = event_types(api.status(instance_id, history=True)["history"])
    assert types == ["ExecutionStarted", "TimerCreated", "TimerFired", "TaskCompleted", "ExecutionCompleted"]


def test_timer_still_pending_at_restart_fires_on_time(start_host: StartHost, tmp_path: Path) -> None:
    state = tmp_path / "restart-pending-timer"
    first = start_host(app, state_dir=state)
    instance_id = Api(first.url).start("timer_then_activity", 5)
    Api(first.url).wait_for(instance_id, lambda s: s["runtimeStatus"] == "Running")
    first.stop()

    second = start_host(app, state_dir=state)
    api = Api(second.url)
    assert api.status(instance_id)["runtimeStatus"] == "Running"
    assert api.wait(instance_id)["output"] == 10


def test_activity_in_flight_is_run_again_after_a_restart(start_host: StartHost, tmp_path: Path) -> None:
    state = tmp_path / "restart-activity"
    token = "in-flight"
    first = start_host(app, state_dir=state)
    instance_id = Api(first.url).start("activity_in_flight", token)
    assert _first_run_entered.wait(10)
    started = time.monotonic()
    first.stop()
    assert time.monotonic() - started < 8, "stop() must not wait for an abandoned activity"

    try:
        second = start_host(app, state_dir=state)
        api = Api(second.url)
        status = api.wait(instance_id)
    finally:
        _release_first_run.set()
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "run 2"
    assert _runs[token] == 2
    # The abandoned first run finishing late (its host is gone) changes nothing.
    assert _first_run_returned.wait(10)
    assert api.status(instance_id)["output"] == "run 2"
