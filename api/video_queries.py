"""Reading videos: retrieve, list, and download their content."""

from __future__ import annotations

import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.http import api_errors, json_response
from api.video_views import get_owned_job, poll_headers
from gateway.clients import get_job_store, get_video_assets
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.settings import get_settings
from gateway.video_object import render_video as render

bp = df.Blueprint()

MAX_PAGE = 100
DEFAULT_PAGE = 20
VARIANTS = ("video", "thumbnail")


@bp.route(route="v1/videos/{video_id}", methods=["GET"])
@api_errors
def retrieve_video(req: func.HttpRequest) -> func.HttpResponse:
    app = authenticate_app(req)
    job = get_owned_job(app, req.route_params["video_id"])
    return json_response(render(job), headers=poll_headers(job))


@bp.route(route="v1/videos", methods=["GET"])
@api_errors
def list_videos(req: func.HttpRequest) -> func.HttpResponse:
    app = authenticate_app(req)
    limit = _limit(req.params.get("limit"))
    order = req.params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid 'order': {order!r}. Expected asc or desc.", param="order")
    after = req.params.get("after") or None
    jobs, has_more = get_job_store().list_jobs(app.id, limit=limit, after=after, newest_first=order == "desc")
    settings = get_settings()
    data = [render(job, settings) for job in jobs]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


@bp.route(route="v1/videos/{video_id}/content", methods=["GET"])
@api_errors
def download_video_content(req: func.HttpRequest) -> func.HttpResponse:
    """302 to a fresh read-only SAS URL of the asset."""
    app = authenticate_app(req)
    job = get_owned_job(app, req.route_params["video_id"])
    variant = req.params.get("variant", "video")
    if variant not in (*VARIANTS, "spritesheet"):
        raise InvalidRequest(f"Invalid 'variant': {variant!r}. Expected video or thumbnail.", param="variant")
    if job.status != "completed":
        raise Conflict(
            f"Video '{job.id}' is not ready; its status is '{job.status}'.", code="video_not_ready"
        )
    if job.expires_at is not None and time.time() >= job.expires_at:
        raise NotFound(f"Video '{job.id}' has expired and its assets were deleted.", code="video_expired")
    blob = job.video_blob if variant == "video" else job.thumbnail_blob if variant == "thumbnail" else None
    if blob is None:
        raise NotFound(f"Video '{job.id}' has no {variant}.", code="variant_not_found", param="variant")
    url = get_video_assets().read_url(blob, timedelta(minutes=get_settings().sas_ttl_minutes))
    return func.HttpResponse(status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(
            f"Invalid 'limit': {raw!r}. Expected an integer from 1 to {MAX_PAGE}.", param="limit"
        )
    return limit
