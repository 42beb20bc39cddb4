"""What happens to every request before its handler: counting, fault injection, authentication,
and turning errors into OpenAI-shaped JSON answers."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sorasim.errors import ApiError
from sorasim.faults import Fault, FaultKind
from sorasim.state import SimulatorState
from sorasim.tokens import TokenCheck

API_PREFIX = "/openai/v1/"

_HTTP_ERROR_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


def error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers)


def from_http_exception(exception: web.HTTPException) -> ApiError:
    """aiohttp's own errors (unknown route, wrong method, body too large) in the OpenAI shape."""
    code = _HTTP_ERROR_CODES.get(exception.status, "invalid_request")
    message = exception.text or exception.reason
    if exception.status == 404:
        message = "Not found: no such route."
    return ApiError(exception.status, message, code=code)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error)
    except web.HTTPException as exception:
        if exception.status < 400:
            raise
        return error_response(from_http_exception(exception))


def videos_gate(state: SimulatorState) -> Middleware:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        state.stats.increment("requests")
        # Faults come first: an overloaded upstream fails before looking at who is asking,
        # and a faulted request must have no side effect.
        config = state.config
        fault = state.faults.draw(config.fault_rate, config.fault_kind_list)
        if fault is not None:
            return _answer_with_fault(request, fault, state)
        try:
            _authorize(request, state)
            return await handler(request)
        except ApiError as error:
            _count_error(error.status, state)
            return error_response(error)
        except web.HTTPException as exception:
            if exception.status < 400:
                raise
            converted = from_http_exception(exception)
            _count_error(converted.status, state)
            return error_response(converted)

    return gate


def _count_error(status: int, state: SimulatorState) -> None:
    if status == 401:
        state.stats.increment("unauthorized")
    elif 400 <= status < 500 and status != 429:
        state.stats.increment("client_errors")


def answer_fault(
    request: web.Request, fault: Fault, state: SimulatorState, render: Callable[[Fault], web.Response]
) -> web.Response:
    """Count an injected fault and answer it, for every protocol the simulator speaks: a dropped
    connection is cut here; the other kinds are rendered in the protocol's own error shape."""
    state.stats.increment("faults_injected")
    if fault.kind is FaultKind.DROPPED_CONNECTION:
        state.stats.increment("faults_dropped")
        if request.transport is not None:
            request.transport.abort()
        # Never sent: the connection is gone; aiohttp only needs a response object.
        return web.Response(status=500)
    state.stats.increment(f"faults_{fault.kind.value}")
    return render(fault)


def _answer_with_fault(request: web.Request, fault: Fault, state: SimulatorState) -> web.Response:
    return answer_fault(request, fault, state, _openai_fault)


def _openai_fault(fault: Fault) -> web.Response:
    """A simulated fault in Azure OpenAI's error shape."""
    if fault.kind is FaultKind.TOO_MANY_REQUESTS:
        retry_after = fault.retry_after or 1
        return error_response(
            ApiError(
                429,
                f"Requests to the Videos API have exceeded a temporary rate limit (simulated fault). "
                f"Please retry after {retry_after} second{'s' if retry_after != 1 else ''}.",
                code="rate_limit_exceeded",
                type_="requests",
                headers={"Retry-After": str(retry_after)},
            )
        )
    if fault.kind is FaultKind.SERVICE_UNAVAILABLE:
        return error_response(
            ApiError(
                503,
                "The service is temporarily unavailable (simulated fault). Please retry.",
                code="service_unavailable",
                type_="server_error",
            )
        )
    return error_response(
        ApiError(
            500,
            "The server had an error while processing your request (simulated fault). Please retry.",
            code="internal_server_error",
            type_="server_error",
        )
    )


def _authorize(request: web.Request, state: SimulatorState) -> None:
    """Accept a valid bearer token, or the configured api-key (in `api-key`, or as the bearer
    token as OpenAI takes it); otherwise raise a 401."""
    configured_key = state.config.api_key
    sent_key = request.headers.get("api-key")
    if configured_key is not None and sent_key is not None and same_secret(sent_key, configured_key):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if configured_key is not None and scheme.lower() == "bearer" and same_secret(token, configured_key):
        return  # OpenAI's own form of an API key, for OpenAI-compatible clients
    if scheme.lower() != "bearer" or not token:
        if sent_key is not None:
            raise _unauthorized("Incorrect API key provided in the api-key header.", "invalid_api_key")
        raise _unauthorized(
            "Missing credentials: send 'Authorization: Bearer <Microsoft Entra ID token>'.", "invalid_api_key"
        )
    check = state.tokens.check(token, state.clock())
    if check is TokenCheck.VALID:
        return
    if check is TokenCheck.EXPIRED:
        raise _unauthorized("The access token has expired. Acquire a new token and retry.", "token_expired")
    if check is TokenCheck.WRONG_AUDIENCE:
        raise _unauthorized(
            "The access token was issued for another audience; request one for "
            "https://cognitiveservices.azure.com/.default.",
            "invalid_api_key",
        )
    raise _unauthorized("Access denied: the access token is not valid.", "invalid_api_key")


def _unauthorized(message: str, code: str) -> ApiError:
    return ApiError(401, message, code=code)


def same_secret(sent: str, expected: str) -> bool:
    """Compare a sent secret in constant time, for every protocol's key check."""
    return hmac.compare_digest(sent.encode(), expected.encode())


class ProtocolError(Protocol):
    """An error a simulated protocol answers in its own shape."""

    status: int

    def response(self) -> web.Response: ...


def guarded(
    state: SimulatorState,
    handler: Handler,
    *,
    authorize: Callable[[web.Request], None],
    render_fault: Callable[[Fault], web.Response],
    errors: type[Exception],
) -> Handler:
    """A provider protocol's route: injected faults first (a faulted request has no side effect),
    then the key, then the handler; the protocol's own errors (`errors`, ProtocolError-shaped) are
    answered in its shape and counted like the OpenAI protocol's."""

    async def guarded_handler(request: web.Request) -> web.StreamResponse:
        state.stats.increment("requests")
        config = state.config
        fault = state.faults.draw(config.fault_rate, config.fault_kind_list)
        if fault is not None:
            return answer_fault(request, fault, state, render_fault)
        try:
            authorize(request)
            return await handler(request)
        except errors as raised:
            error: ProtocolError = raised  # type: ignore[assignment]
            if 400 <= error.status < 500 and error.status not in (401, 429):
                state.stats.increment("client_errors")
            return error.response()

    return guarded_handler
