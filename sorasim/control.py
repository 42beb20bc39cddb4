"""Test hooks under /_sim/: counters, runtime knobs, reset. Never faulted, never authenticated."""

from __future__ import annotations

from aiohttp import web

from sorasim.errors import ApiError
from sorasim.state import SimulatorState


class ControlEndpoints:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_sim/health", self.health)
        app.router.add_get("/_sim/stats", self.stats)
        app.router.add_get("/_sim/created", self.created)
        app.router.add_get("/_sim/config", self.get_config)
        app.router.add_patch("/_sim/config", self.patch_config)
        app.router.add_post("/_sim/reset", self.reset)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self._state.stats.snapshot(), "jobs_stored": len(self._state.jobs)})

    async def created(self, request: web.Request) -> web.Response:
        """How many jobs were created whose prompt contains `prompt_contains`, and the
        provider-native option fields each of them carried, in creation order."""
        needle = request.query.get("prompt_contains", "")
        matching = [each for each in list(self._state.created) if needle in each.prompt]
        return web.json_response(
            {
                "prompt_contains": needle,
                "jobs_created": len(matching),
                "options": [dict(each.options) for each in matching],
            }
        )

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._state.config.public_view())

    async def patch_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
        except ValueError:
            raise ApiError(400, "Send a JSON object of knobs to change.", code="invalid_json") from None
        if not isinstance(changes, dict):
            raise ApiError(400, "Send a JSON object of knobs to change.", code="invalid_json")
        try:
            config = self._state.update_config(changes)
        except ValueError as error:
            raise ApiError(400, str(error), code="invalid_value") from None
        return web.json_response(config.public_view())

    async def reset(self, request: web.Request) -> web.Response:
        self._state.reset()
        return web.json_response({"reset": True})
