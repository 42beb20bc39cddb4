"""Serving the app's HTTP-triggered functions at /{routePrefix}/{route}.

Each request goes to the function as the Functions host sends it (an `RpcHttp` in `TypedData`),
and the runtime's converters build the `azure.functions.HttpRequest` the function receives; its
answer comes back the same way. A durableClient parameter receives the binding string the
extension would pass, which the library's middleware turns into a DurableOrchestrationClient that
calls back into this host.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from devhost import rpc
from devhost.functions import IndexedFunction, Invoker, typed_value
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


_SAME_SITE = {1: "Lax", 2: "Strict", 3: "None"}


def set_cookie_header(cookie: rpc.RpcHttpCookie) -> str:
    """A Set-Cookie header from the cookie the runtime sent (the host's job in Azure).

    The worker protocol's header map holds one value per name, so the azure-functions library
    moves every Set-Cookie header into this cookie list; no other header can repeat.
    """
    parts = [f"{cookie.name}={cookie.value}"]
    for attribute, field in (("Domain", "domain"), ("Path", "path"), ("Max-Age", "max_age")):
        nullable = getattr(cookie, field, None)
        if nullable is not None and nullable.value not in ("", None):
            value = nullable.value
            parts.append(f"{attribute}={int(value) if isinstance(value, float) else value}")
    expires = getattr(cookie, "expires", None)
    if expires is not None:
        moment = dt.datetime.fromtimestamp(expires.value.seconds, dt.UTC)
        parts.append(f"Expires={moment:%a, %d %b %Y %H:%M:%S} GMT")
    if getattr(cookie, "secure", None) is not None and cookie.secure.value:
        parts.append("Secure")
    if getattr(cookie, "http_only", None) is not None and cookie.http_only.value:
        parts.append("HttpOnly")
    same_site = _SAME_SITE.get(getattr(cookie, "same_site", 0) or 0)
    if same_site:
        parts.append(f"SameSite={same_site}")
    return "; ".join(parts)


def to_web_response(result: rpc.TypedData | None) -> web.Response:
    """The HTTP answer for what the function returned, as the runtime encoded it."""
    kind = None if result is None else result.WhichOneof("data")
    if result is None or kind is None:
        return web.Response(status=204)
    if kind == "string":
        return web.Response(status=200, text=result.string, content_type="text/plain", charset="utf-8")
    if kind != "http":
        raise TypeError(f"an HTTP function returned {kind} data, not an HttpResponse")
    http = result.http
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in http.headers.items():
        if name.lower() not in _FRAMING_HEADERS:
            headers.add(name, value)
    for cookie in http.cookies:
        headers.add("Set-Cookie", set_cookie_header(cookie))
    body = typed_value(http.body)
    if isinstance(body, str):
        body = body.encode()
    return web.Response(status=int(http.status_code or 200), body=body or b"", headers=headers)


class HttpFunctionServer:
    def __init__(
        self,
        functions: list[IndexedFunction],
        invoker: Invoker,
        route_prefix: str,
        task_hub: str,
        rpc_origin: Callable[[], str],
        durable_key: str | None = None,
    ) -> None:
        self._routes = build_routes(functions)
        self._invoker = invoker
        self._prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self._task_hub = task_hub
        self._rpc_origin = rpc_origin
        self._durable_key = durable_key

    def add_routes(self, app: web.Application) -> None:
        # Any path, newlines included (a percent-encoded %0A decodes to one): the host's router
        # hands such a segment to the function, as it does any other character but "/".
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)

    def _resolve(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | int:
        if self._prefix:
            if path.lower() != self._prefix.lower() and not path.lower().startswith(
                self._prefix.lower() + "/"
            ):
                return 404
            path = path[len(self._prefix) :]
        for entry in self._routes:
            values = entry.route.match(path or "/")
            if values is not None and entry.route.allows(method):
                return entry, values
        # A path whose functions take other methods is 404 too: the host's router treats the
        # method as part of the route (Azure/azure-functions-host#10098, #11625).
        return 404

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resolved = self._resolve(request.method, request.path)
        if isinstance(resolved, int):
            return web.Response(status=resolved)
        entry, route_params = resolved
        function = entry.function
        http_request = rpc.RpcHttp(
            method=request.method,
            url=str(request.url),
            headers=_joined(request.headers),
            query=_joined(request.query),
            params=route_params,
            body=rpc.TypedData(bytes=await request.read()),
        )
        arguments = {function.trigger_parameter: rpc.TypedData(http=http_request)}
        client = function.durable_client_parameter
        if client is not None:
            # Management URLs point at the origin the caller used, like the extension's.
            binding = client_binding(
                request_origin(request), self._rpc_origin(), self._task_hub, self._durable_key
            )
            arguments[client] = rpc.TypedData(string=binding)
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
