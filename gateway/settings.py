"""Every setting the gateway reads, in one frozen dataclass built from the environment.

In Azure the values are app settings; locally they come from `local.settings.json`. A missing
required key fails at the first use with the key's name, not with a KeyError deep in a request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gateway.errors import SettingsError

# Azurite's published development account; not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)

DEFAULT_PLAN_LIMITS: dict[str, dict[str, int] | None] = {
    "free": None,
    "pro": {"hour": 5, "day": 20},
    "business": {"hour": 5, "day": 20},
}
# USD per second of video, by model and size (list prices at the time of writing; sora-2 has
# no published price for the larger sizes, so its one rate stands for them).
DEFAULT_PRICING: dict[str, dict[str, float]] = {
    "sora-2": {"720x1280": 0.10, "1280x720": 0.10, "1024x1792": 0.10, "1792x1024": 0.10},
    "sora-2-pro": {"720x1280": 0.30, "1280x720": 0.30, "1024x1792": 0.50, "1792x1024": 0.50},
}
DEFAULT_DEPLOYMENTS = {"sora-2": "sora-2", "sora-2-pro": "sora-2-pro"}


@dataclass(frozen=True)
class StorageSettings:
    """Where Table and Blob storage live: a connection string (Azurite) or identity-based URIs (Azure)."""

    connection_string: str | None
    blob_service_uri: str | None
    table_service_uri: str | None
    client_id: str | None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    openai_endpoint: str
    openai_api_key: str | None
    azure_client_id: str | None
    deployments: Mapping[str, str]
    admin_api_key: str | None
    videos_container: str
    sas_ttl_minutes: int
    video_retention_days: int
    job_timeout_minutes: float
    poll_min_seconds: float
    poll_max_seconds: float
    max_prompt_chars: int
    allowed_models: tuple[str, ...]
    allowed_seconds: tuple[str, ...]
    allowed_sizes: tuple[str, ...]
    plan_limits: Mapping[str, Mapping[str, int] | None]
    pricing: Mapping[str, Mapping[str, float]]
    upstream_creates_per_minute: int
    allow_local_urls: bool
    webhook_retry_seconds: tuple[float, ...]
    table_prefix: str = field(default="")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        return cls(
            storage=_storage_settings(env),
            openai_endpoint=env.required("AZURE_OPENAI_ENDPOINT").rstrip("/"),
            openai_api_key=env.optional("AZURE_OPENAI_API_KEY"),
            azure_client_id=env.optional("AZURE_CLIENT_ID"),
            deployments=env.json("SORA_DEPLOYMENTS", DEFAULT_DEPLOYMENTS),
            admin_api_key=env.optional("ADMIN_API_KEY"),
            videos_container=env.optional("VIDEOS_CONTAINER") or "videos",
            sas_ttl_minutes=env.integer("SAS_TTL_MINUTES", 60, minimum=1),
            video_retention_days=env.integer("VIDEO_RETENTION_DAYS", 7, minimum=1),
            job_timeout_minutes=env.number("JOB_TIMEOUT_MINUTES", 60.0, minimum=0.05),
            poll_min_seconds=env.number("POLL_MIN_SECONDS", 3.0, minimum=0.1),
            poll_max_seconds=env.number("POLL_MAX_SECONDS", 60.0, minimum=0.1),
            max_prompt_chars=env.integer("MAX_PROMPT_CHARS", 4000, minimum=1),
            allowed_models=env.csv("ALLOWED_MODELS", ("sora-2", "sora-2-pro")),
            allowed_seconds=env.csv("ALLOWED_SECONDS", ("4", "8", "12")),
            allowed_sizes=env.csv("ALLOWED_SIZES", ("720x1280", "1280x720", "1024x1792", "1792x1024")),
            plan_limits=env.json("PLAN_LIMITS", DEFAULT_PLAN_LIMITS),
            pricing=env.json("PRICING", DEFAULT_PRICING),
            upstream_creates_per_minute=env.integer("UPSTREAM_CREATES_PER_MINUTE", 2, minimum=0),
            allow_local_urls=env.flag("ALLOW_LOCAL_URLS", False),
            webhook_retry_seconds=env.delays("WEBHOOK_RETRY_SECONDS", (30.0, 60.0, 120.0, 300.0, 600.0)),
            table_prefix=env.optional("TABLE_PREFIX") or "",
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (app settings change only with a restart in Azure)."""
    return Settings.from_env()


def _storage_settings(env: _Env) -> StorageSettings:
    connection = env.optional("AzureWebJobsStorage")
    if connection and connection.strip().lower().rstrip(";") == "usedevelopmentstorage=true":
        connection = AZURITE_CONNECTION_STRING
    blob_uri = env.optional("AzureWebJobsStorage__blobServiceUri")
    table_uri = env.optional("AzureWebJobsStorage__tableServiceUri")
    if not connection and not (blob_uri and table_uri):
        raise SettingsError(
            "missing setting AzureWebJobsStorage (a connection string) or "
            "AzureWebJobsStorage__blobServiceUri and AzureWebJobsStorage__tableServiceUri"
        )
    return StorageSettings(
        connection_string=connection,
        blob_service_uri=blob_uri,
        table_service_uri=table_uri,
        client_id=env.optional("AzureWebJobsStorage__clientId"),
    )


class _Env:
    """Typed reads of a string mapping; every failure names the key."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def optional(self, key: str) -> str | None:
        value = self._values.get(key, "").strip()
        return value or None

    def required(self, key: str) -> str:
        value = self.optional(key)
        if value is None:
            raise SettingsError(f"missing setting {key}")
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.optional(key)
        try:
            value = default if raw is None else int(raw)
        except ValueError as error:
            raise SettingsError(f"setting {key} must be an integer, got {raw!r}") from error
        if minimum is not None and value < minimum:
            raise SettingsError(f"setting {key} must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.optional(key)
        try:
            value = default if raw is None else float(raw)
        except ValueError as error:
            raise SettingsError(f"setting {key} must be a number, got {raw!r}") from error
        if not value >= minimum:  # also refuses NaN
            raise SettingsError(f"setting {key} must be at least {minimum}, got {raw!r}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        raw = self.optional(key)
        if raw is None:
            return default
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"setting {key} must be true or false, got {raw!r}")

    def csv(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.optional(key)
        if raw is None:
            return default
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        if not items:
            raise SettingsError(f"setting {key} must list at least one value")
        return items

    def delays(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = self.csv(key, ())
        if not raw:
            return default
        try:
            values = tuple(float(item) for item in raw)
        except ValueError as error:
            raise SettingsError(f"setting {key} must list seconds, got {self.optional(key)!r}") from error
        if any(not value > 0 for value in values):
            raise SettingsError(f"setting {key} must list positive seconds")
        return values

    def json(self, key: str, default: Any) -> Any:
        raw = self.optional(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as error:
            raise SettingsError(f"setting {key} must be JSON: {error}") from error
