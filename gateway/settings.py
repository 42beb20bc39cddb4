"""Every setting the gateway reads, in one frozen dataclass built from the environment.

In Azure the values are app settings; locally they come from `local.settings.json`. Every value
is checked when the settings are built: one that cannot work (missing, malformed, out of range,
or naming a model or plan nobody knows) raises `SettingsError` with the key's name, so the app
refuses to start (see `api/__init__.py`) instead of failing requests one by one.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from gateway.apps import PLANS
from gateway.budgets import Budget, BudgetSpecError, parse_budget
from gateway.catalog import BUILT_IN_MODELS, CatalogModel, amount, built_in_catalog, listed, parse_catalog
from gateway.catalog import SECONDS as _SECONDS
from gateway.catalog import SIZE as _SIZE
from gateway.errors import SettingsError
from gateway.providers.port import ProviderAccount
from gateway.providers.registry import KINDS, video_options
from gateway.quota import CAPACITY as QUOTA_DAY_CAPACITY

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
# What each model accepts upstream. Azure's Sora 2 makes 720p video only; Sora 2 Pro also
# makes the 1024x1792 / 1792x1024 sizes. Both take 4, 8 or 12 seconds.
DEFAULT_MODEL_OPTIONS: dict[str, dict[str, list[str]]] = {
    "sora-2": {"sizes": ["720x1280", "1280x720"], "seconds": ["4", "8", "12"]},
    "sora-2-pro": {"sizes": ["720x1280", "1280x720", "1024x1792", "1792x1024"], "seconds": ["4", "8", "12"]},
}
# USD per second of video, by model and size: list prices at the time of writing, one for each
# size the model makes.
DEFAULT_PRICING: dict[str, dict[str, float]] = {
    "sora-2": {"720x1280": 0.10, "1280x720": 0.10},
    "sora-2-pro": {"720x1280": 0.30, "1280x720": 0.30, "1024x1792": 0.50, "1792x1024": 0.50},
}
DEFAULT_DEPLOYMENTS = {"sora-2": "sora-2", "sora-2-pro": "sora-2-pro"}
QUOTA_WINDOWS = ("hour", "day")
# The account PROVIDERS has by default, and the one a job recorded before providers existed used.
DEFAULT_PROVIDER = "azure-openai"
# The per-model settings from before the catalog; MODEL_CATALOG replaces all of them at once.
LEGACY_MODEL_SETTINGS = (
    "MODEL_OPTIONS",
    "ALLOWED_MODELS",
    "ALLOWED_SIZES",
    "ALLOWED_SECONDS",
    "PRICING",
    "SORA_DEPLOYMENTS",
)
# The accounts PROVIDERS has by default besides Azure OpenAI: name (= kind), public endpoint and
# the setting holding the key, in the order they win a built-in model that both offer.
_KEYED_DEFAULT_ACCOUNTS = (
    ("aimlapi", "https://api.aimlapi.com", "AIMLAPI_API_KEY"),
    ("geminigen", "https://api.geminigen.ai/uapi/v1", "GEMINIGEN_API_KEY"),
    ("gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
    ("fal", "https://queue.fal.run", "FAL_KEY"),
)
# Every kind but Azure OpenAI (which can use Entra ID) authenticates with a key.
_KEYED_KINDS = frozenset({"openai-compatible", "aimlapi", "geminigen", "gemini", "fal"})
_PROVIDER_FIELDS = frozenset({"kind", "base_url", "key_setting", "options", "creates_per_minute"})
# Azure Storage: container names are 3-63 lowercase letters, digits and single hyphens; table
# names are letters and digits, starting with a letter (the prefix goes in front of each).
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_TABLE_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,39}")
# A web origin as browsers send it: scheme, host (name, IPv4 or [IPv6]) and optional port.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ORIGIN = re.compile(rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")


@dataclass(frozen=True)
class ModelOptions:
    """What one model accepts: its sizes and durations (seconds), in the order they are listed."""

    sizes: tuple[str, ...]
    seconds: tuple[str, ...]


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
    # Provider accounts by name (PROVIDERS), and each one's creations per minute.
    providers: Mapping[str, ProviderAccount]
    provider_paces: Mapping[str, int]
    # The models offered, by public id, in the order listed.
    catalog: Mapping[str, CatalogModel]
    azure_client_id: str | None
    admin_api_key: str | None
    videos_container: str
    sas_ttl_minutes: int
    video_retention_days: int
    job_timeout_minutes: float
    poll_min_seconds: float
    poll_max_seconds: float
    max_prompt_chars: int
    plan_limits: Mapping[str, Mapping[str, int] | None]
    upstream_creates_per_minute: int  # the pace of an account that does not set its own
    allow_local_urls: bool
    webhook_retry_seconds: tuple[float, ...]
    table_prefix: str = field(default="")
    # Web origins besides the gateway's own whose pages may call the API (exact, lower case).
    cors_allowed_origins: frozenset[str] = field(default=frozenset())
    # Provider health (gateway.health): failures in a row that cool an account down, and for how long.
    provider_failures_to_cool_down: int = field(default=3)
    provider_cool_down_seconds: float = field(default=60.0)
    # Money budgets per plan (PLAN_BUDGETS); a plan not named has none (unlimited), and the
    # default charge policy (gateway.charges).
    plan_budgets: Mapping[str, Budget] = field(default_factory=dict)

    def budget(self, plan: str, override: str | None = None) -> Budget:
        """The budget and charge policy of an app on `plan`: its own `override` (JSON budget
        fields, set through the management API) when it has one, else its plan's (no limits and
        the default policy when neither is set)."""
        if override:
            return parse_budget(json.loads(override))
        return self.plan_budgets.get(plan) or Budget()

    # Views of the catalog, by public model id.
    @property
    def allowed_models(self) -> tuple[str, ...]:
        return tuple(self.catalog)

    @property
    def models(self) -> dict[str, ModelOptions]:
        return {model.id: ModelOptions(model.sizes, model.seconds) for model in self.catalog.values()}

    @property
    def allowed_sizes(self) -> tuple[str, ...]:
        return _union(model.sizes for model in self.catalog.values())

    @property
    def allowed_seconds(self) -> tuple[str, ...]:
        return _union(model.seconds for model in self.catalog.values())

    @property
    def pricing(self) -> dict[str, Mapping[str, float]]:
        return {model.id: model.prices for model in self.catalog.values()}

    @property
    def deployments(self) -> dict[str, str]:
        return {model.id: model.provider_model for model in self.catalog.values()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; a setting that cannot work raises `SettingsError` naming it."""
        env = _Env(os.environ if environ is None else environ)
        pace = env.integer("UPSTREAM_CREATES_PER_MINUTE", 2, minimum=0)
        providers, paces = _providers(env, pace)
        poll_min = env.number("POLL_MIN_SECONDS", 3.0, minimum=0.1)
        poll_max = env.number("POLL_MAX_SECONDS", 60.0, minimum=0.1)
        if poll_min > poll_max:
            raise SettingsError(
                f"setting POLL_MIN_SECONDS ({poll_min:g}) must not exceed POLL_MAX_SECONDS ({poll_max:g})"
            )
        return cls(
            storage=_storage_settings(env),
            providers=providers,
            provider_paces=paces,
            catalog=_catalog(env, providers),
            azure_client_id=env.optional("AZURE_CLIENT_ID"),
            admin_api_key=env.optional("ADMIN_API_KEY"),
            videos_container=env.matching("VIDEOS_CONTAINER", "videos", _CONTAINER, "a blob container name"),
            sas_ttl_minutes=env.integer("SAS_TTL_MINUTES", 60, minimum=1),
            video_retention_days=env.integer("VIDEO_RETENTION_DAYS", 7, minimum=1),
            job_timeout_minutes=env.number("JOB_TIMEOUT_MINUTES", 60.0, minimum=0.05),
            poll_min_seconds=poll_min,
            poll_max_seconds=poll_max,
            max_prompt_chars=env.integer("MAX_PROMPT_CHARS", 4000, minimum=1),
            plan_limits=_plan_limits(env),
            upstream_creates_per_minute=pace,
            allow_local_urls=env.flag("ALLOW_LOCAL_URLS", False),
            webhook_retry_seconds=env.delays("WEBHOOK_RETRY_SECONDS", (30.0, 60.0, 120.0, 300.0, 600.0)),
            table_prefix=env.matching(
                "TABLE_PREFIX", "", _TABLE_PREFIX, "letters and digits, starting with a letter"
            ),
            cors_allowed_origins=_cors_origins(env),
            provider_failures_to_cool_down=env.integer("PROVIDER_FAILURES_TO_COOL_DOWN", 3, minimum=1),
            provider_cool_down_seconds=env.positive("PROVIDER_COOL_DOWN_SECONDS", 60.0),
            plan_budgets=_plan_budgets(env),
        )


