"""The aiohttp application: all routes behind the error and gate middlewares."""

from __future__ import annotations

from aiohttp import web

from sorasim.aimlapi import AimlApi
from sorasim.control import ControlEndpoints
from sorasim.fal import FalApi
from sorasim.gate import json_errors, videos_gate
from sorasim.gemini import GeminiApi
from sorasim.geminigen import GeminiGenApi
from sorasim.identity import IdentityEndpoint
from sorasim.outage import outage_gate
from sorasim.state import SimulatorState
from sorasim.videos import VideosApi

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Room for a reference image upload (OpenAI accepts images of some tens of MiB)."""


def build_app(state: SimulatorState, identity_header: str) -> web.Application:
    app = web.Application(
        middlewares=[json_errors, outage_gate(state), videos_gate(state)], client_max_size=MAX_BODY_BYTES
    )
    VideosApi(state).add_routes(app)
    IdentityEndpoint(state, identity_header).add_routes(app)
    ControlEndpoints(state).add_routes(app)
    GeminiGenApi(state).add_routes(app)
    GeminiApi(state).add_routes(app)
    AimlApi(state).add_routes(app)
    FalApi(state).add_routes(app)
    return app
