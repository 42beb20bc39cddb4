"""Serving the app's HTTP-triggered functions at /{routePrefix}/{route}.

Each request becomes a real `azure.functions.HttpRequest`; a durableClient parameter receives the
binding string the extension would pass, which the library's middleware turns into a
DurableOrchestrationClient that calls back into this host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devhost.functions import IndexedFunction, Invoker
from devhost.management import client_binding, request_origin
from devhost.routing import Route, precedence

log = logging.getLogger("devhost.http")

# Framing headers belong to this server's response, not to the function's.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class HttpFunction:
    function: IndexedFunction
    route: Route


def build_routes(functions: list[IndexedFunction]) -> list[HttpFunction]:
    routes: list[HttpFunction] = []
    for function in functions:
        template = str(function.trigger.get("route") or function.name)
        methods = function.trigger.get("methods")
        allowed = frozenset(str(m).upper() for m in methods) if methods else None
        routes.append(HttpFunction(function, Route(template, allowed)))
    routes.sort(key=lambda entry: precedence(entry.route))
    return routes


def _joined(pairs: Any) -> dict[str, str]:
    """Repeated headers or query parameters, comma-joined as the Functions host presents them."""
    joined: dict[str, str] = {}
    for key, value in pairs.items():
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def to_web_response(result: Any) -> web.Response:
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(status=200, text=result, content_type="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not an HttpResponse")
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        if name.lower() not in _FRAMING_HEADERS:
            headers.add(name, value)
    if "content-type" not in headers:
        mimetype = result.mimetype
        headers["Content-Type"] = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
        )
    return web.Response(status=result.status_code, body=result.get_body(), headers=headers)


class HttpFunctionServer:
    def __init__(
        self,
        functions: list[IndexedFunction],
        invoker: Invoker,
        route_prefix: str,
        task_hub: str,
        rpc_origin: Callable[[], str],
    ) -> None:
        self._routes = build_routes(functions)
        self._invoker = invoker
        self._prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self._task_hub = task_hub
        self._rpc_origin = rpc_origin

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.handle)

    def _resolve(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | int:
        if self._prefix:
            if path.lower() != self._prefix.lower() and not path.lower().startswith(
                self._prefix.lower() + "/"
            ):
                return 404
            path = path[len(self._prefix) :]
        wrong_method = False
        for entry in self._routes:
            values = entry.route.match(path or "/")
            if values is None:
                continue
            if entry.route.allows(method):
                return entry, values
            wrong_method = True
        return 405 if wrong_method else 404

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resolved = self._resolve(request.method, request.path)
        if isinstance(resolved, int):
            return web.Response(status=resolved)
        entry, route_params = resolved
        function = entry.function
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=_joined(request.headers),
            params=_joined(request.query),
            route_params=route_params,
            body=await request.read(),
        )
        arguments: dict[str, Any] = {function.trigger_parameter: http_request}
        client = function.durable_client_parameter
        if client is not None:
            # Management URLs point at the origin the caller used, like the extension's.
            arguments[client] = client_binding(request_origin(request), self._rpc_origin(), self._task_hub)
        started = time.monotonic()
        try:
            response = to_web_response(await self._invoker.invoke(function, arguments))
        except Exception:
            log.exception("function %s failed on %s %s", function.name, request.method, request.path)
            response = web.Response(status=500, text="Internal Server Error")
        log.info(
            "function %s: %s %s -> %d (%d ms)",
            function.name,
            request.method,
            request.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response
