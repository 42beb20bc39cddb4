"""Management API (x-admin-key): create apps, list and read them, change plans, rotate keys, read
an app's usage and the recent failures across apps."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import require_admin
from api.http import api_errors, json_body, json_response
from api.usage import usage_response
from gateway.apps import PLANS, App, AppInfo
from gateway.budgets import BudgetSpecError, parse_budget
from gateway.clients import get_app_store, get_job_store
from gateway.errors import InvalidRequest, NotFound
from gateway.jobs import Job

bp = df.Blueprint()
MAX_NAME_CHARS = 200
MAX_PAGE = 100
DEFAULT_PAGE = 20
MAX_ID_CHARS = 128
_ID = re.compile(r"[A-Za-z0-9_-]+")
# The failures view looks back a day unless asked.
FAILURE_WINDOW_SECONDS = 24 * 3600
DEFAULT_FAILURES = 50


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
    body = json_body(req)
    # A plan, the app's own budget (an object of budget fields; null: its plan's again), or both.
    plan = _plan(body) if "plan" in body or "budget" not in body else None
    budget = _budget(body["budget"]) if "budget" in body else None
    _existing(app_id)
    updated: App | None = None
    if plan is not None:
        updated = get_app_store().set_plan(app_id, plan)
    if "budget" in body and (plan is None or updated is not None):
        updated = get_app_store().set_budget(app_id, budget)
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


@bp.route(route="v1/manage/apps/{app_id}/usage", methods=["GET"])
@api_errors
def get_app_usage(req: func.HttpRequest) -> func.HttpResponse:
    """The app's plan and quota, exactly as the app itself reads them at GET /v1/usage."""
    require_admin(req)
    app = _existing(req.route_params["app_id"])
    return usage_response(app)


@bp.route(route="v1/manage/failures", methods=["GET"])
@api_errors
def list_failures(req: func.HttpRequest) -> func.HttpResponse:
    """The newest failed videos across apps since `since`, with counts per code and provider.

    The counts cover every failure in the window, not just the page shown, so they serve as the
    providers' health: none of the providers publishes one the gateway could read."""
    require_admin(req)
    limit = _limit(req.params.get("limit"), default=DEFAULT_FAILURES)
    since = _since(req.params.get("since"), now=time.time())
    failed = sorted(
        get_job_store().failed_since(since),
        key=lambda job: (job.completed_at or job.created_at, job.id),
        reverse=True,
    )
    return json_response(
        {
            "object": "list",
            "data": [_failure(job) for job in failed[:limit]],
            "has_more": len(failed) > limit,
            "since": since,
            "counts": {
                "by_code": dict(Counter(job.error_code or "unknown" for job in failed)),
                "by_provider": dict(Counter(job.provider or "unknown" for job in failed)),
            },
        }
    )


def _failure(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "object": "video.failure",
        "app_id": job.app_id,
        "model": job.model,
        "provider": job.provider,
        "error": {"code": job.error_code, "message": job.error_message or ""},
        "created_at": job.created_at,
        "completed_at": job.completed_at,
    }


def _plan(body: dict[str, Any]) -> str:
    plan = body.get("plan")
    if plan is None:
        raise InvalidRequest(
            "Missing required parameter: 'plan'.", code="missing_required_parameter", param="plan"
        )
    if plan not in PLANS:
        raise InvalidRequest(f"Invalid 'plan': {plan!r}. Expected one of: {', '.join(PLANS)}.", param="plan")
    return str(plan)


def _budget(value: Any) -> str | None:
    """An app's own budget as stored (checked JSON), or None to give it its plan's again."""
    if value is None:
        return None
    try:
        parse_budget(value)
    except BudgetSpecError as error:
        raise InvalidRequest(f"Invalid 'budget': {error}.", param="budget") from error
    return json.dumps(value, sort_keys=True)


def _limit(raw: str | None, *, default: int = DEFAULT_PAGE) -> int:
    if raw is None:
        return default
    limit = int(raw) if re.fullmatch(r"[0-9]{1,4}", raw) else 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(
            f"Invalid 'limit': {raw!r}. Expected an integer from 1 to {MAX_PAGE}.", param="limit"
        )
    return limit


def _since(raw: str | None, *, now: float) -> int:
    """Unix seconds, no later than now; a day ago by default."""
    if raw is None:
        return int(now) - FAILURE_WINDOW_SECONDS
    if not re.fullmatch(r"[0-9]{1,12}", raw) or int(raw) > now:
        raise InvalidRequest(
            f"Invalid 'since': {raw!r}. Expected Unix seconds, not in the future.", param="since"
        )
    return int(raw)


def _existing(app_id: str) -> App:
    app = get_app_store().get_app(app_id)
    if app is None:
        raise NotFound(f"No app found with id '{app_id}'.", code="app_not_found", param="app_id")
    return app


def _public(app: App | AppInfo) -> dict[str, Any]:
    return {"id": app.id, "object": "app", "name": app.name, "plan": app.plan, "created_at": app.created_at}
