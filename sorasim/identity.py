"""The App Service managed-identity token endpoint (protocol version 2019-08-01).

azure-identity's ManagedIdentityCredential (through MSAL) calls it when IDENTITY_ENDPOINT and
IDENTITY_HEADER are set: GET ?api-version=2019-08-01&resource=... with X-IDENTITY-HEADER.
"""

from __future__ import annotations

import hmac
import uuid

from aiohttp import web

from sorasim.state import SimulatorState

API_VERSION = "2019-08-01"

# A fixed identity, as a system-assigned managed identity has one client id for its lifetime.
CLIENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sorasim/managed-identity"))


class IdentityEndpoint:
    def __init__(self, state: SimulatorState, identity_header: str) -> None:
        self._state = state
        self._identity_header = identity_header

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/msi/token", self.issue_token)

    async def issue_token(self, request: web.Request) -> web.Response:
        sent = request.headers.get("X-IDENTITY-HEADER")
        if sent is None:
            return self._refuse(400, "Missing X-IDENTITY-HEADER header.")
        if not hmac.compare_digest(sent.encode(), self._identity_header.encode()):
            return self._refuse(401, "X-IDENTITY-HEADER does not match this identity endpoint's secret.")
        if request.query.get("api-version") != API_VERSION:
            return self._refuse(400, f"Unsupported api-version; this endpoint speaks {API_VERSION}.")
        resource = request.query.get("resource", "").strip()
        if not resource:
            return self._refuse(400, "Missing the 'resource' query parameter.")
        token = self._state.tokens.issue(resource, self._state.config.token_ttl_seconds, self._state.clock())
        self._state.stats.increment("tokens_issued")
        return web.json_response(
            {
                "access_token": token.value,
                # App Service sends unix seconds as a string; MSAL converts with int().
                "expires_on": str(token.expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": CLIENT_ID,
            }
        )

    def _refuse(self, status: int, message: str) -> web.Response:
        self._state.stats.increment("token_requests_rejected")
        # The shape App Service uses; MSAL puts statusCode and message into its error text.
        return web.json_response({"statusCode": status, "message": message}, status=status)
