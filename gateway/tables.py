"""Table handles for the gateway's tables, and the storage seam every storage client shares.

Every Table and Blob client this process builds gets bounded timeouts and retries (so storage
that hangs costs a request seconds, not minutes) and the `StorageOutagePolicy`, which turns an
outage into the gateway's own `StorageUnavailable` (a 503 with Retry-After) where the SDK would
raise azure-core errors that the API layer can only answer with a 500.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway import azure_sdk as sdk
from gateway.errors import StorageUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.data.tables import TableClient, TableServiceClient

APPS_TABLE = "apps"
APP_KEYS_TABLE = "appkeys"
JOBS_TABLE = "jobs"
PROVIDER_HEALTH_TABLE = "providerhealth"  # gateway.health: one row per provider account
DURATIONS_TABLE = "durations"  # gateway.durations: one row per kind of job

log = logging.getLogger(__name__)

# Statuses that say "storage is not serving right now" once the client's own retries are spent.
# Every other status (404, 409, 412, ...) is an answer the stores rely on and passes unchanged.
OUTAGE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class StorageTimeouts:
    """How long one storage call may take: per try, a connect and a read timeout; tries in all,
    one plus `retries`, with at most `backoff` seconds between them."""

    connect: float
    read: float
    retries: int
    backoff: float

    @property
    def deadline(self) -> float:
        """The longest one call can take before it raises (every try timing out in full)."""
        return (self.retries + 1) * (self.connect + self.read) + self.retries * self.backoff

    def call_options(self) -> dict[str, Any]:
        """Per-call keyword arguments overriding a client's defaults (Table and Blob SDKs alike)."""
        return {"connection_timeout": self.connect, "read_timeout": self.read, "retry_total": self.retries}


# The default of every storage client, so of every request: Azure Storage answers point reads and
# writes in milliseconds; 4 s without a byte is an outage, not a slow answer. The first retry goes
# at once (azure-core) or after a short pause (Blob); a paused server costs about 2 x 4 s.
REQUEST_TIMEOUTS = StorageTimeouts(connect=2.0, read=4.0, retries=1, backoff=0.75)
# Health must answer well before a load balancer's probe gives up: one short try.
HEALTH_TIMEOUTS = StorageTimeouts(connect=1.0, read=2.0, retries=0, backoff=0.0)


def guard_storage_call(request: PipelineRequest[Any], send: Any) -> PipelineResponse[Any, Any]:
    """`send(request)`, with an outage raised as `StorageUnavailable` (see StorageOutagePolicy)."""
    target = f"{request.http_request.method} {request.http_request.url.split('?')[0]}"
    try:
        response: PipelineResponse[Any, Any] = send(request)
    except (sdk.ServiceRequestError, sdk.ServiceResponseError) as error:
        log.warning("storage unavailable: %s: %s", target, type(error).__name__)
        raise StorageUnavailable() from error
    status = response.http_response.status_code
    if status in OUTAGE_STATUSES:
        log.warning("storage unavailable: %s answered %s after retries", target, status)
        raise StorageUnavailable()
    return response


def table_service(
    connection_string: str | None = None,
    *,
    endpoint: str | None = None,
    credential: TokenCredential | None = None,
) -> TableServiceClient:
    """A Table service client with the request timeouts, bounded retries and the outage policy."""
    options: dict[str, Any] = {
        "connection_timeout": REQUEST_TIMEOUTS.connect,
        "read_timeout": REQUEST_TIMEOUTS.read,
        "retry_total": REQUEST_TIMEOUTS.retries,
        # azure-core retries the first time at once, then backs off by factor * 2^n, capped.
        "retry_backoff_factor": REQUEST_TIMEOUTS.backoff,
        "retry_backoff_max": REQUEST_TIMEOUTS.backoff,
        # azure-core's own cap on one call: no try starts after it (it also shortens the
        # connect timeout of the last try to what is left).
        "timeout": REQUEST_TIMEOUTS.deadline,
    }
    if connection_string:
        return _guarded_table_service().from_connection_string(connection_string, **options)
    if endpoint is None:
        raise ValueError("a Table service needs a connection string or an endpoint")
    return _guarded_table_service()(endpoint=endpoint, credential=credential, **options)


