"""A provider that is down: while the `down` knob names a protocol, every request to that
protocol's API paths is answered 503 in the protocol's own error shape.

Before faults and authentication, as a real outage: nothing is looked at, nothing happens. The
key-less CDN and media paths (`/_cdn/...`, `/_media/...`) are other hosts in reality and keep
serving, as do the identity endpoint and the `/_sim/` hooks (so a test can bring it back up).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from sorasim import aimlapi, fal, gemini, geminigen
from sorasim.errors import ApiError
from sorasim.gate import error_response
from sorasim.state import SimulatorState

_MESSAGE = "The service is unavailable (simulated outage)."

Render = Callable[[web.Request], web.Response]


def _openai(request: web.Request) -> web.Response:
    return error_response(ApiError(503, _MESSAGE, code="service_unavailable", type_="server_error"))


def _aimlapi(request: web.Request) -> web.Response:
    return aimlapi.error_response(request, 503, "Service unavailable")


def _geminigen(request: web.Request) -> web.Response:
    return geminigen.coded(503, "SYSTEM_ERROR", _MESSAGE).response()


def _gemini(request: web.Request) -> web.Response:
    return gemini.GoogleError(503, _MESSAGE).response()


def _fal(request: web.Request) -> web.Response:
    return fal.infrastructure(503, "runner_scheduling_failure", _MESSAGE, retryable=True).response()


# Path prefix -> (the protocol names that take it down, how it answers).
_PROTOCOLS: tuple[tuple[str, frozenset[str], Render], ...] = (
    ("/openai/", frozenset({"azure-openai", "openai"}), _openai),
    ("/v2/", frozenset({"aimlapi"}), _aimlapi),
    ("/uapi/", frozenset({"geminigen"}), _geminigen),
    ("/v1beta/", frozenset({"gemini"}), _gemini),
    (f"/{fal.OWNER}/", frozenset({"fal"}), _fal),
)


def outage_gate(state: SimulatorState) -> Middleware:
    @web.middleware
    async def outage(request: web.Request, handler: Handler) -> web.StreamResponse:
        down = state.config.down_list
        if down:
            for prefix, names, render in _PROTOCOLS:
                if request.path.startswith(prefix) and down & names:
                    return render(request)
        return await handler(request)

    return outage
