"""Operations endpoint: is storage reachable, and which provider accounts are cooling down?"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.http import api_errors, json_response
from gateway.clients import get_provider_health, get_tables
from gateway.errors import StorageUnavailable
from gateway.health import ProviderState
from gateway.settings import get_settings
from gateway.tables import HEALTH_TIMEOUTS

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.route(route="health", methods=["GET"])
@api_errors
def health(req: func.HttpRequest) -> func.HttpResponse:
    started = time.perf_counter()
    try:
        # One short try (gateway.tables.HEALTH_TIMEOUTS): a probe must hear "unhealthy" within
        # seconds when storage hangs, not wait out the request path's retries.
        get_tables().ping()
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        # Read fresh (no cache) within the same short budget: storage just answered.
        recorded = get_provider_health().states(timeouts=HEALTH_TIMEOUTS)
    except Exception as error:
        # Whatever keeps storage from answering (outage, bad settings, credentials) makes the
        # gateway unhealthy; the 503 says when to look again.
        log.warning("health: storage unreachable: %s", type(error).__name__)
        raise StorageUnavailable("Storage is unreachable.", code="storage_unreachable") from error
    now = time.time()
    # Every configured account, recorded or not: one nothing was recorded for is up.
    states = {name: recorded.get(name) or ProviderState.fresh(name) for name in get_settings().providers}
    body: dict[str, Any] = {
        "status": "ok",
        "storage": "ok",
        "storage_latency_ms": latency_ms,
        "providers": {name: "up" if state.up(now) else "down" for name, state in states.items()},
    }
    if _is_admin(req):
        body["provider_details"] = {name: _details(state) for name, state in states.items()}
    return json_response(body)


def _is_admin(req: func.HttpRequest) -> bool:
    """A valid x-admin-key (compared as api.auth.require_admin does). Anything else, a wrong key
    included, is an anonymous probe: it gets the summary, not an error."""
    expected = get_settings().admin_api_key
    presented = req.headers.get("x-admin-key", "")
    return bool(expected and presented) and hmac.compare_digest(presented.encode(), str(expected).encode())


def _details(state: ProviderState) -> dict[str, Any]:
    return {
        "accepted": state.accepted,
        "refused": state.refused,
        "failed": state.failed,
        "throttled": state.throttled,
        "consecutive_failures": state.consecutive_failures,
        "last_outcome": state.last_outcome,
        "last_outcome_at": state.last_outcome_at,
        "latency_ms": state.latency_ms,
        "cooling_down_until": state.cooling_down_until,
    }
