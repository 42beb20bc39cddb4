"""Management API (x-admin-key): create apps, read them, change plans, rotate keys."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import require_admin
from api.http import api_errors, json_body, json_response
from gateway.apps import PLANS, App
from gateway.clients import get_app_store
from gateway.errors import InvalidRequest, NotFound

bp = df.Blueprint()
MAX_NAME_CHARS = 200


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


def _existing(app_id: str) -> App:
    app = get_app_store().get_app(app_id)
    if app is None:
        raise NotFound(f"No app found with id '{app_id}'.", code="app_not_found", param="app_id")
    return app


def _public(app: App) -> dict[str, Any]:
    return {"id": app.id, "object": "app", "name": app.name, "plan": app.plan, "created_at": app.created_at}
