"""Settings: read once from the environment, failing fast with the offending key's name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.catalog import BUILT_IN_MODELS
from gateway.errors import SettingsError
from gateway.providers.registry import KINDS
from gateway.settings import AZURITE_CONNECTION_STRING, ModelOptions, Settings, check_settings

PROJECT_DIR = Path(__file__).parents[2]

# The smallest deployment that can make videos today: storage and one provider key.
MINIMAL = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "aiml-key"}
# A deployment of an earlier version, which named its Sora deployments with the per-model settings.
LEGACY = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com/",
    "SORA_DEPLOYMENTS": '{"sora-2": "sora-2", "sora-2-pro": "sora-2-pro"}',
}


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env(MINIMAL)
    assert settings.storage.connection_string == AZURITE_CONNECTION_STRING
    # No PROVIDERS: the account of the key that is set, at its public endpoint.
    (account,) = settings.providers.values()
    assert (account.name, account.kind, account.base_url, account.api_key) == (
        "aimlapi",
        "aimlapi",
        "https://api.aimlapi.com",
        "aiml-key",
    )
    # No MODEL_CATALOG: the built-in live models of that account, none of them the retired Sora.
    assert {model.id: model.provider_model for model in settings.catalog.values()} == {
        "veo-3.1": "google/veo-3.1-t2v",
        "veo-3.1-fast": "google/veo-3.1-t2v-fast",
    }
    assert settings.plan_limits == {
        "free": None,
        "pro": {"hour": 5, "day": 20},
        "business": {"hour": 5, "day": 20},
    }
    assert (settings.sas_ttl_minutes, settings.video_retention_days, settings.max_prompt_chars) == (
        60,
        7,
        4000,
    )
    assert settings.upstream_creates_per_minute == 2
    assert settings.allow_local_urls is False


def test_default_webhook_schedule_is_at_least_five_attempts_over_ten_minutes() -> None:
    delays = Settings.from_env(MINIMAL).webhook_retry_seconds
    assert len(delays) + 1 >= 5
    assert sum(delays) >= 600
    assert list(delays) == sorted(delays)  # growing delays


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"),
        ({"SAS_TTL_MINUTES": "soon"}, "SAS_TTL_MINUTES"),
        ({"SAS_TTL_MINUTES": "0"}, "SAS_TTL_MINUTES"),
        ({"PLAN_LIMITS": "{not json"}, "PLAN_LIMITS"),
        ({"ALLOW_LOCAL_URLS": "maybe"}, "ALLOW_LOCAL_URLS"),
        ({"JOB_TIMEOUT_MINUTES": "nan"}, "JOB_TIMEOUT_MINUTES"),
        ({"WEBHOOK_RETRY_SECONDS": "30,-1"}, "WEBHOOK_RETRY_SECONDS"),
        ({"WEBHOOK_RETRY_SECONDS": "30,inf"}, "WEBHOOK_RETRY_SECONDS"),
        ({"AZURE_OPENAI_ENDPOINT": "x.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
        ({"VIDEOS_CONTAINER": "My_Videos"}, "VIDEOS_CONTAINER"),
        ({"TABLE_PREFIX": "gw-1"}, "TABLE_PREFIX"),
        # Intervals: zero, negative, infinite, and a minimum above the maximum.
        ({"POLL_MIN_SECONDS": "0"}, "POLL_MIN_SECONDS"),
        ({"POLL_MAX_SECONDS": "-5"}, "POLL_MAX_SECONDS"),
        ({"POLL_MAX_SECONDS": "inf"}, "POLL_MAX_SECONDS"),
        ({"POLL_MIN_SECONDS": "30", "POLL_MAX_SECONDS": "10"}, "POLL_MIN_SECONDS"),
        ({"JOB_TIMEOUT_MINUTES": "0"}, "JOB_TIMEOUT_MINUTES"),
        ({"VIDEO_RETENTION_DAYS": "-1"}, "VIDEO_RETENTION_DAYS"),
        ({"UPSTREAM_CREATES_PER_MINUTE": "-1"}, "UPSTREAM_CREATES_PER_MINUTE"),
        # PLAN_LIMITS: valid JSON of the wrong shape.
        ({"PLAN_LIMITS": "[]"}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": 5}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": {"hour": 5}}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": {"hour": "5", "day": 20}}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": {"hour": -1, "day": 20}}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": {"hour": true, "day": 20}}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"pro": {"hour": 5, "day": 20, "minute": 1}}'}, "PLAN_LIMITS"),
        ({"PLAN_LIMITS": '{"premium": {"hour": 5, "day": 20}}'}, "PLAN_LIMITS"),
        # Above what the quota row keeps exactly (gateway.quota.CAPACITY).
        ({"PLAN_LIMITS": '{"pro": {"hour": 5, "day": 1000000}}'}, "PLAN_LIMITS"),
        # PRICING: malformed, an unknown model, a size the model does not make, a bad price.
        ({"PRICING": "{not json"}, "PRICING"),
        ({"PRICING": '{"sora-2": 0.1}'}, "PRICING"),
        ({"PRICING": '{"sora-3": {"720x1280": 0.1}}'}, "PRICING"),
        ({"PRICING": '{"sora-2": {"1792x1024": 0.1}}'}, "PRICING"),
        ({"PRICING": '{"sora-2": {"720x1280": -0.1}}'}, "PRICING"),
        ({"PRICING": '{"sora-2": {"720x1280": "0.1"}}'}, "PRICING"),
        # The per-model tables.
        ({"SORA_DEPLOYMENTS": '{"sora-3": "d"}'}, "SORA_DEPLOYMENTS"),
        ({"SORA_DEPLOYMENTS": '{"sora-2": ""}'}, "SORA_DEPLOYMENTS"),
        ({"SORA_DEPLOYMENTS": '["sora-2"]'}, "SORA_DEPLOYMENTS"),
        ({"MODEL_OPTIONS": "{}"}, "MODEL_OPTIONS"),
        ({"MODEL_OPTIONS": '{"sora-2": {"sizes": [], "seconds": ["4"]}}'}, "MODEL_OPTIONS"),
        ({"MODEL_OPTIONS": '{"sora-2": {"sizes": ["720p"], "seconds": ["4"]}}'}, "MODEL_OPTIONS"),
        ({"MODEL_OPTIONS": '{"sora-2": {"sizes": ["720x1280"], "seconds": ["four"]}}'}, "MODEL_OPTIONS"),
        ({"MODEL_OPTIONS": '{"sora-2": {"size": ["720x1280"], "seconds": ["4"]}}'}, "MODEL_OPTIONS"),
        # ALLOWED_*: unknown to every model, or leaving a model nothing it accepts.
        ({"ALLOWED_MODELS": "sora-2,sora-3"}, "ALLOWED_MODELS"),
        ({"ALLOWED_SIZES": "640x480"}, "ALLOWED_SIZES"),
        ({"ALLOWED_SIZES": "1792x1024"}, "ALLOWED_SIZES"),
        ({"ALLOWED_SECONDS": "5"}, "ALLOWED_SECONDS"),
        ({"ALLOWED_SECONDS": "four"}, "ALLOWED_SECONDS"),
    ],
)
def test_a_bad_or_missing_setting_is_named(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**LEGACY, **overrides})


def test_identity_based_storage_needs_both_service_uris() -> None:
    identity = {
        "GEMINIGEN_API_KEY": "k",
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
    }
    settings = Settings.from_env(identity)
    assert settings.storage.connection_string is None
    assert settings.storage.client_id == "00000000-0000-0000-0000-000000000001"
    del identity["AzureWebJobsStorage__tableServiceUri"]
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_env(identity)


def test_the_sample_settings_load() -> None:
    sample = json.loads((Path(__file__).parents[2] / "local.settings.sample.json").read_text())["Values"]
    settings = Settings.from_env(sample)
    # The local catalog has a model at every provider kind, all on the simulator.
    assert settings.allowed_models == (
        "sora-2",
        "sora-2-pro",
        "sora-2-openai",
        "veo-3.1",
        "veo-3.1-fast",
        "veo-3.0",
        "veo-3.1-fal",
    )
    assert {account.kind for account in settings.providers.values()} == set(KINDS)
    assert {model.provider for model in settings.catalog.values()} == set(settings.providers)
    assert settings.allow_local_urls is True  # local development only


def test_the_older_settings_keep_their_sora_models_and_sizes() -> None:
    settings = Settings.from_env(LEGACY)
    assert settings.models == {
        "sora-2": ModelOptions(sizes=("720x1280", "1280x720"), seconds=("4", "8", "12")),
        "sora-2-pro": ModelOptions(
            sizes=("720x1280", "1280x720", "1024x1792", "1792x1024"), seconds=("4", "8", "12")
        ),
    }
    # The old names still read as the union of what the allowed models accept.
    assert settings.allowed_sizes == ("720x1280", "1280x720", "1024x1792", "1792x1024")
    assert settings.allowed_seconds == ("4", "8", "12")


def test_the_older_default_prices_cover_exactly_the_sizes_each_model_makes() -> None:
    settings = Settings.from_env(LEGACY)
    assert {model: tuple(prices) for model, prices in settings.pricing.items()} == {
        model: options.sizes for model, options in settings.models.items()
    }
    assert all(price > 0 for prices in settings.pricing.values() for price in prices.values())


def test_allowed_lists_narrow_each_model() -> None:
    settings = Settings.from_env(
        {
            **LEGACY,
            "ALLOWED_SIZES": "1280x720,1792x1024",
            "ALLOWED_SECONDS": "8, 12",
            "ALLOWED_MODELS": "sora-2",
        }
    )
    assert settings.allowed_models == ("sora-2",)
    assert settings.models == {"sora-2": ModelOptions(sizes=("1280x720",), seconds=("8", "12"))}
    assert (settings.allowed_sizes, settings.allowed_seconds) == (("1280x720",), ("8", "12"))


def test_an_operator_model_table_is_read_and_the_defaults_follow_it() -> None:
    table = {"sora-2": {"sizes": ["1280x720"], "seconds": [4, "8"]}}
    without_deployments = {key: value for key, value in LEGACY.items() if key != "SORA_DEPLOYMENTS"}
    settings = Settings.from_env({**without_deployments, "MODEL_OPTIONS": json.dumps(table)})
    assert settings.allowed_models == ("sora-2",)
    assert settings.models == {"sora-2": ModelOptions(sizes=("1280x720",), seconds=("4", "8"))}
    # Default tables keep only what the operator's table knows, instead of failing on sora-2-pro.
    assert settings.pricing == {"sora-2": {"1280x720": 0.10}}
    assert settings.deployments == {"sora-2": "sora-2"}


def test_an_operator_plan_table_is_normalised_and_missing_plans_are_disabled() -> None:
    settings = Settings.from_env({**MINIMAL, "PLAN_LIMITS": '{"pro": {"hour": 1, "day": 2}, "free": null}'})
    assert settings.plan_limits == {"pro": {"hour": 1, "day": 2}, "free": None}


def test_a_setting_error_names_the_value_that_cannot_work() -> None:
    with pytest.raises(SettingsError, match=r"sora-3.*MODEL_OPTIONS does not describe"):
        Settings.from_env({**LEGACY, "PRICING": '{"sora-3": {"720x1280": 0.1}}'})
    with pytest.raises(
        SettingsError, match=r"POLL_MIN_SECONDS \(30\) must not exceed POLL_MAX_SECONDS \(10\)"
    ):
        Settings.from_env({**LEGACY, "POLL_MIN_SECONDS": "30", "POLL_MAX_SECONDS": "10"})
    with pytest.raises(SettingsError, match=r"leaves model 'sora-2' nothing"):
        Settings.from_env({**LEGACY, "ALLOWED_SIZES": "1792x1024"})


def test_the_start_up_check_passes_without_connection_settings_yet() -> None:
    check_settings({})  # an app looked at without its settings (an index check)
    check_settings({"SORA_DEPLOYMENTS": '{"sora-2": "d"}'})  # its Azure OpenAI account stood in
    identity_storage = {
        "AzureWebJobsStorage__blobServiceUri": "https://a.blob.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://a.table.core.windows.net",
    }
    check_settings({**identity_storage, "GEMINIGEN_API_KEY": "k"})
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        check_settings(
            {
                "AzureWebJobsStorage__blobServiceUri": "https://a.blob.core.windows.net",
                "GEMINIGEN_API_KEY": "k",
            }
        )
    with pytest.raises(SettingsError, match="PLAN_LIMITS"):
        check_settings({"PLAN_LIMITS": '{"pro": 5}'})
    # Connected to its storage but to no provider: a deployment that cannot make a video stops.
    with pytest.raises(SettingsError, match="missing setting PROVIDERS"):
        check_settings(identity_storage)
    with pytest.raises(SettingsError, match="missing setting MODEL_CATALOG"):
        check_settings({**identity_storage, "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"})


def test_a_setting_that_cannot_work_stops_the_app_from_loading() -> None:
    """The Functions worker imports the blueprints to index them: a bad setting stops it there."""
    env = {"PATH": "", "PYTHONPATH": str(PROJECT_DIR), "PLAN_LIMITS": '{"pro": {"hour": 5}}'}
    refused = subprocess.run(
        [sys.executable, "-c", "import api.videos"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True
    )
    loaded = subprocess.run(
        [sys.executable, "-c", "import api.videos"],
        cwd=PROJECT_DIR,
        env={**env, "PLAN_LIMITS": '{"pro": {"hour": 5, "day": 20}}'},
        capture_output=True,
        text=True,
    )

    assert refused.returncode != 0
    assert "SettingsError: setting PLAN_LIMITS" in refused.stderr
    assert loaded.returncode == 0, loaded.stderr


PROVIDERS = {
    "azure-openai": {"kind": "azure-openai", "base_url": "https://x.openai.azure.com/"},
    "aimlapi": {
        "kind": "aimlapi",
        "base_url": "https://api.aimlapi.com",
        "key_setting": "AIMLAPI_API_KEY",
        "creates_per_minute": 10,
    },
}
CATALOG = [
    {
        "id": "veo-3.1",
        "provider": "aimlapi",
        "provider_model": "google/veo-3.1-t2v",
        "sizes": ["1280x720", "720x1280"],
        "seconds": [4, 6, 8],
        "price_per_second": 0.4,
    }
]


def with_providers(**more: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "PROVIDERS": json.dumps(PROVIDERS),
        "AIMLAPI_API_KEY": "secret-aiml-key",
        "MODEL_CATALOG": json.dumps(CATALOG),
        **more,
    }


def test_provider_accounts_and_the_catalog_are_read_and_keys_stay_out_of_repr() -> None:
    settings = Settings.from_env(with_providers())
    account = settings.providers["aimlapi"]
    assert (account.kind, account.base_url, account.api_key) == (
        "aimlapi",
        "https://api.aimlapi.com",
        "secret-aiml-key",
    )
    assert "secret-aiml-key" not in repr(settings)
    assert settings.provider_paces == {"azure-openai": 2, "aimlapi": 10}
    model = settings.catalog["veo-3.1"]
    assert (model.provider, model.provider_model, model.seconds) == (
        "aimlapi",
        "google/veo-3.1-t2v",
        ("4", "6", "8"),
    )
    assert (model.image_input, model.remix) == (False, False)
    assert settings.pricing == {"veo-3.1": {"1280x720": 0.4, "720x1280": 0.4}}


def test_the_catalog_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    env = with_providers(MODEL_CATALOG_FILE=str(path))
    del env["MODEL_CATALOG"]
    assert tuple(Settings.from_env(env).catalog) == ("veo-3.1",)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PROVIDERS": '{"x": {"kind": "sora-direct", "base_url": "https://x"}}'}, "PROVIDERS"),
        ({"PROVIDERS": '{"x": {"kind": "aimlapi"}}'}, "base_url"),
        ({"PROVIDERS": '{"x": {"kind": "aimlapi", "base_url": "ftp://x"}}'}, "base_url"),
        ({"AIMLAPI_API_KEY": ""}, "AIMLAPI_API_KEY"),
        ({"PROVIDERS": '{"x": {"kind": "geminigen", "base_url": "https://x"}}'}, "key_setting"),
        (
            {"MODEL_CATALOG": '[{"id": "m", "provider": "nobody", "sizes": ["1280x720"], "seconds": [4]}]'},
            "MODEL_CATALOG",
        ),
        (
            {
                "MODEL_CATALOG": '[{"id": "a/b", "provider": "aimlapi", "sizes": ["1280x720"], "seconds": [4]}]'
            },
            "MODEL_CATALOG",
        ),
        ({"MODEL_CATALOG": "[]"}, "MODEL_CATALOG"),
        ({"MODEL_OPTIONS": '{"sora-2": {"sizes": ["720x1280"], "seconds": ["4"]}}'}, "MODEL_OPTIONS"),
        ({"MODEL_CATALOG_FILE": "/nonexistent/catalog.json"}, "MODEL_CATALOG_FILE"),
    ],
)
def test_a_provider_or_catalog_setting_that_cannot_work_is_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as refused:
        Settings.from_env(with_providers(**change))
    assert "secret-aiml-key" not in str(refused.value)


def test_without_an_azure_account_the_older_model_settings_need_a_catalog() -> None:
    env = with_providers(
        PROVIDERS=json.dumps({"aimlapi": PROVIDERS["aimlapi"]}), SORA_DEPLOYMENTS='{"sora-2": "d"}'
    )
    del env["MODEL_CATALOG"]
    with pytest.raises(SettingsError, match="MODEL_CATALOG"):
        Settings.from_env(env)


def test_without_a_catalog_each_account_offers_its_built_in_live_models() -> None:
    both = Settings.from_env({**MINIMAL, "GEMINIGEN_API_KEY": "gemini-key"})
    # Both offer Veo 3.1: the AI/ML API account, listed first, makes it under its own id, and
    # GeminiGen under an id naming it, so each key serves a model.
    assert list(both.providers) == ["aimlapi", "geminigen"]
    assert {model.id: (model.provider, model.provider_model) for model in both.catalog.values()} == {
        "veo-3.1": ("aimlapi", "google/veo-3.1-t2v"),
        "veo-3.1-fast": ("aimlapi", "google/veo-3.1-t2v-fast"),
        "veo-3.1-geminigen": ("geminigen", "veo-3.1"),
        "veo-3.1-fast-geminigen": ("geminigen", "veo-3.1-fast"),
    }
    geminigen = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "GEMINIGEN_API_KEY": "k"}
    )
    model = geminigen.catalog["veo-3.1-fast"]
    assert (model.provider, model.provider_model, model.image_input, model.remix) == (
        "geminigen",
        "veo-3.1-fast",
        True,
        False,
    )
    assert geminigen.providers["geminigen"].base_url == "https://api.geminigen.ai/uapi/v1"
    # Explicit accounts get the built-in models of their kinds too.
    explicit = with_providers()
    del explicit["MODEL_CATALOG"]
    assert {model.provider for model in Settings.from_env(explicit).catalog.values()} == {"aimlapi"}


def test_no_built_in_model_is_a_retired_one() -> None:
    for models in BUILT_IN_MODELS.values():
        for model in models:
            assert not str(model["id"]).startswith("sora"), model
            assert not str(model.get("provider_model", model["id"])).split("/")[-1].startswith("sora"), model


def test_azure_openai_alone_has_no_model_to_offer_until_the_catalog_names_its_deployments() -> None:
    azure_only = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_OPENAI_ENDPOINT": "https://x"}
    with pytest.raises(SettingsError, match=r"missing setting MODEL_CATALOG.*retired"):
        Settings.from_env(azure_only)
    catalog = [{"id": "house-video", "provider": "azure-openai", "sizes": ["1280x720"], "seconds": [4]}]
    settings = Settings.from_env({**azure_only, "MODEL_CATALOG": json.dumps(catalog)})
    assert settings.catalog["house-video"].provider == "azure-openai"
    with pytest.raises(SettingsError, match="missing setting PROVIDERS"):
        Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
