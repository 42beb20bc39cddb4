"""Settings: read once from the environment, failing fast with the offending key's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import AZURITE_CONNECTION_STRING, Settings

MINIMAL = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com/",
}


def test_defaults_match_the_contract() -> None:
    settings = Settings.from_env(MINIMAL)
    assert settings.storage.connection_string == AZURITE_CONNECTION_STRING
    assert settings.openai_endpoint == "https://x.openai.azure.com"
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
        ({"AZURE_OPENAI_ENDPOINT": ""}, "AZURE_OPENAI_ENDPOINT"),
        ({"AzureWebJobsStorage": ""}, "AzureWebJobsStorage"),
        ({"SAS_TTL_MINUTES": "soon"}, "SAS_TTL_MINUTES"),
        ({"SAS_TTL_MINUTES": "0"}, "SAS_TTL_MINUTES"),
        ({"PLAN_LIMITS": "{not json"}, "PLAN_LIMITS"),
        ({"ALLOW_LOCAL_URLS": "maybe"}, "ALLOW_LOCAL_URLS"),
        ({"JOB_TIMEOUT_MINUTES": "nan"}, "JOB_TIMEOUT_MINUTES"),
        ({"WEBHOOK_RETRY_SECONDS": "30,-1"}, "WEBHOOK_RETRY_SECONDS"),
    ],
)
def test_a_bad_or_missing_setting_is_named(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**MINIMAL, **overrides})


def test_identity_based_storage_needs_both_service_uris() -> None:
    identity = {
        "AZURE_OPENAI_ENDPOINT": "https://x",
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
    assert settings.allowed_models == ("sora-2", "sora-2-pro")
    assert settings.allow_local_urls is True  # local development only