@functools.cache
def _guarded_table_service() -> type[TableServiceClient]:
    """The Table service client class with the storage seam, built on first use (with the SDK:
    see gateway.azure_sdk for why nothing of it is imported with this module)."""
    from azure.core.pipeline.policies import HTTPPolicy
    from azure.data.tables import TableServiceClient

    class StorageOutagePolicy(HTTPPolicy[Any, Any]):
        """Raises `StorageUnavailable` (chained to the cause) when a storage call fails for want of
        storage: connection refused or reset, a connect or read timeout, or a 5xx after the retries.

        Why a pipeline policy rather than wrapping `Tables.get` or each store: every call of every
        client goes through its pipeline, including the pages of a lazy query and the blocks of an
        upload, so no call can slip past it, and the stores keep catching the SDK's own
        ResourceNotFoundError / ResourceExistsError / ResourceModifiedError, which it never sees
        (they are raised by the client after the pipeline returns the 404 / 409 / 412). It sits
        outside the retry policy (Tables: first in the pipeline; Blob: the retry policy's own `send`), so
        it judges only the outcome of the last try.
        """

        def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
            return guard_storage_call(request, self.next.send)

    class GuardedTableService(TableServiceClient):
        """A TableServiceClient whose pipelines, its own and those of the TableClients it hands
        out, start with the StorageOutagePolicy. `get_table_client` builds each table's pipeline
        from this policy list, not from the service's pipeline, so azure-core's `per_call_policies`
        would reach only the service's own calls (create_table, list_tables), never a row's."""

        def _configure_policies(self, **kwargs: Any) -> list[Any]:
            return [StorageOutagePolicy(), *super()._configure_policies(**kwargs)]

    return GuardedTableService


class Tables:
    """Hands out `TableClient`s, making sure each table exists the first time it is used."""

    def __init__(self, service: TableServiceClient, prefix: str = "") -> None:
        self._service = service
        self._prefix = prefix
        self._ready: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TableClient:
        client = self._ready.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._ready:
                full_name = self._prefix + name
                with contextlib.suppress(sdk.ResourceExistsError):
                    self._service.create_table(full_name)
                self._ready[name] = self._service.get_table_client(full_name)
            return self._ready[name]

    def ping(self, timeouts: StorageTimeouts = HEALTH_TIMEOUTS) -> None:
        """Cheap round trip proving the table service answers (for health checks), within
        `timeouts` rather than the request path's longer budget."""
        pages = self._service.list_tables(results_per_page=1, **timeouts.call_options()).by_page()
        next(iter(pages), None)


class LostRaces(RuntimeError):
    """A conditional write lost to other writers more times than its caller allows."""


def write_if_unchanged(
    table: TableClient,
    partition: str,
    row_key: str,
    new_row: Callable[[Mapping[str, Any] | None], dict[str, Any]],
    *,
    attempts: int | None = None,
    after_lost_race: Callable[[int], None] = lambda attempt: None,
) -> dict[str, Any]:
    """Write `new_row(current)` over one row only if nobody wrote it since it was read (its
    ETag; created when missing, `current` then None); after a lost race, read it and try again.

    Returns the row written. `attempts` bounds the races (None: until one is won, for callers
    whose every loss means another writer progressed); past it, LostRaces.
    """
    attempt = 0
    while attempts is None or attempt < attempts:
        try:
            current: Any = table.get_entity(partition, row_key)
        except sdk.ResourceNotFoundError:
            current = None
        row = new_row(current)
        try:
            if current is None:
                table.create_entity(row)
            else:
                table.update_entity(
                    row,
                    mode=sdk.UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=sdk.MatchConditions.IfNotModified,
                )
        except (sdk.ResourceExistsError, sdk.ResourceModifiedError):
            after_lost_race(attempt)
            attempt += 1
            continue
        return row
    raise LostRaces(f"lost {attempts} races for the row")
