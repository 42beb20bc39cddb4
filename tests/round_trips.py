"""The gateway's stores with every storage request counted at the client: the round trips of a
create and a read as gateway/submissions.py and the read endpoints make them. Used by
tests/gateway/test_round_trips.py and bench/load.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport
from azure.data.tables import TableServiceClient

from gateway.apps import AppStore
from gateway.jobs import Job, JobStore, new_job_id
from gateway.quota import Limits, QuotaStore
from gateway.tables import Tables


class RoundTrips(RequestsTransport):  # type: ignore[misc]  # untyped base
    """Counts every HTTP request that leaves the client (retries included: each is a round trip).

    A transport rather than a pipeline policy: TableServiceClient.get_table_client builds its
    table clients' pipelines afresh, without the service's custom policies, but shares its
    transport.
    """

    count = 0

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        self.count += 1
        response: HttpResponse = super().send(request, **kwargs)
        return response


class CountedStores:
    """The stores on one Azurite (under `prefix`), with a shared counting transport."""

    def __init__(self, connection_string: str, *, prefix: str = "", limits: Limits) -> None:
        self.trips = RoundTrips()
        service = TableServiceClient.from_connection_string(connection_string, transport=self.trips)
        self.tables = Tables(service, prefix=prefix)
        self.apps, self.quota, self.jobs = (
            AppStore(self.tables),
            QuotaStore(self.tables),
            JobStore(self.tables),
        )
        self.limits = limits

    def create(self, api_key: str) -> Job:
        """What an accepted create does with storage: authenticate, take a slot, record the job."""
        app = self.apps.authenticate(api_key)
        assert app is not None
        now = time.time()
        job = Job(
            id=new_job_id(now),
            app_id=app.id,
            model="m",
            prompt="p",
            seconds="4",
            size="1280x720",
            created_at=int(now),
        )
        assert self.quota.admit(app.id, self.limits, job.id, now).admitted
        self.jobs.add_job(job)
        return job

    def read(self, api_key: str, job_id: str) -> Job:
        """What a read does with storage: authenticate, read the job."""
        app = self.apps.authenticate(api_key)
        assert app is not None
        job = self.jobs.get_job(app.id, job_id)
        assert job is not None
        return job

    def trips_of(self, action: Callable[[], object]) -> int:
        before = self.trips.count
        action()
        return self.trips.count - before
