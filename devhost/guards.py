"""What the Functions host checks before a request reaches a handler: the host key on its own
webhooks, and the request body's size.

Facts from Azure/azure-functions-host this imitates:

- Kestrel's `MaxRequestBodySize` is `ScriptConstants.DefaultMaxRequestBodySize`, 104857600 bytes
  (100 MiB), unless the app setting `FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` names another number
  (`HttpRequestBodySizeMiddleware`). A larger body is answered 413: at once when Content-Length
  says so, else as soon as the bytes read pass the limit.
- The webhook route is authorized before its handler reads the body, so a caller without a key
  is answered 401 and never has its body read.
- The Durable extension's local RPC endpoint (the durable client's `rpcBaseUrl`) is a separate
  Kestrel listener on 127.0.0.1 with no authorization and no body limit
  (`LocalHttpListener`: `MaxRequestBodySize = null`), so none of this applies there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

from devhost.keys import HostKeys, presented_key

# ScriptConstants.DefaultMaxRequestBodySize in the Functions host.
DEFAULT_MAX_REQUEST_BODY_BYTES = 104_857_600
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
WEBHOOKS_PREFIX = "/runtime/webhooks/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def max_request_body_bytes(values: Mapping[str, str]) -> int:
    """The host's body limit: FUNCTIONS_REQUEST_BODY_SIZE_LIMIT when it is a number, else the default."""
    raw = values.get(BODY_LIMIT_SETTING, "").strip()
    try:
        return int(raw)
    except ValueError:
        return DEFAULT_MAX_REQUEST_BODY_BYTES


def _refusal(status: int) -> web.Response:
    response = web.Response(status=status, body=b"")
    # The body was not read: close the connection after this answer rather than keep it alive.
    response.force_close()
    return response


def webhook_extension(path: str) -> str | None:
    """`durabletask` for /runtime/webhooks/durabletask/...; None for any other path.

    ASP.NET routing ignores case, so the prefix does too."""
    if not path.lower().startswith(WEBHOOKS_PREFIX):
        return None
    return path[len(WEBHOOKS_PREFIX) :].split("/", 1)[0].lower()


def host_key_guard(keys: HostKeys) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        extension = webhook_extension(request.path)
        if extension is not None:
            presented = presented_key(request.headers, request.query)
            if not keys.authorizes_extension(presented, extension):
                return _refusal(401)
        return await handler(request)

    return guard


def body_size_guard(limit: int) -> Middleware:
    """Refuse a declared oversize body before reading a byte of it. A body without a declared
    length (chunked) is cut off by the application's client_max_size while it streams in."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > limit:
            return _refusal(413)
        return await handler(request)

    return guard
