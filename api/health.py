"""Operations endpoint: is storage reachable?"""

from __future__ import annotations

import logging
import time

import azure.durable_functions as df
import azure.functions as func

from api.http import api_errors, json_response
from gateway.clients import get_tables
from gateway.errors import StorageUnavailable

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
    except Exception as error:
        # Whatever keeps storage from answering (outage, bad settings, credentials) makes the
        # gateway unhealthy; the 503 says when to look again.
        log.warning("health: storage unreachable: %s", type(error).__name__)
        raise StorageUnavailable("Storage is unreachable.", code="storage_unreachable") from error
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return json_response({"status": "ok", "storage": "ok", "storage_latency_ms": latency_ms})
