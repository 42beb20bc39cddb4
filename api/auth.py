"""Who is calling: app keys for the public API, the admin key for management."""

from __future__ import annotations

import hmac

import azure.functions as func

from gateway.apps import App
from gateway.clients import get_app_store
from gateway.errors import NotFound, Unauthorized
from gateway.settings import get_settings


def presented_key(req: func.HttpRequest) -> str | None:
    authorization = str(req.headers.get("authorization", ""))
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = str(req.headers.get("api-key", "")).strip()
    return api_key or None


def authenticate_app(req: func.HttpRequest) -> App:
    """The calling app; 401 `invalid_api_key` when the key is missing or unknown (blocking I/O)."""
    key = presented_key(req)
    if key is None:
        raise Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'api-key: <key>'."
        )
    app = get_app_store().authenticate(key)
    if app is None:
        raise Unauthorized("Incorrect API key provided.")
    return app


def require_admin(req: func.HttpRequest) -> None:
    """Management calls need `x-admin-key`; with no admin key configured they do not exist."""
    expected = get_settings().admin_api_key
    if not expected:
        raise NotFound("Not found.", code="not_found")
    presented = req.headers.get("x-admin-key", "")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthorized("Missing or incorrect x-admin-key.", code="invalid_admin_key")
