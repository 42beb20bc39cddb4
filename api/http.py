"""Responses in the OpenAI shape, and the one place that turns errors into HTTP answers."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

import azure.functions as func

from api.bodies import parse_json_object
from api.origins import add_cors_headers
from gateway.errors import ApiError, SettingsError

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
# Management bodies are a name and a plan; video creates pass their own, larger bound.
MAX_JSON_BODY_BYTES = 64 * 1024


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=dict(headers or {}),
        mimetype="application/json",
        charset="utf-8",
    )


def error_response(error: ApiError) -> func.HttpResponse:
    body: dict[str, Any] = {
        "message": error.message,
        "type": error.type,
        "param": error.param,
        "code": error.code,
        **error.extra,
    }
    return json_response({"error": body}, status=error.status, headers=error.headers)


def internal_error_response() -> func.HttpResponse:
    return error_response(
        _InternalError("The server had an error while processing your request.", code="internal_error")
    )


class _InternalError(ApiError):
    status = 500
    type = "server_error"


def api_errors[**P, R](handler: Callable[P, R]) -> Callable[P, R]:
    """Map `ApiError` to its OpenAI-shaped answer and anything unexpected to a bare 500.

    Wraps sync and async handlers alike; the signature is kept so the Functions worker still
    matches the binding parameter names.
    """

    def handle(error: Exception) -> func.HttpResponse:
        if isinstance(error, ApiError):
            return error_response(error)
        # Logged with its traceback for operators; the client learns nothing internal.
        if isinstance(error, SettingsError):
            log.error("configuration error: %s", error)
        else:
            log.exception("unhandled error in %s", handler.__name__)
        return internal_error_response()

    if inspect.iscoroutinefunction(handler):
        async_handler = cast(Callable[P, Awaitable[func.HttpResponse]], handler)

        @functools.wraps(handler)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
            try:
                response = await async_handler(*args, **kwargs)
            except Exception as error:
                response = handle(error)
            return _cross_origin(response, args, kwargs)

        return cast(Callable[P, R], async_wrapper)

    sync_handler = cast(Callable[P, func.HttpResponse], handler)

    @functools.wraps(handler)
    def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            response = sync_handler(*args, **kwargs)
        except Exception as error:
            response = handle(error)
        return _cross_origin(response, args, kwargs)

    return cast(Callable[P, R], sync_wrapper)


def _cross_origin(
    response: func.HttpResponse, args: tuple[object, ...], kwargs: dict[str, object]
) -> func.HttpResponse:
    """Every answer, errors included, is readable by a page of an allowed origin: a page that
    cannot read a 429's Retry-After cannot back off."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, func.HttpRequest):
            return add_cors_headers(value, response)
    return response


def json_body(req: func.HttpRequest, *, max_bytes: int = MAX_JSON_BODY_BYTES) -> dict[str, Any]:
    """The request body as one JSON object, bounded in size, depth and number length (a 4xx if not)."""
    return parse_json_object(req.get_body(), max_bytes=max_bytes)
