"""HTTP functions served by the dev host: routing, requests, responses, errors, concurrency."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import azure.durable_functions as df
import azure.functions as func
import pytest
import requests

from tests.devhost.devhost_testkit import StartHost

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="echo/{name}/{rest?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "url": req.url,
        "route": dict(req.route_params),
        "params": dict(req.params),
        "header": req.headers.get("x-test"),
        "body": req.get_body().decode(),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_number(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"number {req.route_params['id']}")


@app.route(route="items/{slug}", methods=["GET"])
def item_by_slug(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"slug {req.route_params['slug']}")


@app.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("literal wins")


@app.route(route="files/{*path}")
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="post-only", methods=["POST"])
def post_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=201)


@app.function_name("custom_name")
@app.route(route="cookies")
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("<p>hi</p>", status_code=203, mimetype="text/html", charset="utf-8")
    response.headers.add("X-Multi", "one")
    response.headers.add("X-Multi", "two")
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route(route="plain")
def plain(req: func.HttpRequest) -> str:
    return "just text"


@app.route(route="binary")
def binary(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(bytes(range(256)), mimetype="application/octet-stream")


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internal detail")


@app.route(route="with-context")
def with_context(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(f"{context.function_name}:{bool(context.invocation_id)}")


@app.route(route="slow-sync")
def slow_sync(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(1.5)
    return func.HttpResponse(threading.current_thread().name)


@app.route(route="slow-async")
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(1.5)
    return func.HttpResponse("slow async")


@app.route(route="fast")
def fast(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("fast")


def test_route_params_query_headers_and_body_reach_the_function(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.post(
        f"{host.url}/api/echo/alice/extra?x=1&x=2&y=z",
        data=b"payload",
        headers={"X-Test": "hello"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{host.url}/api/echo/alice/extra?x=1&x=2&y=z"
    assert seen["route"] == {"name": "alice", "rest": "extra"}
    assert seen["params"] == {"x": "1,2", "y": "z"}
    assert seen["header"] == "hello"
    assert seen["body"] == "payload"


def test_optional_route_parameter_may_be_left_out(start_host: StartHost) -> None:
    host = start_host(app)
    seen = requests.get(f"{host.url}/api/ECHO/bob", timeout=5).json()
    assert seen["route"] == {"name": "bob"}


def test_constraints_literals_and_catch_all_pick_the_right_function(start_host: StartHost) -> None:
    host = start_host(app)
    assert requests.get(f"{host.url}/api/items/42", timeout=5).text == "number 42"
    assert requests.get(f"{host.url}/api/items/forty-two", timeout=5).text == "slug forty-two"
    assert requests.get(f"{host.url}/api/items/special", timeout=5).text == "literal wins"
    assert requests.get(f"{host.url}/api/files/a/b/c.txt", timeout=5).text == "a/b/c.txt"
    # A percent-encoded newline is a character like any other to the router: the function runs.
    assert requests.get(f"{host.url}/api/items/a%0Ab", timeout=5).text == "slug a\nb"


def test_unknown_route_and_wrong_method_are_404_as_in_the_functions_host(start_host: StartHost) -> None:
    host = start_host(app)
    assert requests.get(f"{host.url}/api/nothing-here", timeout=5).status_code == 404
    assert requests.get(f"{host.url}/fast", timeout=5).status_code == 404  # outside the route prefix
    # The host routes by method too: a known path with another method is 404, not 405
    # (Azure/azure-functions-host#10098 and #11625).
    assert requests.get(f"{host.url}/api/post-only", timeout=5).status_code == 404
    assert requests.post(f"{host.url}/api/post-only", timeout=5).status_code == 201
    assert requests.delete(f"{host.url}/api/items/1", timeout=5).status_code == 404


def test_response_status_headers_cookies_and_charset(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.get(f"{host.url}/api/cookies", timeout=5)
    assert response.status_code == 203
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    # The worker protocol carries one value per header name (the last one set); only cookies
    # travel as a list, so every Set-Cookie header reaches the caller.
    assert response.raw.headers.getlist("X-Multi") == ["two"]
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.text == "<p>hi</p>"


def test_string_and_binary_returns(start_host: StartHost) -> None:
    host = start_host(app)
    text = requests.get(f"{host.url}/api/plain", timeout=5)
    assert text.status_code == 200
    assert text.text == "just text"
    assert text.headers["Content-Type"].startswith("text/plain")
    binary_response = requests.get(f"{host.url}/api/binary", timeout=5)
    assert binary_response.content == bytes(range(256))
    assert binary_response.headers["Content-Type"] == "application/octet-stream"


def test_context_parameter_is_passed(start_host: StartHost) -> None:
    host = start_host(app)
    assert requests.get(f"{host.url}/api/with-context", timeout=5).text == "with_context:True"


def test_route_prefix_is_configurable(start_host: StartHost) -> None:
    host = start_host(app, route_prefix="")
    assert requests.get(f"{host.url}/fast", timeout=5).text == "fast"
    assert requests.get(f"{host.url}/api/fast", timeout=5).status_code == 404


def test_unhandled_exception_is_a_generic_500_with_the_traceback_only_in_the_log(
    start_host: StartHost, caplog: pytest.LogCaptureFixture
) -> None:
    host = start_host(app)
    with caplog.at_level(logging.INFO, logger="devhost"):
        response = requests.get(f"{host.url}/api/boom", timeout=5)
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "secret internal detail" in caplog.text
    assert "Traceback" in caplog.text


def test_logs_name_the_function_but_never_bodies_or_header_values(
    start_host: StartHost, caplog: pytest.LogCaptureFixture
) -> None:
    host = start_host(app)
    with caplog.at_level(logging.DEBUG, logger="devhost"):
        requests.post(
            f"{host.url}/api/echo/someone",
            data=b"body-secret-123",
            headers={"X-Test": "header-secret-456", "Authorization": "Bearer token-789"},
            timeout=5,
        )
    assert "echo" in caplog.text
    for secret in ("body-secret-123", "header-secret-456", "token-789"):
        assert secret not in caplog.text


def test_slow_sync_and_slow_async_requests_do_not_block_a_fast_one(start_host: StartHost) -> None:
    host = start_host(app)
    with ThreadPoolExecutor(max_workers=4) as pool:
        started = time.monotonic()
        slow = [
            pool.submit(requests.get, f"{host.url}/api/slow-sync", timeout=10),
            pool.submit(requests.get, f"{host.url}/api/slow-sync", timeout=10),
            pool.submit(requests.get, f"{host.url}/api/slow-async", timeout=10),
        ]
        time.sleep(0.3)
        fast_started = time.monotonic()
        assert requests.get(f"{host.url}/api/fast", timeout=5).text == "fast"
        assert time.monotonic() - fast_started < 0.5
        results = [future.result() for future in slow]
        elapsed = time.monotonic() - started
    assert [r.status_code for r in results] == [200, 200, 200]
    # Two sync requests ran on different worker threads, at the same time as the async one.
    assert results[0].text != results[1].text
    assert elapsed < 2.8
