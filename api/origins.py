"""Cross-origin access (CORS) for the web origins an operator allows in CORS_ALLOWED_ORIGINS.

The console works on the gateway's own origin and needs none of this. Other origins (an app's
own web front end calling with its key) are let in only when listed exactly. Keys travel in
headers, never cookies, so answers never say `Access-Control-Allow-Credentials`.
"""

from __future__ import annotations

import re

import azure.functions as func

from gateway.settings import get_settings

ALLOWED_METHODS = "GET, HEAD, POST, PATCH, DELETE"
# What a page may read besides the CORS-safelisted headers: polling advice, quota, Location.
EXPOSED_HEADERS = ", ".join(
    (
        "Retry-After",
        "Location",
        "openai-poll-after-ms",
        "x-ratelimit-limit-hour",
        "x-ratelimit-remaining-hour",
        "x-ratelimit-limit-day",
        "x-ratelimit-remaining-day",
    )
)
PREFLIGHT_MAX_AGE_SECONDS = 600
# Header names a preflight may ask for (RFC 9110 tokens), and how many: the openai SDKs send a
# family of x-stainless-* headers, so the list asked for is echoed rather than fixed here.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
MAX_REQUESTED_HEADERS = 32


def allowed_origin(req: func.HttpRequest) -> str | None:
    """The request's Origin when CORS_ALLOWED_ORIGINS lists it, else None."""
    origin = str(req.headers.get("origin", "")).strip().lower()
    if origin and origin in get_settings().cors_allowed_origins:
        return origin
    return None


def response_headers(origin: str) -> dict[str, str]:
    """What an answer to an allowed origin carries so its page may read it."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str, requested_headers: str) -> dict[str, str] | None:
    """The answer to an allowed origin's preflight, or None when the headers it asks for are
    not header names (nothing a browser would send)."""
    names = [name.strip().lower() for name in requested_headers.split(",") if name.strip()]
    if len(names) > MAX_REQUESTED_HEADERS or not all(_HEADER_NAME.fullmatch(name) for name in names):
        return None
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
        "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    }
    if names:
        headers["Access-Control-Allow-Headers"] = ", ".join(names)
    return headers


def add_cors_headers(req: func.HttpRequest, response: func.HttpResponse) -> func.HttpResponse:
    """Let an allowed origin's page read `response`; other answers are left as they are."""
    origin = allowed_origin(req)
    if origin is not None:
        for name, value in response_headers(origin).items():
            response.headers[name] = value
    return response
