"""Orchestrations run by the dev host through the durable library's own replay, driven over HTTP
with the library's real DurableOrchestrationClient."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import requests

from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, event_types, keyed

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)

# Activities that the tests hold open until they say so, keyed by a token in the input.
_gates: dict[str, threading.Event] = {}
_entered: dict[str, threading.Event] = {}


def gate(token: str) -> threading.Event:
    return _gates.setdefault(token, threading.Event())


def entered(token: str) -> threading.Event:
    return _entered.setdefault(token, threading.Event())


@app.activity_trigger(input_name="name")
def greet(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="value")
async def shout(value: str) -> str:
    await asyncio.sleep(0.01)
    return value.upper()


@app.activity_trigger(input_name="payload")
def square(payload: dict) -> int:  # type: ignore[type-arg] - the worker accepts only a class here
    return payload["n"] * payload["n"]


@app.activity_trigger(input_name="token")
def held(token: str) -> str:
    entered(token).set()
    gate(token).wait(10)
    return f"released {token}"


@app.activity_trigger(input_name="seconds")
def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Any:
    name = context.get_input()
    greeting = yield context.call_activity("greet", name)
    loud = yield context.call_activity(shout, greeting)
    return [greeting, loud, context.instance_id]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()["count"]
    tasks = [context.call_activity("square", {"n": n}) for n in range(count)]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext) -> Any:
    timeout = context.create_timer(context.current_utc_datetime + dt.timedelta(seconds=1))
    approval = context.wait_for_external_event("approval")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
        # Outlive the cancelled timer: it must not fire into this instance.
        yield context.call_activity("pause", 1.5)
        return f"approved:{approval.result}"
    return "timed out"


@app.orchestration_trigger(context_name="context")
def long_race(context: df.DurableOrchestrationContext) -> Any:
    timeout = context.create_timer(context.current_utc_datetime + dt.timedelta(minutes=10))
    approval = context.wait_for_external_event("approval")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
    return "done"


@app.orchestration_trigger(context_name="context")
def buffered(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("held", context.get_input())
    event = yield context.wait_for_external_event("approval")
    return [first, event]


@app.orchestration_trigger(context_name="context")
def with_status(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status({"step": "waiting"})
    value = yield context.wait_for_external_event("go")
    context.set_custom_status({"step": "done"})
    return value


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext) -> Any:
    state = context.get_input()
    if state["n"] < state["target"]:
        yield context.call_activity("greet", str(state["n"]))
        context.continue_as_new({"n": state["n"] + 1, "target": state["target"]})
        return None
    return state["n"]


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext) -> Any:
    yield context.create_timer(context.current_utc_datetime + dt.timedelta(seconds=1))
    return "woke up"


@app.orchestration_trigger(context_name="context")
def exploding(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("greet", "x")
    raise ValueError("kaboom from the orchestrator")


@app.orchestration_trigger(context_name="context")
def plain_return(context: df.DurableOrchestrationContext) -> Any:
    return {"echo": context.get_input()}


def test_start_and_status_through_the_real_client(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.post(f"{host.url}/api/orchestrators/chain", json="Ada", timeout=10)
    assert response.status_code == 202
    payload = response.json()
    instance_id = payload["id"]
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(
        f"{host.url}/runtime/webhooks/durabletask/instances/{instance_id}"
    )
    for key in ("sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"):
        assert instance_id in payload[key]

    status = Api(host.url).wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Ada", "HELLO ADA", instance_id]
    assert status["name"] == "chain"

    # The public status URL handed out by create_check_status_response works too.
    public = requests.get(payload["statusQueryGetUri"], timeout=10)
    assert public.status_code == 200
    assert public.json()["runtimeStatus"] == "Completed"
    assert public.json()["output"] == ["Hello Ada", "HELLO ADA", instance_id]


def test_status_is_202_while_running_and_404_for_unknown(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("with_status")
    api.wait_for(instance_id, lambda s: s["customStatus"] == {"step": "waiting"})
    hook = keyed(host.master_key)
    running = hook.get(f"{host.url}/runtime/webhooks/durabletask/instances/{instance_id}", timeout=10)
    assert running.status_code == 202
    assert running.json()["runtimeStatus"] == "Running"
    unknown = hook.get(f"{host.url}/runtime/webhooks/durabletask/instances/nope", timeout=10)
    assert unknown.status_code == 404
    assert unknown.content == b""
    assert requests.get(f"{api.base}/instances/nope", timeout=10).status_code == 404


def test_wait_for_completion_returns_the_output(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.post(f"{host.url}/api/run/plain_return", json={"a": [1, 2]}, timeout=15)
    assert response.status_code == 200
    assert response.json() == {"echo": {"a": [1, 2]}}


def test_fan_out_fan_in(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("fan_out", {"count": 12})
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == sum(n * n for n in range(12))
    history = api.status(instance_id, history=True)["history"]
    assert event_types(history).count("TaskCompleted") == 12


def test_task_any_external_event_beats_the_timer_and_the_timer_is_cancelled(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("race")
    api.wait(instance_id, until=("Running",))
    assert api.raise_event(instance_id, "approval", {"by": "boss"}).status_code == 202
    status = api.wait(instance_id)
    assert status["output"] == "approved:{'by': 'boss'}"
    history = api.status(instance_id, history=True)["history"]
    types = event_types(history)
    assert "EventRaised" in types
    assert "TimerCreated" in types
    # The activity outlived the timer's fire time, yet the cancelled timer never fired.
    assert "TimerFired" not in types


def test_task_any_timer_wins_without_an_event(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("race")
    status = api.wait(instance_id)
    assert status["output"] == "timed out"
    types = event_types(api.status(instance_id, history=True)["history"])
    assert types == ["ExecutionStarted", "TimerCreated", "TimerFired", "ExecutionCompleted"]


def test_cancelled_timer_leaves_nothing_pending(start_host: StartHost, tmp_path: Path) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("long_race")
    api.wait(instance_id, until=("Running",))
    api.raise_event(instance_id, "approval")
    assert api.wait(instance_id)["output"] == "done"
    host.stop()
    with sqlite3.connect(tmp_path / "state" / "devhost.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM timers").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM activities").fetchone()[0] == 0


def test_event_raised_before_the_wait_is_buffered(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    token = "buffered-1"
    instance_id = api.start("buffered", token)
    assert entered(token).wait(10)
    assert api.raise_event(instance_id, "approval", "yes").status_code == 202
    # The event is in the instance's history while the activity still runs (held at its gate):
    # it arrived before the orchestration waited for it.
    deadline = time.monotonic() + 10
    while "EventRaised" not in (
        history := event_types(api.status(instance_id, history=True)["history"] or [])
    ):
        assert time.monotonic() < deadline, history
        time.sleep(0.05)
    assert "TaskCompleted" not in history
    gate(token).set()
    status = api.wait(instance_id)
    assert status["output"] == [f"released {token}", "yes"]


def test_custom_status_is_visible_while_running(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("with_status")
    running = api.wait_for(instance_id, lambda s: s["customStatus"] is not None)
    assert running["runtimeStatus"] == "Running"
    assert running["customStatus"] == {"step": "waiting"}
    api.raise_event(instance_id, "go", 7)
    status = api.wait(instance_id)
    assert status["output"] == 7
    assert status["customStatus"] == {"step": "done"}


def test_continue_as_new_counts_to_target(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("counter", {"n": 0, "target": 4})
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 4
    # The history restarted with the last input.
    history = api.status(instance_id, history=True)["history"]
    assert event_types(history) == ["ExecutionStarted", "ExecutionCompleted"]
    assert history[0]["Input"] == '{"n": 4, "target": 4}'


def test_terminate_discards_the_pending_timer(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("sleeper")
    api.wait(instance_id, until=("Running",))
    assert api.terminate(instance_id, "no longer needed").status_code == 202
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "no longer needed"
    time.sleep(1.3)  # past the timer's fire time
    after = api.status(instance_id, history=True)
    assert after["runtimeStatus"] == "Terminated"
    assert "TimerFired" not in event_types(after["history"])
    assert event_types(after["history"])[-1] == "ExecutionTerminated"
    # Terminating a finished instance is accepted by the client (410 is not an error to it).
    assert api.terminate(instance_id, "again").status_code == 202


def test_raise_event_to_finished_or_unknown_instance(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("plain_return", 1)
    api.wait(instance_id)
    refused = api.raise_event(instance_id, "late", 1)
    assert refused.status_code == 409
    assert "is gone" in refused.text
    webhook = f"{host.url}/runtime/webhooks/durabletask/instances"
    hook = keyed(host.master_key)
    assert hook.post(f"{webhook}/{instance_id}/raiseEvent/late", json="1", timeout=10).status_code == 410
    assert hook.post(f"{webhook}/missing/raiseEvent/late", json="1", timeout=10).status_code == 404
    assert "No instance" in api.raise_event("missing", "late", 1).text


def test_purge(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("plain_return", 2)
    api.wait(instance_id)
    assert api.purge(instance_id) == 1
    assert requests.get(f"{api.base}/instances/{instance_id}", timeout=10).status_code == 404
    assert api.purge(instance_id) == 0


def test_orchestrator_exception_fails_the_instance(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    instance_id = api.start("exploding")
    status = api.wait(instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert "kaboom from the orchestrator" in status["output"]
    assert "$OutOfProcData$" not in status["output"]


def test_unknown_orchestrator_is_refused(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.post(f"{host.url}/api/orchestrators/does_not_exist", timeout=10)
    assert response.status_code == 400
    assert "does_not_exist" in response.text
    direct = keyed(host.master_key).post(
        f"{host.url}/runtime/webhooks/durabletask/orchestrators/does_not_exist", timeout=10
    )
    assert direct.status_code == 400
    assert "does_not_exist" in direct.json()["ExceptionMessage"]


def test_explicit_instance_id_and_listing(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)
    assert api.start("plain_return", 3, instance_id="my-instance") == "my-instance"
    api.wait("my-instance")
    waiting = api.start("with_status")
    api.wait(waiting, until=("Running",))
    # A running instance cannot be replaced.
    refused = requests.post(f"{api.base}/orchestrators/with_status", params={"id": waiting}, timeout=10)
    assert refused.status_code == 400
    everything = requests.get(f"{api.base}/instances", timeout=10).json()
    assert everything == {"my-instance": "Completed", waiting: "Running"}
    completed = requests.get(f"{api.base}/instances", params={"status": "Completed"}, timeout=10).json()
    assert completed == {"my-instance": "Completed"}
    # A finished instance id may be reused.
    assert api.start("plain_return", 4, instance_id="my-instance") == "my-instance"
    assert api.wait("my-instance")["output"] == {"echo": 4}
