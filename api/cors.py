"""Preflight (OPTIONS) answers for the origins listed in CORS_ALLOWED_ORIGINS.

One catch-all OPTIONS route: the Functions host routes by path and method, so it never takes a
GET or POST from the API's own functions (and a method a path lacks still answers 404, as the
host answers it). In Azure, leave the platform's CORS setting (`az functionapp cors`) empty:
when it lists origins, the platform answers preflights itself and this never runs.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from api.http import api_errors
from api.origins import ALLOWED_METHODS, allowed_origin, preflight_headers
from gateway.errors import Forbidden

bp = df.Blueprint()


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


@bp.route(route="{*path}", methods=["OPTIONS"])
@api_errors
def cors_preflight(req: func.HttpRequest) -> func.HttpResponse:
    origin = allowed_origin(req)
    if origin is None:
        raise OriginNotAllowed(
            "Cross-origin requests from this origin are not allowed. An operator can allow it "
            "in the CORS_ALLOWED_ORIGINS setting."
        )
    method = str(req.headers.get("access-control-request-method", "")).strip().upper()
    if method not in ALLOWED_METHODS.split(", "):
        raise OriginNotAllowed(f"Method {method or '(none)'} is not offered to other origins.")
    headers = preflight_headers(origin, str(req.headers.get("access-control-request-headers", "")))
    if headers is None:
        raise OriginNotAllowed("The preflight asked for headers that are not header names.")
    return func.HttpResponse(status_code=204, headers=headers)