_STORAGE_SETTINGS = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
)
_ACCOUNT_SETTINGS = ("PROVIDERS", "AZURE_OPENAI_ENDPOINT", *(key for _, _, key in _KEYED_DEFAULT_ACCOUNTS))


def check_settings(environ: Mapping[str, str] | None = None) -> None:
    """Raise `SettingsError` naming the first setting that is set but cannot work, or the one that
    is missing when the app has its storage but no model to offer.

    Called when the app is loaded, so a bad PLAN_LIMITS or PRICING stops the function app from
    indexing, with the setting's name in the host's log, instead of failing every request. An app
    loaded with no connection settings at all (an index check, a bare import) is being looked at,
    not run: its storage and provider account are stood in for, and everything set is checked.
    """
    values = dict(os.environ if environ is None else environ)

    def unset(keys: Iterable[str]) -> bool:
        return not any(values.get(key, "").strip() for key in keys)

    if unset(_STORAGE_SETTINGS):
        values["AzureWebJobsStorage"] = "UseDevelopmentStorage=true"
        if unset(_ACCOUNT_SETTINGS):
            values["AZURE_OPENAI_ENDPOINT"] = "https://stand-in.invalid"
            if unset(("MODEL_CATALOG", "MODEL_CATALOG_FILE", *LEGACY_MODEL_SETTINGS)):
                values["AIMLAPI_API_KEY"] = "stand-in"  # an account with built-in models
    Settings.from_env(values)


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


