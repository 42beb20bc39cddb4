"""Shared pieces of the dev host tests.

`add_client_routes` gives a test app HTTP functions that drive orchestrations through the
library's real DurableOrchestrationClient (built by the durableClient binding), so the tests
exercise the client's own calls against the dev host's management API. `Api` calls those
functions over real HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import requests

FINISHED = ("Completed", "Failed", "Terminated", "Canceled")

# start_host(app, state_dir=None, **DevHost options) -> a started DevHost (see conftest.py).
StartHost = Callable[..., Any]


def _json(value: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


def add_client_routes(app: df.DFApp) -> None:
    """Register starter/status/event/terminate/purge functions that use the real client."""

    @app.route(route="orchestrators/{name}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def kit_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        payload = req.get_json() if req.get_body() else None
        try:
            instance_id = await client.start_new(req.route_params["name"], req.params.get("id"), payload)
        except Exception as error:
            return func.HttpResponse(str(error), status_code=400)
        return client.create_check_status_response(req, instance_id)

    @app.route(route="run/{name}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def kit_run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        payload = req.get_json() if req.get_body() else None
        instance_id = await client.start_new(req.route_params["name"], None, payload)
        response: func.HttpResponse = await client.wait_for_completion_or_create_check_status_response(
            req, instance_id, timeout_in_milliseconds=8000, retry_interval_in_milliseconds=100
        )
        return response

    @app.route(route="instances/{id}", methods=["GET"])
    @app.durable_client_input(client_name="client")
    async def kit_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        history = req.params.get("history") == "true"
        status = await client.get_status(
            req.route_params["id"], show_history=history, show_history_output=history
        )
        if not status:
            return func.HttpResponse(status_code=404)
        return _json(
            {
                "instanceId": status.instance_id,
                "name": status.name,
                "runtimeStatus": status.runtime_status.value,
                "input": status.input_,
                "output": status.output,
                "customStatus": status.custom_status,
                "history": getattr(status, "historyEvents", None),
            }
        )

    @app.route(route="instances", methods=["GET"])
    @app.durable_client_input(client_name="client")
    async def kit_list(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        wanted = req.params.get("status")
        if wanted:
            statuses = [df.OrchestrationRuntimeStatus(s) for s in wanted.split(",")]
            found = await client.get_status_by(runtime_status=statuses)
        else:
            found = await client.get_status_all()
        return _json({s.instance_id: s.runtime_status.value for s in found})

    @app.route(route="instances/{id}/events/{event}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def kit_raise(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        payload = req.get_json() if req.get_body() else None
        try:
            await client.raise_event(req.route_params["id"], req.route_params["event"], payload)
        except Exception as error:
            return func.HttpResponse(str(error), status_code=409)
        return func.HttpResponse(status_code=202)

    @app.route(route="instances/{id}/terminate", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def kit_terminate(
        req: func.HttpRequest, client: df.DurableOrchestrationClient
    ) -> func.HttpResponse:
        try:
            await client.terminate(req.route_params["id"], req.params.get("reason", ""))
        except Exception as error:
            return func.HttpResponse(str(error), status_code=409)
        return func.HttpResponse(status_code=202)

    @app.route(route="instances/{id}", methods=["DELETE"])
    @app.durable_client_input(client_name="client")
    async def kit_purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        result = await client.purge_instance_history(req.route_params["id"])
        return _json({"deleted": result.instances_deleted})


class Api:
    """Drives the `add_client_routes` functions of a running host over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base = f"{base_url}/api"

    def start(self, name: str, payload: Any = None, instance_id: str | None = None) -> str:
        params = {"id": instance_id} if instance_id else None
        body = None if payload is None else json.dumps(payload)
        response = requests.post(f"{self.base}/orchestrators/{name}", data=body, params=params, timeout=10)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, instance_id: str, history: bool = False) -> dict[str, Any]:
        params = {"history": "true"} if history else None
        response = requests.get(f"{self.base}/instances/{instance_id}", params=params, timeout=10)
        assert response.status_code == 200, response.status_code
        result: dict[str, Any] = response.json()
        return result

    def wait(
        self, instance_id: str, until: tuple[str, ...] = FINISHED, timeout: float = 15.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(instance_id)
            if status["runtimeStatus"] in until:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"instance {instance_id} is still {status['runtimeStatus']}: {status}")
            time.sleep(0.05)

    def wait_for(self, instance_id: str, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(instance_id)
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"instance {instance_id} never reached the expected state: {status}")
            time.sleep(0.05)

    def raise_event(self, instance_id: str, event: str, payload: Any = None) -> requests.Response:
        body = None if payload is None else json.dumps(payload)
        return requests.post(f"{self.base}/instances/{instance_id}/events/{event}", data=body, timeout=10)

    def terminate(self, instance_id: str, reason: str) -> requests.Response:
        return requests.post(
            f"{self.base}/instances/{instance_id}/terminate", params={"reason": reason}, timeout=10
        )

    def purge(self, instance_id: str) -> int:
        response = requests.delete(f"{self.base}/instances/{instance_id}", timeout=10)
        assert response.status_code == 200, response.text
        return int(response.json()["deleted"])


def event_types(history: list[dict[str, Any]]) -> list[str]:
    return [str(event["EventType"]) for event in history]


def keyed(key: str) -> requests.Session:
    """A session that presents `key` in the host's key header, as scripts calling the
    /runtime/webhooks/durabletask API must."""
    session = requests.Session()
    session.headers["x-functions-key"] = key
    return session
