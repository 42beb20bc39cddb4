"""Process-wide clients, each built once on first use.

The Functions worker reuses a process for many invocations; building a credential or an HTTP
pool per invocation would waste tokens and sockets. Nothing is built at import time so that a
missing setting fails the first request with its name instead of breaking function indexing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.apps import AppStore
from gateway.blobs import VideoAssets, blob_service
from gateway.creation import UpstreamCreator
from gateway.durations import DurationStore
from gateway.health import ProviderHealth
from gateway.idempotency import IdempotencyStore
from gateway.jobs import JobStore
from gateway.pacing import Pace, UpstreamPacer
from gateway.providers.port import VideoProvider
from gateway.providers.registry import ProviderUnavailable, build_provider
from gateway.quota import QuotaStore
from gateway.settings import DEFAULT_PROVIDER, get_settings
from gateway.submissions import Submissions
from gateway.tables import Tables, table_service
from gateway.webhooks import WebhookSender

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

T = TypeVar("T")


class _ProcessSingleton[T]:
    """Builds its value on first call, under a lock (activities run on several threads at once)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self.__doc__ = build.__doc__

    def __call__(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def reset(self) -> T | None:
        """Forget the value (the next call builds a new one); returns what was built, if anything."""
        with self._lock:
            value, self._value = self._value, None
        return value


@_ProcessSingleton
def get_credential() -> TokenCredential:
    # Imported on first use: azure.identity (with msal and cryptography) is a heavy cold-start
    # import that only Entra ID callers need.
    from azure.identity import DefaultAzureCredential

    settings = get_settings()
    # A user-assigned identity must be named; the system-assigned one needs no id.
    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)


@_ProcessSingleton
def get_table_service() -> TableServiceClient:
    # Built by gateway.tables.table_service, as the Blob client by gateway.blobs.blob_service:
    # both carry the storage seam (bounded timeouts and retries, outages as StorageUnavailable).
    storage = get_settings().storage
    if storage.connection_string:
        return table_service(storage.connection_string)
    assert storage.table_service_uri is not None
    return table_service(endpoint=storage.table_service_uri, credential=_storage_credential())


@_ProcessSingleton
def get_blob_service() -> BlobServiceClient:
    storage = get_settings().storage
    if storage.connection_string:
        return blob_service(storage.connection_string)
    return blob_service(account_url=storage.blob_service_uri, credential=_storage_credential())


class _Providers:
    """One adapter per provider account, each built on its first use (an account no job uses
    never connects, and an account whose adapter is missing fails only its own jobs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[str, VideoProvider] = {}

    def __call__(self, name: str | None) -> VideoProvider:
        """The adapter of account `name`; None is the account of jobs recorded before providers."""
        name = name or DEFAULT_PROVIDER
        with self._lock:
            provider = self._built.get(name)
            if provider is None:
                account = get_settings().providers.get(name)
                if account is None:
                    raise ProviderUnavailable(
                        f"no provider account {name!r} is configured", code="provider_unavailable"
                    )
                provider = self._built[name] = build_provider(account)
            return provider

    def reset(self) -> list[VideoProvider]:
        with self._lock:
            built, self._built = list(self._built.values()), {}
        return built


get_provider = _Providers()


def _storage_credential() -> TokenCredential:
    client_id = get_settings().storage.client_id
    if client_id and client_id != get_settings().azure_client_id:
        # AzureWebJobsStorage__clientId may name a different identity than the app's default one.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return get_credential()


@_ProcessSingleton
def get_tables() -> Tables:
    return Tables(get_table_service(), prefix=get_settings().table_prefix)


@_ProcessSingleton
def get_app_store() -> AppStore:
    return AppStore(get_tables())


@_ProcessSingleton
def get_job_store() -> JobStore:
    return JobStore(get_tables())


@_ProcessSingleton
def get_video_assets() -> VideoAssets:
    return VideoAssets(get_blob_service(), get_settings().videos_container)


@_ProcessSingleton
def get_quota_store() -> QuotaStore:
    return QuotaStore(get_tables())


@_ProcessSingleton
def get_upstream_pacer() -> UpstreamPacer:
    settings = get_settings()
    paces = {name: Pace(per_minute) for name, per_minute in settings.provider_paces.items()}
    return UpstreamPacer(get_tables(), paces, default=Pace(settings.upstream_creates_per_minute))


@_ProcessSingleton
def get_provider_health() -> ProviderHealth:
    settings = get_settings()
    return ProviderHealth(
        get_tables(),
        failures_to_cool_down=settings.provider_failures_to_cool_down,
        cool_down_seconds=settings.provider_cool_down_seconds,
    )


@_ProcessSingleton
def get_duration_store() -> DurationStore:
    return DurationStore(get_tables())


@_ProcessSingleton
def get_upstream_creator() -> UpstreamCreator:
    return UpstreamCreator(get_job_store(), get_tables(), get_provider, get_video_assets())


@_ProcessSingleton
def get_webhook_sender() -> WebhookSender:
    return WebhookSender(allow_local=get_settings().allow_local_urls)


@_ProcessSingleton
def get_submissions() -> Submissions:
    return Submissions(
        get_settings(),
        quota=get_quota_store(),
        jobs=get_job_store(),
        assets=get_video_assets(),
        idempotency=IdempotencyStore(get_tables()),
    )


def close_clients() -> None:
    """Close and forget every client built so far, so no connection outlives its server
    (the local stack calls this before it stops Azurite and the simulator)."""
    getters: tuple[_ProcessSingleton[Any], ...] = (
        get_submissions,
        get_webhook_sender,
        get_upstream_creator,
        get_duration_store,
        get_upstream_pacer,
        get_provider_health,
        get_quota_store,
        get_video_assets,
        get_job_store,
        get_app_store,
        get_tables,
        get_blob_service,
        get_table_service,
        get_credential,
    )
    closables: list[Any] = [getter.reset() for getter in getters[:-3]]
    closables += get_provider.reset()
    closables += [getter.reset() for getter in getters[-3:]]
    for closable in closables:
        close = getattr(closable, "close", None)
        if callable(close):
            close()
    get_settings.cache_clear()