def _endpoint(env: _Env, key: str) -> str:
    value = env.required(key).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"setting {key} must be an http(s) URL, got {value!r}")
    return value


def _providers(env: _Env, default_pace: int) -> tuple[dict[str, ProviderAccount], dict[str, int]]:
    """PROVIDERS: account name -> {"kind", "base_url", "key_setting", "options", "creates_per_minute"}.

    Unset, the accounts are the ones whose settings exist (see `_default_providers`)."""
    key = "PROVIDERS"
    if env.optional(key) is None:
        defaults = _default_providers(env)
        return defaults, dict.fromkeys(defaults, default_pace)
    table = _object(key, env.json(key, None), 'account name -> {"kind": ..., "base_url": ..., ...}')
    if not table:
        raise SettingsError(f"setting {key} must name at least one provider account")
    accounts: dict[str, ProviderAccount] = {}
    paces: dict[str, int] = {}
    for name, entry in table.items():
        where = f"setting {key}: account {name!r}"
        described = _object(key, entry, f"an object for account {name!r}")
        unknown = sorted(set(described) - _PROVIDER_FIELDS)
        if not name.strip() or unknown:
            raise SettingsError(f"{where} has unknown fields {unknown}; expected {sorted(_PROVIDER_FIELDS)}")
        kind = described.get("kind")
        if kind not in KINDS:
            raise SettingsError(f"{where} has kind {kind!r}; the kinds are {', '.join(KINDS)}")
        base_url = described.get("base_url")
        if not isinstance(base_url, str) or not base_url.strip():
            raise SettingsError(f"{where} needs a base_url")
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(f"{where}: base_url must be an http(s) URL, got {base_url!r}")
        if kind in _KEYED_KINDS and described.get("key_setting") is None:
            raise SettingsError(f"{where} ({kind}) needs a key_setting naming the setting that holds its key")
        accounts[name] = ProviderAccount(
            name=name,
            kind=kind,
            base_url=base_url.strip().rstrip("/"),
            api_key=_provider_key(env, where, described.get("key_setting")),
            options=_provider_options(where, described.get("options")),
        )
        pace = described.get("creates_per_minute", default_pace)
        paces[name] = _count(key, f"account {name!r} creates_per_minute", pace)
    return accounts, paces


