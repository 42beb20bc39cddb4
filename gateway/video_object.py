"""The Video object of the public API (OpenAI's fields plus the gateway's extensions)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from gateway.blobs import VideoAssets
from gateway.clients import get_video_assets
from gateway.jobs import Job
from gateway.pacing import Pace
from gateway.settings import DEFAULT_PROVIDER, Settings, get_settings


def render_video(job: Job, settings: Settings | None = None) -> dict[str, Any]:
    """The job as the API shows it, with freshly minted asset URLs."""
    settings = settings or get_settings()
    now = time.time()
    waiting = job.status == "queued" and job.upstream_id is None
    # Waiting for its turn with the provider (the gateway's pacing), or in the provider's queue.
    queue_position = (
        Pace(
            settings.provider_paces.get(
                job.provider or DEFAULT_PROVIDER, settings.upstream_creates_per_minute
            )
        ).queue_position(job.start_at, now)
        if waiting
        else job.upstream_queue_position
    )
    return video_object(
        job,
        assets=get_video_assets() if job.status == "completed" else None,
        sas_ttl=timedelta(minutes=settings.sas_ttl_minutes),
        pricing=_route_pricing(job, settings),
        now=now,
        queue_position=queue_position,
    )


def _route_pricing(job: Job, settings: Settings) -> Mapping[str, Mapping[str, float]]:
    """The prices of the route the job is on: the cost follows the provider actually used."""
    model = settings.catalog.get(job.model)
    route = model.route(job.provider, job.provider_model) if model is not None else None
    if route is None:
        return settings.pricing
    return {job.model: route.prices}


def estimated_cost(
    pricing: Mapping[str, Mapping[str, float]], model: str, size: str, seconds: str
) -> dict[str, Any] | None:
    per_second = pricing.get(model, {}).get(size)
    if per_second is None:
        return None
    return {"amount": round(per_second * int(seconds), 4), "currency": "USD"}


def video_object(
    job: Job,
    *,
    assets: VideoAssets | None,
    sas_ttl: timedelta,
    pricing: Mapping[str, Mapping[str, float]],
    now: float,
    queue_position: int | None = None,
) -> dict[str, Any]:
    """Render a job; asset URLs are minted fresh here and never stored."""
    available = job.status == "completed" and (job.expires_at is None or now < job.expires_at)
    video_url = download_url = thumbnail_url = None
    if available and assets is not None:
        if job.video_blob:
            video_url = assets.read_url(job.video_blob, sas_ttl)
            download_url = assets.read_url(job.video_blob, sas_ttl, save_as=f"{job.id}.mp4")
        if job.thumbnail_blob:
            thumbnail_url = assets.read_url(job.thumbnail_blob, sas_ttl)
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    return {
        "id": job.id,
        "object": "video",
        "status": job.status,
        "progress": 100 if job.status == "completed" else min(job.progress, 99),
        "model": job.model,
        "seconds": job.seconds,
        "size": job.size,
        "prompt": job.prompt,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "expires_at": job.expires_at,
        "error": error,
        "remixed_from_video_id": job.remixed_from_video_id,
        "video_url": video_url,
        "download_url": download_url,
        "thumbnail_url": thumbnail_url,
        "metadata": dict(job.metadata),
        "queue_position": queue_position if job.status == "queued" else None,
        # The forecast's median (gateway.forecast) as of the latest check; only while it runs.
        "estimated_completion_at": (
            None
            if job.finished or job.estimated_completion_at is None
            else max(int(now), round(job.estimated_completion_at))
        ),
        "estimated_cost": estimated_cost(pricing, job.model, job.size, job.seconds),
        # What the job was charged once it ended (0 when its money went back); null until then.
        "cost": None if job.cost is None else {"amount": round(job.cost, 6), "currency": "USD"},
        "provider": job.provider or DEFAULT_PROVIDER,
        "options": dict(job.options),
    }
