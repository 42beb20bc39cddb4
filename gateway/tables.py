"""Table handles for the gateway's tables, each created once per process."""

from __future__ import annotations

import contextlib
import threading

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

APPS_TABLE = "apps"
APP_KEYS_TABLE = "appkeys"
JOBS_TABLE = "jobs"


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
                with contextlib.suppress(ResourceExistsError):
                    self._service.create_table(full_name)
                self._ready[name] = self._service.get_table_client(full_name)
            return self._ready[name]

    def ping(self) -> None:
        """Cheap round trip proving the table service answers (for health checks)."""
        next(iter(self._service.list_tables(results_per_page=1).by_page()), None)