def _default_providers(env: _Env) -> dict[str, ProviderAccount]:
    """The accounts a deployment without PROVIDERS has: one per key setting that is set (AI/ML API,
    GeminiGen, at their public endpoints), then Azure OpenAI at AZURE_OPENAI_ENDPOINT (its key, or
    Entra ID when AZURE_OPENAI_API_KEY is unset). The order decides which account makes a built-in
    model that several offer."""
    accounts: dict[str, ProviderAccount] = {}
    for name, base_url, key_setting in _KEYED_DEFAULT_ACCOUNTS:
        api_key = env.optional(key_setting)
        if api_key is not None:
            accounts[name] = ProviderAccount(name=name, kind=name, base_url=base_url, api_key=api_key)
    if env.optional("AZURE_OPENAI_ENDPOINT") is not None:
        accounts[DEFAULT_PROVIDER] = ProviderAccount(
            name=DEFAULT_PROVIDER,
            kind="azure-openai",
            base_url=_endpoint(env, "AZURE_OPENAI_ENDPOINT"),
            api_key=env.optional("AZURE_OPENAI_API_KEY"),
        )
    if not accounts:
        names = ", ".join(key_setting for _, _, key_setting in _KEYED_DEFAULT_ACCOUNTS)
        raise SettingsError(
            f"missing setting PROVIDERS: no provider account is configured (set PROVIDERS, or one of "
            f"{names} or AZURE_OPENAI_ENDPOINT)"
        )
    return accounts


def _provider_key(env: _Env, where: str, key_setting: Any) -> str | None:
    """The account's key, read from the setting it names (never the key itself in PROVIDERS, so
    the key can live in Key Vault and PROVIDERS stays printable)."""
    if key_setting is None:
        return None
    if not isinstance(key_setting, str) or not key_setting.strip():
        raise SettingsError(f"{where}: key_setting must name a setting")
    value = env.optional(key_setting.strip())
    if value is None:
        raise SettingsError(f"missing setting {key_setting.strip()} (the key of {where.split(': ', 1)[1]})")
    return value


def _provider_options(where: str, options: Any) -> dict[str, str]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise SettingsError(f"{where}: options must be an object of strings")
    values: dict[str, str] = {}
    for name, value in options.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise SettingsError(f"{where}: option {name!r} must be a string, number or true/false")
        values[name] = str(value)
    return values


def _catalog(env: _Env, providers: Mapping[str, ProviderAccount]) -> dict[str, CatalogModel]:
    """MODEL_CATALOG or MODEL_CATALOG_FILE; without either, the models of the older per-model
    settings where a deployment sets them, else the built-in live models of its accounts."""
    inline, path = env.optional("MODEL_CATALOG"), env.optional("MODEL_CATALOG_FILE")
    if inline is None and path is None:
        if any(env.optional(name) is not None for name in LEGACY_MODEL_SETTINGS):
            return _legacy_catalog(env, providers)
        return _built_in_catalog(providers)
    if inline is not None and path is not None:
        raise SettingsError("setting MODEL_CATALOG_FILE cannot be combined with MODEL_CATALOG; set one")
    key = "MODEL_CATALOG" if inline is not None else "MODEL_CATALOG_FILE"
    legacy = [name for name in LEGACY_MODEL_SETTINGS if env.optional(name) is not None]
    if legacy:
        raise SettingsError(
            f"setting {legacy[0]} cannot be combined with {key}, which describes every model; remove it"
        )
    if path is not None:
        try:
            with open(path, encoding="utf-8") as file:
                inline = file.read()
        except OSError as error:
            raise SettingsError(f"setting {key}: cannot read {path!r}: {error.strerror}") from error
    try:
        document = json.loads(inline or "")
    except ValueError as error:
        raise SettingsError(f"setting {key} must be JSON: {error}") from error
    return _check_options(key, parse_catalog(key, document, providers), providers)


