"""The host's request body limit, an outer guard before any function runs.

Facts relied on (Azure/azure-functions-host): Program.cs sets Kestrel's
`Limits.MaxRequestBodySize` to `ScriptConstants.DefaultMaxRequestBodySize` = 104857600 bytes;
HttpRequestBodySizeMiddleware replaces it with the app setting FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
when that is a number. Kestrel answers a larger body 413 (Request body too large): at once when
Content-Length declares it, else when the bytes read pass the limit. The Durable extension's
local RPC listener sets `MaxRequestBodySize = null` (LocalHttpListener): no limit there.
The app's own, smaller limit on create bodies (api/forms.py) is a separate, inner check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import requests

from devhost.guards import DEFAULT_MAX_REQUEST_BODY_BYTES, max_request_body_bytes
from devhost.management import WEBHOOK_PATH
from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, keyed
from tests.devhost.raw_http import status_after_headers

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)
received: list[int] = []

LIMIT = 1000


@app.route(route="upload", methods=["POST"])
def upload(req: func.HttpRequest) -> func.HttpResponse:
    received.append(len(req.get_body()))
    return func.HttpResponse(str(len(req.get_body())))


@app.orchestration_trigger(context_name="context")
def echo_length(context: df.DurableOrchestrationContext) -> Any:
    return len(context.get_input())


def _chunks(total: int, size: int = 256) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def test_the_default_limit_is_the_hosts_104857600_bytes(start_host: StartHost) -> None:
    assert DEFAULT_MAX_REQUEST_BODY_BYTES == 104_857_600
    host = start_host(app)
    url = f"{host.url}/api/upload"
    # One byte over is refused at once, from the header alone; at the limit the host waits for the body.
    over = {"Content-Length": str(DEFAULT_MAX_REQUEST_BODY_BYTES + 1)}
    at_limit = {"Content-Length": str(DEFAULT_MAX_REQUEST_BODY_BYTES)}
    assert status_after_headers(url, "POST", over) == 413
    assert status_after_headers(url, "POST", at_limit, wait=1.0) is None
    assert received == []


def test_a_body_at_the_limit_reaches_the_function_and_one_byte_more_does_not(start_host: StartHost) -> None:
    received.clear()
    host = start_host(app, max_request_body_bytes=LIMIT)
    url = f"{host.url}/api/upload"
    assert requests.post(url, data=b"x" * LIMIT, timeout=10).text == str(LIMIT)
    refused = requests.post(url, data=b"x" * (LIMIT + 1), timeout=10)
    assert refused.status_code == 413
    assert received == [LIMIT]


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(start_host: StartHost) -> None:
    received.clear()
    host = start_host(app, max_request_body_bytes=LIMIT)
    url = f"{host.url}/api/upload"
    within = requests.post(url, data=_chunks(LIMIT), timeout=10)  # chunked transfer encoding
    assert within.text == str(LIMIT)
    beyond = requests.post(url, data=_chunks(LIMIT * 5), timeout=10)
    assert beyond.status_code == 413
    assert received == [LIMIT]


def test_the_management_api_checks_the_key_first_then_the_size(start_host: StartHost) -> None:
    host = start_host(app, max_request_body_bytes=LIMIT)
    url = f"{host.url}{WEBHOOK_PATH}/orchestrators/echo_length"
    declared = {"Content-Length": str(LIMIT + 1), "Content-Type": "application/json"}
    assert status_after_headers(url, "POST", declared) == 401
    keyed_declared = {**declared, "x-functions-key": host.master_key}
    assert status_after_headers(url, "POST", keyed_declared) == 413
    big_input = json.dumps("y" * (LIMIT * 3))
    assert keyed(host.master_key).post(url, data=big_input, timeout=10).status_code == 413


def test_the_local_rpc_listener_has_no_body_limit(start_host: StartHost) -> None:
    host = start_host(app, max_request_body_bytes=LIMIT)
    # The library's client sends the input encoded twice; what matters is the size.
    body = json.dumps(json.dumps("z" * (LIMIT * 3)))
    started = requests.post(f"{host.rpc_url}/durabletask/orchestrators/echo_length", data=body, timeout=10)
    assert started.status_code == 202
    assert Api(host.url).wait(started.json()["id"])["output"] == LIMIT * 3


def test_the_setting_names_the_limit_and_anything_else_keeps_the_default() -> None:
    assert max_request_body_bytes({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "2048"}) == 2048
    assert (
        max_request_body_bytes({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "lots"})
        == DEFAULT_MAX_REQUEST_BODY_BYTES
    )
    assert max_request_body_bytes({}) == DEFAULT_MAX_REQUEST_BODY_BYTES
