"""The management API used directly (as scripts and the public webhook URLs do), the host's
lifecycle, and durable clients in non-HTTP functions."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
import requests

from devhost.host import DevHost
from devhost.net import wait_for_http
from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, keyed

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)
WEBHOOK = "/runtime/webhooks/durabletask"


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext) -> Any:
    value = yield context.wait_for_external_event("go")
    return {"input": context.get_input(), "event": value}


@app.orchestration_trigger(context_name="context")
def echo_input(context: df.DurableOrchestrationContext) -> Any:
    return context.get_input()


def test_suspend_holds_events_until_resume(start_host: StartHost) -> None:
    host = start_host(app)
    hook = keyed(host.master_key)
    api = Api(host.url)
    instance_id = api.start("waiter", "x")
    api.wait(instance_id, until=("Running",))
    base = f"{host.url}{WEBHOOK}/instances/{instance_id}"
    assert hook.post(f"{base}/suspend", params={"reason": "pause"}, timeout=10).status_code == 202
    assert api.status(instance_id)["runtimeStatus"] == "Suspended"
    assert api.raise_event(instance_id, "go", 1).status_code == 202
    time.sleep(0.3)
    assert api.status(instance_id)["runtimeStatus"] == "Suspended"
    assert hook.post(f"{base}/resume", params={"reason": "go on"}, timeout=10).status_code == 202
    assert api.wait(instance_id)["output"] == {"input": "x", "event": 1}


def test_raw_json_bodies_from_plain_http_clients(start_host: StartHost) -> None:
    """Without the library's client the input is not encoded twice; it must still arrive intact."""
    host = start_host(app)
    hook = keyed(host.master_key)
    started = hook.post(f"{host.url}{WEBHOOK}/orchestrators/waiter", json={"plain": True}, timeout=10)
    assert started.status_code == 202
    instance_id = started.json()["id"]
    raised = hook.post(f"{host.url}{WEBHOOK}/instances/{instance_id}/raiseEvent/go", json=[1, 2], timeout=10)
    assert raised.status_code == 202
    output = Api(host.url).wait(instance_id)["output"]
    assert output == {"input": {"plain": True}, "event": [1, 2]}