def _check_options(
    key: str, catalog: dict[str, CatalogModel], providers: Mapping[str, ProviderAccount]
) -> dict[str, CatalogModel]:
    """Every route's declared options must be ones its adapter sends for that model: an option
    the provider would never see is refused at start-up, not silently dropped per request."""
    for model in catalog.values():
        for number, route in enumerate(model.all_routes, start=1):
            if not route.options:
                continue  # nothing to check, and no adapter module to import at start-up
            carried = video_options(providers[route.provider], route.provider_model)
            missing = sorted(set(route.options) - carried) if carried is not None else []
            if missing:
                where = f"route {number} ({route.provider})" if model.routes else f"provider {route.provider}"
                raise SettingsError(
                    f"setting {key}: model {model.id!r} {where} declares options {missing}, which the "
                    f"{providers[route.provider].kind} adapter does not send for {route.provider_model!r}"
                    f" (it sends: {', '.join(sorted(carried or ())) or 'none'})"
                )
    return catalog


def _built_in_catalog(providers: Mapping[str, ProviderAccount]) -> dict[str, CatalogModel]:
    # Not _check_options: that would import every adapter (and requests) on a cold start, and the
    # built-in options are checked against the adapters by tests/providers/test_built_in_catalog.
    catalog = built_in_catalog({name: account.kind for name, account in providers.items()})
    if not catalog:
        kinds = ", ".join(sorted(BUILT_IN_MODELS))
        raise SettingsError(
            "missing setting MODEL_CATALOG: no account has built-in models (only the kinds "
            f"{kinds} do; Sora 2, the default of earlier versions, is retired), so list the models "
            "your accounts serve in MODEL_CATALOG"
        )
    return catalog


def _legacy_catalog(env: _Env, providers: Mapping[str, ProviderAccount]) -> dict[str, CatalogModel]:
    """The catalog the per-model settings describe: every model on the default account, with
    image input and remix (as Azure OpenAI's Sora had)."""
    catalogue = _model_catalogue(env)
    models = _narrowed_models(env, catalogue, _allowed_models(env, catalogue))
    if DEFAULT_PROVIDER not in providers:
        raise SettingsError(
            f"missing setting MODEL_CATALOG: PROVIDERS has no {DEFAULT_PROVIDER!r} account for the "
            "models of MODEL_OPTIONS"
        )
    deployments = _deployments(env, catalogue)
    pricing = _pricing(env, catalogue)
    return {
        model: CatalogModel(
            id=model,
            provider=DEFAULT_PROVIDER,
            provider_model=deployments.get(model, model),
            sizes=options.sizes,
            seconds=options.seconds,
            image_input=True,
            remix=True,
            prices={size: price for size, price in pricing.get(model, {}).items() if size in options.sizes},
        )
        for model, options in models.items()
    }


def _model_catalogue(env: _Env) -> dict[str, ModelOptions]:
    """MODEL_OPTIONS: every model the gateway knows, with the sizes and seconds it accepts."""
    key = "MODEL_OPTIONS"
    table = _object(key, env.json(key, DEFAULT_MODEL_OPTIONS), 'model -> {"sizes": [...], "seconds": [...]}')
    if not table:
        raise SettingsError(f"setting {key} must describe at least one model")
    catalogue: dict[str, ModelOptions] = {}
    for model, entry in table.items():
        if not model.strip():
            raise SettingsError(f"setting {key} has a model with an empty name")
        described = _object(key, entry, f'{{"sizes": [...], "seconds": [...]}} for model {model!r}')
        unknown = sorted(set(described) - {"sizes", "seconds"})
        if unknown:
            raise SettingsError(
                f"setting {key}: model {model!r} has unknown fields {unknown}; expected sizes and seconds"
            )
        catalogue[model] = ModelOptions(
            sizes=listed(
                f"setting {key}: {model!r} sizes", described.get("sizes"), _SIZE, "sizes like 1280x720"
            ),
            seconds=listed(
                f"setting {key}: {model!r} seconds", described.get("seconds"), _SECONDS, "whole seconds"
            ),
        )
    return catalogue


