"""Management API (x-admin-key): create apps, list and read them, change plans, rotate keys."""

from __future__ import annotations

import re
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import require_admin
from api.http import api_errors, json_body, json_response
from gateway.apps import PLANS, App, AppInfo
from gateway.clients import get_app_store
from gateway.errors import InvalidRequest, NotFound

bp = df.Blueprint()
MAX_NAME_CHARS = 200
MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_ID_CHARS = 128
_ID = re.compile(r"[A-Za-z0-9_-]+")


@bp.route(route="v1/manage/apps", methods=["POST"])
@api_errors
def create_app(req: func.HttpRequest) -> func.HttpResponse:
    require_admin(req)
    body = json_body(req)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"'name' must be a non-empty string of at most {MAX_NAME_CHARS} characters.",
            code="missing_required_parameter" if name is None else "invalid_value",
            param="name",
        )
    created = get_app_store().create_app(name.strip(), _plan(body))
    # The only response that ever carries the app's secrets.
    return json_response(
        {**_public(created.app), "api_key": created.api_key, "webhook_secret": created.app.webhook_secret},
        status=201,
        headers={"Location": f"/api/v1/manage/apps/{created.app.id}", "Cache-Control": "no-store"},
    )


@bp.route(route="v1/manage/apps", methods=["GET"])
@api_errors
def list_apps(req: func.HttpRequest) -> func.HttpResponse:
    """One page of apps, newest first by default: the shape and paging of GET /v1/videos."""
    require_admin(req)
    limit = _limit(req.params.get("limit"))
    order = req.params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid 'order': {order!r}. Expected asc or desc.", param="order")
    after = req.params.get("after") or None
    if after is not None and (len(after) > MAX_ID_CHARS or not _ID.fullmatch(after)):
        raise InvalidRequest(f"Invalid 'after': {after!r}. Expected an app id.", param="after")
    page = get_app_store().list_apps(limit=limit, after=after, newest_first=order == "desc")
    data = [_public(app) for app in page.apps]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )


@bp.route(route="v1/manage/apps/{app_id}", methods=["GET"])
@api_errors
def get_app(req: func.HttpRequest) -> func.HttpResponse:
    require_admin(req)
    return json_response(_public(_existing(req.route_params["app_id"])))


@bp.route(route="v1/manage/apps/{app_id}", methods=["PATCH"])
@api_errors
def update_app(req: func.HttpRequest) -> func.HttpResponse:
    require_admin(req)
    app_id = req.route_params["app_id"]
    plan = _plan(json_body(req))
    _existing(app_id)
    updated = get_app_store().set_plan(app_id, plan)
    if updated is None:
        raise NotFound(f"No app found with id '{app_id}'.", code="app_not_found", param="app_id")
    return json_response(_public(updated))


@bp.route(route="v1/manage/apps/{app_id}/keys", methods=["POST"])
@api_errors
def rotate_app_key(req: func.HttpRequest) -> func.HttpResponse:
    require_admin(req)
    app_id = req.route_params["app_id"]
    _existing(app_id)
    rotated = get_app_store().rotate_key(app_id)
    return json_response({"api_key": rotated.api_key}, headers={"Cache-Control": "no-store"})


def _plan(body: dict[str, Any]) -> str:
    plan = body.get("plan")
    if plan is None:
        raise InvalidRequest(
            "Missing required parameter: 'plan'.", code="missing_required_parameter", param="plan"
        )
    if plan not in PLANS:
        raise InvalidRequest(f"Invalid 'plan': {plan!r}. Expected one of: {', '.join(PLANS)}.", param="plan")
    return str(plan)


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    limit = int(raw) if re.fullmatch(r"[0-9]{1,4}", raw) else 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(
            f"Invalid 'limit': {raw!r}. Expected an integer from 1 to {MAX_PAGE}.", param="limit"
        )
    return limit


def _existing(app_id: str) -> App:
    app = get_app_store().get_app(app_id)
    if app is None:
        raise NotFound(f"No app found with id '{app_id}'.", code="app_not_found", param="app_id")
    return app


def _public(app: App | AppInfo) -> dict[str, Any]:
    return {"id": app.id, "object": "app", "name": app.name, "plan": app.plan, "created_at": app.created_at}