def test_create_and_wait_answers_with_the_output(start_host: StartHost) -> None:
    host = start_host(app)
    hook = keyed(host.master_key)
    response = hook.post(
        f"{host.url}{WEBHOOK}/orchestrators/echo_input/fixed-id",
        params={"timeout": "5", "pollingInterval": "0.1"},
        json='"hi"',
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == "hi"
    assert Api(host.url).status("fixed-id")["runtimeStatus"] == "Completed"


def test_list_filters_paging_and_purge_by_filter(start_host: StartHost) -> None:
    host = start_host(app)
    hook = keyed(host.master_key)
    api = Api(host.url)
    done = [api.start("echo_input", n, instance_id=f"batch-{n}") for n in range(3)]
    for instance_id in done:
        api.wait(instance_id)
    running = api.start("waiter", None, instance_id="other-1")
    api.wait(running, until=("Running",))
    instances = f"{host.url}{WEBHOOK}/instances"

    listed = hook.get(instances, params={"instanceIdPrefix": "batch-"}, timeout=10).json()
    assert sorted(s["instanceId"] for s in listed) == done
    by_status = hook.get(instances, params={"runtimeStatus": "Running"}, timeout=10).json()
    assert [s["instanceId"] for s in by_status] == ["other-1"]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert hook.get(instances, params={"createdTimeFrom": future}, timeout=10).json() == []

    first_page = hook.get(instances, params={"top": "2"}, timeout=10)
    token = first_page.headers["x-ms-continuation-token"]
    second_page = hook.get(
        instances, params={"top": "2"}, headers={"x-ms-continuation-token": token}, timeout=10
    )
    paged = [s["instanceId"] for s in first_page.json() + second_page.json()]
    assert sorted(paged) == sorted([*done, "other-1"])

    purged = hook.delete(instances, params={"runtimeStatus": "Completed"}, timeout=10)
    assert purged.json() == {"instancesDeleted": 3}
    remaining = hook.get(instances, timeout=10).json()
    assert [s["instanceId"] for s in remaining] == ["other-1"]
    assert hook.delete(f"{instances}/missing", timeout=10).status_code == 404


def test_history_hides_outputs_unless_asked(start_host: StartHost) -> None:
    host = start_host(app)
    hook = keyed(host.master_key)
    api = Api(host.url)
    instance_id = api.start("echo_input", {"secret": 1})
    api.wait(instance_id)
    url = f"{host.url}{WEBHOOK}/instances/{instance_id}"
    brief = hook.get(url, params={"showHistory": "true"}, timeout=10).json()["historyEvents"]
    assert [e["EventType"] for e in brief] == ["ExecutionStarted", "ExecutionCompleted"]
    assert all("Result" not in e and "Input" not in e for e in brief)
    full = hook.get(url, params={"showHistory": "true", "showHistoryOutput": "true"}, timeout=10).json()
    assert full["historyEvents"][-1]["Result"] == '{"secret": 1}'
    assert hook.get(url, params={"showInput": "false"}, timeout=10).json()["input"] is None


def test_run_forever_returns_after_stop_from_another_thread(tmp_path: Path) -> None:
    host = DevHost(app, state_dir=tmp_path / "fg", port=0)
    runner = threading.Thread(target=host.run_forever)
    runner.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            url = host.url
            break
        except RuntimeError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    wait_for_http(f"{url}/api/ping", timeout=10)
    host.stop()
    runner.join(10)
    assert not runner.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/ping", timeout=2)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_run_forever_stops_from_a_signal_handler(tmp_path: Path) -> None:
    host = DevHost(app, state_dir=tmp_path / "signal", port=0)
    previous = signal.signal(signal.SIGUSR1, lambda *_: host.stop())
    gave_up = threading.Event()

    def send_signal_when_ready() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not gave_up.is_set():
            try:
                wait_for_http(f"{host.url}/api/ping", timeout=10)
                break
            except RuntimeError:
                time.sleep(0.02)
        if not gave_up.is_set():
            os.kill(os.getpid(), signal.SIGUSR1)

    sender = threading.Thread(target=send_signal_when_ready)
    sender.start()
    try:
        started = time.monotonic()
        host.run_forever()  # returns once the handler has called stop()
        assert time.monotonic() - started < 10
    finally:
        # The handler stays until the sender is done: a signal sent after a failure must reach
        # it, not the default action, which would kill the whole test run.
        gave_up.set()
        sender.join(15)
        signal.signal(signal.SIGUSR1, previous)


timer_app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(timer_app)
_started_by_timer: list[str] = []


@timer_app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=True)
@timer_app.durable_client_input(client_name="client")
async def nightly(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    _started_by_timer.append(await client.start_new("from_timer", None, {"past_due": timer.past_due}))


@timer_app.orchestration_trigger(context_name="context")
def from_timer(context: df.DurableOrchestrationContext) -> Any:
    return context.get_input()


def test_timer_function_with_a_durable_client_starts_an_orchestration(start_host: StartHost) -> None:
    host = start_host(timer_app)
    deadline = time.monotonic() + 5
    while not _started_by_timer and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _started_by_timer
    assert Api(host.url).wait(_started_by_timer[0])["output"] == {"past_due": False}


def test_app_given_as_a_script_name(
    start_host: StartHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in Azure, a script holds exactly one app and the runtime's loader finds it there."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "ping_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='ping')\n"
        "def ping(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse('pong from a script')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "scripts"))
    host = start_host("ping_app.py")
    assert requests.get(f"{host.url}/api/ping", timeout=5).text == "pong from a script"


def test_start_fails_loudly_when_the_port_is_taken(start_host: StartHost, tmp_path: Path) -> None:
    first = start_host(app)
    taken = int(first.url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match="failed to start"):
        DevHost(app, state_dir=tmp_path / "second", port=taken).start()
    # The first host is unaffected.
    assert requests.get(f"{first.url}/api/ping", timeout=5).text == "pong"


def test_run_forever_after_start_waits_for_stop(tmp_path: Path) -> None:
    """The stack starts the host in the background, then blocks in run_forever until stopped."""
    host = DevHost(app, state_dir=tmp_path / "bg")
    host.start()
    waiter = threading.Thread(target=host.run_forever)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    assert requests.get(f"{host.url}/api/ping", timeout=5).text == "pong"
    host.stop()
    waiter.join(5)
    assert not waiter.is_alive()