def _allowed_models(env: _Env, catalogue: Mapping[str, ModelOptions]) -> tuple[str, ...]:
    allowed = _unique(env.csv("ALLOWED_MODELS", tuple(catalogue)))
    unknown = [model for model in allowed if model not in catalogue]
    if unknown:
        raise SettingsError(
            f"setting ALLOWED_MODELS names {', '.join(unknown)}, which MODEL_OPTIONS does not describe "
            f"(it describes {', '.join(catalogue)})"
        )
    return allowed


def _narrowed_models(
    env: _Env, catalogue: Mapping[str, ModelOptions], allowed: tuple[str, ...]
) -> dict[str, ModelOptions]:
    """Each allowed model's options, narrowed by ALLOWED_SIZES and ALLOWED_SECONDS when they are set."""
    sizes = _narrowing(env, "ALLOWED_SIZES", _SIZE, [options.sizes for options in catalogue.values()])
    seconds = _narrowing(
        env, "ALLOWED_SECONDS", _SECONDS, [options.seconds for options in catalogue.values()]
    )
    models: dict[str, ModelOptions] = {}
    for model in allowed:
        options = catalogue[model]
        kept = ModelOptions(
            sizes=tuple(size for size in options.sizes if sizes is None or size in sizes),
            seconds=tuple(value for value in options.seconds if seconds is None or value in seconds),
        )
        for key, before, after in (
            ("ALLOWED_SIZES", options.sizes, kept.sizes),
            ("ALLOWED_SECONDS", options.seconds, kept.seconds),
        ):
            if not after:
                raise SettingsError(
                    f"setting {key} leaves model {model!r} nothing it accepts (it accepts {', '.join(before)})"
                )
        models[model] = kept
    return models


def _narrowing(
    env: _Env, key: str, pattern: re.Pattern[str], offered: list[tuple[str, ...]]
) -> frozenset[str] | None:
    """The values a deployment-wide ALLOWED_* list keeps, or None when it is not set."""
    raw = env.csv(key, ())
    if not raw:
        return None
    known = {value for values in offered for value in values}
    for value in raw:
        if not pattern.fullmatch(value):
            raise SettingsError(f"setting {key} lists {value!r}, which is not a valid value")
        if value not in known:
            raise SettingsError(
                f"setting {key} lists {value}, which no model in MODEL_OPTIONS accepts "
                f"(they accept {', '.join(sorted(known))})"
            )
    return frozenset(raw)


def _deployments(env: _Env, catalogue: Mapping[str, ModelOptions]) -> dict[str, str]:
    key = "SORA_DEPLOYMENTS"
    if env.optional(key) is None:
        return {model: name for model, name in DEFAULT_DEPLOYMENTS.items() if model in catalogue}
    table = _object(key, env.json(key, None), "model -> Azure deployment name")
    deployments: dict[str, str] = {}
    for model, name in table.items():
        _known_model(key, model, catalogue)
        if not isinstance(name, str) or not name.strip():
            raise SettingsError(f"setting {key}: the deployment of {model!r} must be a non-empty string")
        deployments[model] = name.strip()
    return deployments


def _pricing(env: _Env, catalogue: Mapping[str, ModelOptions]) -> dict[str, dict[str, float]]:
    key = "PRICING"
    if env.optional(key) is None:
        return {
            model: {size: price for size, price in prices.items() if size in catalogue[model].sizes}
            for model, prices in DEFAULT_PRICING.items()
            if model in catalogue
        }
    table = _object(key, env.json(key, None), "model -> {size: USD per second}")
    pricing: dict[str, dict[str, float]] = {}
    for model, prices in table.items():
        options = _known_model(key, model, catalogue)
        per_size: dict[str, float] = {}
        for size, price in _object(key, prices, f"size -> USD per second for model {model!r}").items():
            if size not in options.sizes:
                raise SettingsError(
                    f"setting {key} prices {model} at {size!r}, a size it does not make "
                    f"(it makes {', '.join(options.sizes)})"
                )
            per_size[size] = amount(f"setting {key}", f"the price of {model} at {size}", price)
        pricing[model] = per_size
    return pricing


def _cors_origins(env: _Env) -> frozenset[str]:
    """CORS_ALLOWED_ORIGINS: comma-separated origins such as https://portal.example.com.

    Exact origins only: a wildcard would let any web page that obtained a key drive the API,
    and a path or trailing slash would never equal the Origin header a browser sends."""
    origins = set()
    for origin in env.csv("CORS_ALLOWED_ORIGINS", ()):
        if not _ORIGIN.fullmatch(origin):
            raise SettingsError(
                f"setting CORS_ALLOWED_ORIGINS has {origin!r}: expected origins such as "
                "https://app.example.com or http://localhost:3000, comma-separated (no '*', no path)"
            )
        origins.add(origin.lower())
    return frozenset(origins)


def _plan_limits(env: _Env) -> dict[str, dict[str, int] | None]:
    key = "PLAN_LIMITS"
    table = _object(key, env.json(key, DEFAULT_PLAN_LIMITS), 'plan -> {"hour": n, "day": n} or null')
    limits: dict[str, dict[str, int] | None] = {}
    for plan, windows in table.items():
        if plan not in PLANS:
            raise SettingsError(f"setting {key} names plan {plan!r}; the plans are {', '.join(PLANS)}")
        if windows is None:
            limits[plan] = None
            continue
        counts = _object(key, windows, f'{{"hour": n, "day": n}} or null for plan {plan!r}')
        if set(counts) != set(QUOTA_WINDOWS):
            raise SettingsError(
                f"setting {key}: plan {plan!r} must give exactly 'hour' and 'day', got {sorted(counts)}"
            )
        windows_of_plan = {
            window: _count(key, f"{plan} {window}", counts[window]) for window in QUOTA_WINDOWS
        }
        if windows_of_plan["day"] > QUOTA_DAY_CAPACITY:  # refused here rather than silently capped
            raise SettingsError(
                f"setting {key}: plan {plan!r} day limit {windows_of_plan['day']} is above the "
                f"{QUOTA_DAY_CAPACITY} admissions a day the quota keeps exactly"
            )
        limits[plan] = windows_of_plan
    return limits


def _plan_budgets(env: _Env) -> dict[str, Budget]:
    """PLAN_BUDGETS: plan -> budget fields (gateway.budgets.parse_budget), every field optional."""
    key = "PLAN_BUDGETS"
    table = _object(key, env.json(key, {}), "plan -> budget object")
    budgets: dict[str, Budget] = {}
    for plan, raw in table.items():
        if plan not in PLANS:
            raise SettingsError(f"setting {key} names plan {plan!r}; the plans are {', '.join(PLANS)}")
        try:
            budgets[plan] = parse_budget(raw)
        except BudgetSpecError as error:
            raise SettingsError(f"setting {key}: plan {plan!r}: {error}") from error
    return budgets


def _object(key: str, value: Any, form: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"setting {key} must be a JSON object of {form}, got {type(value).__name__}")
    return value


def _known_model(key: str, model: str, catalogue: Mapping[str, ModelOptions]) -> ModelOptions:
    if model not in catalogue:
        raise SettingsError(
            f"setting {key} names model {model!r}, which MODEL_OPTIONS does not describe "
            f"(it describes {', '.join(catalogue)})"
        )
    return catalogue[model]


def _count(key: str, what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"setting {key}: {what} must be a whole number of at least 0, got {value!r}")
    return value


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return _unique(value for group in groups for value in group)


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
        if not minimum <= value < math.inf:  # also refuses NaN
            raise SettingsError(f"setting {key} must be a finite number of at least {minimum}, got {raw!r}")
        return value

    def positive(self, key: str, default: float) -> float:
        """A finite number above 0 (`number` takes its minimum itself)."""
        value = self.number(key, default)
        if value <= 0:
            raise SettingsError(f"setting {key} must be a number above 0, got {self.optional(key)!r}")
        return value

    def matching(self, key: str, default: str, pattern: re.Pattern[str], form: str) -> str:
        value = self.optional(key)
        if value is None:
            return default
        if not pattern.fullmatch(value):
            raise SettingsError(f"setting {key} must be {form}, got {value!r}")
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
        if any(not 0 < value < math.inf for value in values):
            raise SettingsError(f"setting {key} must list positive, finite seconds")
        return values

    def json(self, key: str, default: Any) -> Any:
        raw = self.optional(key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as error:
            raise SettingsError(f"setting {key} must be JSON: {error}") from error
