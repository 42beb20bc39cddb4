"""The template sets every setting the deployed code reads, and nothing the code and host don't know.

What the code reads is found from the code itself, so new settings are caught without editing this
file: the keys `Settings.from_env()` looks up (through a recording mapping), `os.environ` / `getenv`
reads and `%NAME%` binding expressions (timer schedules, host.json) in the files that are deployed
(the project less `.funcignore`), and the settings that binding `connection=` names refer to.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import SettingsError
from gateway.settings import Settings
from scripts.package import deployable_files
from tests.infra.bicep import (
    PROJECT_DIR,
    deployed_app_settings,
    main_template,
    template_app_settings,
    text,
)

SAMPLE_SETTINGS = PROJECT_DIR / "local.settings.sample.json"
DEPLOY_DOC = PROJECT_DIR / "docs" / "deployment.md"  # its "Settings in Azure" section

# Read by the code but deliberately not set by the template (each is documented in docs/deployment.md).
OPTIONAL_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage": "a connection string (Azurite); in Azure the identity-based AzureWebJobsStorage__* settings replace it",
    "AZURE_OPENAI_API_KEY": "key authentication; in Azure the identity calls Azure OpenAI with Entra ID tokens",
    "TABLE_PREFIX": "several gateways in one storage account; each deployment has its own account",
    "PROVIDERS": "provider accounts, set only from the template's providers parameter; unset, derived from the key settings and AZURE_OPENAI_ENDPOINT that exist",
    "MODEL_CATALOG": "the model catalog, set only from the template's modelCatalog parameter; unset, the built-in live models (or the legacy per-model settings when given)",
    "MODEL_CATALOG_FILE": "the model catalog in a file, instead of MODEL_CATALOG",
}

# Provider API keys: the code reads them under whatever name PROVIDERS' key_setting gives, so the
# discovery cannot see them by name. The template sets each as a Key Vault reference when deploy.sh
# hands it the key (or it is stored from an earlier run); documented in docs/providers.md.
PROVIDER_KEY_SETTINGS: dict[str, str] = {
    "AIMLAPI_API_KEY": "the AI/ML API key (template parameter aimlapiApiKey)",
    "GEMINIGEN_API_KEY": "the GeminiGen key (template parameter geminigenApiKey)",
    "GEMINI_API_KEY": "the Gemini API key (template parameter geminiApiKey)",
    "FAL_KEY": "the fal key (template parameter falKey)",
    "OPENAI_COMPATIBLE_API_KEY": "the key of an OpenAI-compatible service (template parameter openaiCompatibleApiKey)",
}
PROVIDER_KINDS = {
    "AIMLAPI_API_KEY": "aimlapi",
    "GEMINIGEN_API_KEY": "geminigen",
    "GEMINI_API_KEY": "gemini",
    "FAL_KEY": "fal",
    "OPENAI_COMPATIBLE_API_KEY": "openai-compatible",
}
PROVIDERS_DOC = PROJECT_DIR / "docs" / "providers.md"
DEPLOY_SCRIPT = PROJECT_DIR / "scripts" / "deploy.sh"

# Local runs only (local.settings.json); never set in Azure. A trailing * is a prefix.
LOCAL_ONLY_SETTINGS: dict[str, str] = {
    "FUNCTIONS_WORKER_RUNTIME": "Core Tools needs it locally; on Flex Consumption the runtime is functionAppConfig.runtime",
    "AzureWebJobsFeatureFlags": "worker indexing is the default for the Python v2 model in Azure",
    "DEV_APP_KEY": "the local stack's seeded development app",
    "DEVHOST_*": "the local dev host",
    "SORA_SIM_*": "the Sora simulator",
    "AZURITE_*": "the Azurite storage emulator",
}

# Set by the template for the Functions host or platform; the gateway's code never reads them.
HOST_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage__blobServiceUri": "host storage through the identity (the code reads it too)",
    "AzureWebJobsStorage__queueServiceUri": "Durable Functions queues through the identity",
    "AzureWebJobsStorage__tableServiceUri": "host storage through the identity (the code reads it too)",
    "AzureWebJobsStorage__credential": "'managedidentity': identity-based host storage",
    "AzureWebJobsStorage__clientId": "which user-assigned identity the host uses",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where telemetry goes",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID authentication to Application Insights",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type": "Durable Task Scheduler switch (overrides host.json)",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName": "Durable Task Scheduler switch",
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING": "the scheduler endpoint, with managed identity authentication",
}

# What the host needs in Azure whatever the code reads.
REQUIRED_HOST_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Deprecated or refused on Flex Consumption, or a shared key / secret in plain text.
FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "AzureWebJobsStorage",
    "AZURE_OPENAI_API_KEY",
    "DEV_APP_KEY",
}

IDENTITY_STORAGE = {
    "AzureWebJobsStorage__blobServiceUri": "https://example.blob.core.windows.net",
    "AzureWebJobsStorage__tableServiceUri": "https://example.table.core.windows.net",
    "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
}
# A configuration the app starts with, before and after Azure OpenAI became optional: an AI/ML API
# key gives an account with built-in models (the endpoint alone offers none now that Sora is retired).
APP_BASE = {**IDENTITY_STORAGE, "AIMLAPI_API_KEY": "k"}
SETTING_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
MISSING_SETTING = re.compile(r"missing setting (\S+)")


class RecordingEnv(Mapping[str, str]):
    """A settings mapping that remembers every key looked up, present or not."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings must be read by name, or this check cannot see them")

    def __len__(self) -> int:
        return len(self._values)


def sample_values() -> dict[str, str]:
    values: dict[str, str] = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    return values


def settings_read_by_from_env(base: Mapping[str, str]) -> set[str]:
    """Build Settings from `base`, adding a dummy for any further required key, and record the reads."""
    values = dict(base)
    for _ in range(20):
        env = RecordingEnv(values)
        try:
            Settings.from_env(env)
        except SettingsError as error:
            missing = MISSING_SETTING.search(str(error))
            if missing is None or missing.group(1) in values:
                raise
            values[missing.group(1)] = "1"
            continue
        return env.read
    raise AssertionError("Settings.from_env keeps asking for more settings")


def deployed_sources() -> list[Path]:
    return [PROJECT_DIR / relative for relative in deployable_files(PROJECT_DIR)]


def python_reads(source: str) -> tuple[set[str], set[str]]:
    """(settings read or referenced by name, binding connection names) in one Python file."""
    names: set[str] = set()
    connections: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(match.group(1) for match in [SETTING_REFERENCE.fullmatch(node.value)] if match)
        if isinstance(node, ast.Call):
            target = ast.unparse(node.func)
            first = node.args[0] if node.args else None
            if (
                target in {"os.getenv", "getenv", "os.environ.get", "environ.get", "os.environ.setdefault"}
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names.add(first.value)
            for keyword in node.keywords:
                if (
                    keyword.arg == "connection"
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                ):
                    connections.add(keyword.value.value)
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) in {"os.environ", "environ"}
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            names.add(node.slice.value)
    return names, connections


@cache
def code_settings() -> frozenset[str]:
    """Every setting the deployed code (and host.json) reads."""
    read = settings_read_by_from_env({**sample_values(), **APP_BASE})
    read |= settings_read_by_from_env({**APP_BASE, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    for path in deployed_sources():
        if path.suffix == ".py":
            names, _ = python_reads(path.read_text(encoding="utf-8"))
            read |= names
        elif path.suffix == ".json":
            read |= set(SETTING_REFERENCE.findall(path.read_text(encoding="utf-8")))
    return frozenset(read)


def binding_connections() -> set[str]:
    found: set[str] = set()
    for path in deployed_sources():
        if path.suffix == ".py":
            found |= python_reads(path.read_text(encoding="utf-8"))[1]
    return found


def matches(key: str, names: Mapping[str, str] | set[str]) -> bool:
    return any(key == name or (name.endswith("*") and fnmatch.fnmatchcase(key, name)) for name in names)


def single_value(settings: dict[str, list[Any]], key: str) -> Any:
    values = settings[key]
    assert len(values) == 1, f"{key} has several possible values in the template"
    return values[0]


# --- the discovery itself ------------------------------------------------------------------------


def test_discovery_sees_settings_read_through_each_path() -> None:
    read = code_settings()
    assert {
        "AZURE_OPENAI_ENDPOINT",
        "VIDEO_RETENTION_DAYS",
        "AzureWebJobsStorage__clientId",
    } <= read  # from_env
    assert "TASK_HUB_NAME" in read  # host.json %TASK_HUB_NAME%
    names, connections = python_reads(
        "import os\n"
        "x = os.environ['A']\ny = os.getenv('B')\nz = os.environ.get('C', '')\n"
        "@bp.timer_trigger(schedule='%D%', arg_name='t')\ndef f(t): ...\n"
        "@bp.blob_trigger(arg_name='b', path='p', connection='E')\ndef g(b): ...\n"
    )
    assert names == {"A", "B", "C", "D"}
    assert connections == {"E"}


def test_discovery_refuses_settings_read_by_iteration() -> None:
    with pytest.raises(AssertionError, match="read by name"):
        list(RecordingEnv({"A": "1"}))


# --- code versus template ------------------------------------------------------------------------


def not_deployed(keys: Iterable[str]) -> list[str]:
    """The keys neither set by the template nor listed as optional or local-only."""
    template = set(template_app_settings())
    return sorted(
        key
        for key in keys
        if key not in template
        and not matches(key, OPTIONAL_SETTINGS)
        and not matches(key, LOCAL_ONLY_SETTINGS)
    )


def test_every_setting_the_code_reads_is_set_by_the_template_or_optional() -> None:
    missing = not_deployed(code_settings())
    assert not missing, f"read by the code, neither set by infra/main.bicep nor listed as optional: {missing}"


def provider_key_settings_read() -> set[str]:
    """Which of PROVIDER_KEY_SETTINGS the code reads when PROVIDERS names each as a key_setting."""
    accounts: dict[str, Any] = {
        "azure-openai": {"kind": "azure-openai", "base_url": IDENTITY_STORAGE["AZURE_OPENAI_ENDPOINT"]}
    }
    for setting, kind in PROVIDER_KINDS.items():
        accounts[kind] = {"kind": kind, "base_url": "https://provider.example/v1", "key_setting": setting}
    values = {
        **IDENTITY_STORAGE,
        "PROVIDERS": json.dumps(accounts),
        **dict.fromkeys(PROVIDER_KEY_SETTINGS, "k"),
    }
    return settings_read_by_from_env(values) & set(PROVIDER_KEY_SETTINGS)


def test_the_template_sets_no_setting_unknown_to_the_code_or_host() -> None:
    known = code_settings() | set(HOST_SETTINGS) | provider_key_settings_read()
    unknown = sorted(set(template_app_settings()) - known)
    assert not unknown, f"set by infra/main.bicep but read by neither the code nor the host: {unknown}"


def test_the_template_sets_what_the_host_needs_in_azure() -> None:
    assert set(template_app_settings()) >= REQUIRED_HOST_SETTINGS


def test_binding_connections_are_identity_based_settings_in_the_template() -> None:
    template = set(template_app_settings())
    for connection in binding_connections():
        assert connection == "AzureWebJobsStorage" or any(
            key.startswith(f"{connection}__") for key in template
        ), f"binding connection {connection!r} has no {connection}__* settings in the template"


def test_nothing_deprecated_on_flex_local_only_or_secret_is_set() -> None:
    template = set(template_app_settings())
    assert not template & FORBIDDEN_SETTINGS
    assert not [key for key in template if matches(key, LOCAL_ONLY_SETTINGS)]


def test_every_local_sample_setting_is_deployed_or_listed_as_optional() -> None:
    unaccounted = not_deployed(sample_values())
    assert not unaccounted, f"in local.settings.sample.json but neither deployed nor optional: {unaccounted}"


def test_optional_lists_are_current_and_documented() -> None:
    code = code_settings()
    stale = [key for key in OPTIONAL_SETTINGS if key not in code]
    assert not stale, f"listed as optional but no longer read by the code: {stale}"
    samples = sample_values()
    for pattern in LOCAL_ONLY_SETTINGS:
        assert any(matches(key, {pattern}) for key in samples), f"{pattern} matches nothing in the sample"
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    undocumented = [key for key in [*OPTIONAL_SETTINGS, *LOCAL_ONLY_SETTINGS] if f"`{key}`" not in doc]
    assert not undocumented, f"docs/deployment.md does not mention the optional settings {undocumented}"


# --- provider keys and the catalog ---------------------------------------------------------------


def test_the_code_reads_each_provider_key_setting_that_providers_names() -> None:
    assert provider_key_settings_read() == set(PROVIDER_KEY_SETTINGS)


def test_the_template_sets_each_provider_key_as_a_key_vault_reference() -> None:
    settings = template_app_settings()
    # Any *_KEY the template sets (FAL_KEY too) is a provider key listed here (or the management key).
    assert {key for key in settings if key.endswith("_KEY")} == {"ADMIN_API_KEY", *PROVIDER_KEY_SETTINGS}
    for key in PROVIDER_KEY_SETTINGS:
        value = single_value(settings, key)
        assert isinstance(value, str)
        assert value.startswith("@Microsoft.KeyVault(VaultName=${vault.name};SecretName=")
        assert value.endswith(")")


def test_deploy_script_reads_the_keys_the_template_takes() -> None:
    script = DEPLOY_SCRIPT.read_text(encoding="utf-8")
    listed = re.search(r"^PROVIDER_KEY_SETTINGS=\(([^)]*)\)", script, flags=re.MULTILINE)
    assert listed, "deploy.sh has no PROVIDER_KEY_SETTINGS list"
    assert listed.group(1).split() == list(PROVIDER_KEY_SETTINGS)
    parameters = re.search(r"^PROVIDER_KEY_PARAMETERS=\(([^)]*)\)", script, flags=re.MULTILINE)
    assert parameters, "deploy.sh has no PROVIDER_KEY_PARAMETERS list"
    template = main_template()["parameters"]
    for name in parameters.group(1).split():
        assert any(decorator["type"] == "secure" for decorator in template[name]["decorators"]), name


def test_provider_key_settings_are_documented() -> None:
    doc = PROVIDERS_DOC.read_text(encoding="utf-8")
    undocumented = [key for key in PROVIDER_KEY_SETTINGS if f"`{key}`" not in doc]
    assert not undocumented, f"docs/providers.md does not mention {undocumented}"


def documented_json(kind: type) -> list[Any]:
    """The ```json blocks of docs/providers.md that hold a `kind` (dict: PROVIDERS, list: catalog)."""
    blocks = re.findall(r"```json\n(.*?)```", PROVIDERS_DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [value for value in map(json.loads, blocks) if isinstance(value, kind)]


def test_the_documented_providers_and_catalog_are_accepted_by_the_app() -> None:
    """As deployed: PROVIDERS with the template's azure-openai account added, the key settings set,
    MODEL_CATALOG instead of the per-model settings."""
    (providers,) = documented_json(dict)
    (catalog,) = documented_json(list)
    accounts = {
        "azure-openai": {"kind": "azure-openai", "base_url": IDENTITY_STORAGE["AZURE_OPENAI_ENDPOINT"]}
    }
    accounts.update(providers)
    named = {account.get("key_setting") for account in providers.values()} - {None}
    assert named <= set(PROVIDER_KEY_SETTINGS), "the example names a key setting the template does not set"
    settings = Settings.from_env(
        {
            **IDENTITY_STORAGE,
            "PROVIDERS": json.dumps(accounts),
            "MODEL_CATALOG": json.dumps(catalog),
            **dict.fromkeys(named, "k"),
        }
    )
    assert {model["id"] for model in catalog} == set(settings.catalog)
    assert {model["provider"] for model in catalog} - {"azure-openai"}, "the example uses no other provider"


# --- values ------------------------------------------------------------------------------------


def test_secrets_and_identity_come_from_azure_not_from_the_template() -> None:
    settings = template_app_settings()
    admin = single_value(settings, "ADMIN_API_KEY")
    assert isinstance(admin, str)
    assert admin.startswith("@Microsoft.KeyVault(VaultName=")
    assert "SecretName=" in admin
    assert single_value(settings, "AzureWebJobsStorage__credential") == "managedidentity"
    for key in ("AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"):
        assert "clientId" in text(single_value(settings, key))
        assert "identity" in text(single_value(settings, key))
    assert "Authorization=AAD" in text(single_value(settings, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"))
    assert single_value(settings, "ALLOW_LOCAL_URLS") == "false"


def test_durable_task_scheduler_switch_is_consistent() -> None:
    settings = template_app_settings()
    provider = single_value(settings, "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type")
    assert provider == "azureManaged"
    connection_name = single_value(
        settings, "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName"
    )
    assert connection_name in settings
    connection = text(single_value(settings, connection_name))
    assert "Authentication=ManagedIdentity" in connection
    assert "ClientID=" in connection


def literal(expression: Any) -> Any:
    """A parameter default as a Python value (object keys unquoted, json('0.1') evaluated)."""
    if isinstance(expression, dict) and set(expression) == {"function"}:
        function = expression["function"]
        assert function["type"] == "json", f"not a literal: {function['type']}(...)"
        return json.loads(function["parameters"]["arg_1"])
    if isinstance(expression, dict):
        return {key.strip("'"): literal(value) for key, value in expression.items()}
    if isinstance(expression, list):
        return [literal(item) for item in expression]
    return expression


def parameter_behind(value: Any, parameters: dict[str, Any]) -> str | None:
    """The parameter a setting value is (or is string() of), if any."""
    if isinstance(value, str) and value in parameters:
        return value
    if isinstance(value, dict) and value.get("function", {}).get("type") == "string":
        inner = value["function"]["parameters"]["value_to_convert"]
        return inner if isinstance(inner, str) and inner in parameters else None
    return None


def as_setting(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def test_template_defaults_parse_and_equal_the_code_defaults() -> None:
    """Each setting a default deployment writes from a parameter's default means what the code's
    own default means."""
    template = main_template()
    parameters = template["parameters"]
    settings = deployed_app_settings()
    code_default = Settings.from_env(APP_BASE)
    compared = []
    for key, value_expression in settings.items():
        parameter = parameter_behind(value_expression, parameters)
        if parameter is None or key in IDENTITY_STORAGE:
            continue
        value = as_setting(literal(parameters[parameter]["default"]))
        deployed = Settings.from_env({**APP_BASE, key: value})
        differing = [
            f.name for f in fields(Settings) if getattr(deployed, f.name) != getattr(code_default, f.name)
        ]
        assert not differing, f"{key}={value!r} (default of parameter {parameter}) changes {differing}"
        compared.append(key)
    assert {
        "PLAN_LIMITS",
        "UPSTREAM_CREATES_PER_MINUTE",
        "VIDEO_RETENTION_DAYS",
        "POLL_MIN_SECONDS",
    } <= set(compared)
    assert not {"PRICING", "SORA_DEPLOYMENTS", "MODEL_OPTIONS"} & set(settings), "legacy settings by default"


# --- what a deployment offers, as the app sees it ------------------------------------------------

# What Azure puts behind the settings the template computes from resources: the resolved Key Vault
# references (the platform fetches the secret), and the endpoints and ids of the deployed resources.
RESOLVED_KEY = "key-from-key-vault"
AZURE_VALUES = {
    "AzureWebJobsStorage__blobServiceUri": "https://stexample.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://stexample.queue.core.windows.net",
    "AzureWebJobsStorage__tableServiceUri": "https://stexample.table.core.windows.net",
    "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-0000000000c1",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
    "AZURE_OPENAI_ENDPOINT": "https://my-openai.openai.azure.com",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
}


def app_environment(**arguments: Any) -> dict[str, str]:
    """The app settings a deployment with these template parameters gives the app in Azure."""
    template = main_template()
    parameters = template["parameters"]
    environment: dict[str, str] = {}
    for key, expression in deployed_app_settings(**arguments).items():
        parameter = parameter_behind(expression, parameters)
        if key in AZURE_VALUES:
            environment[key] = AZURE_VALUES[key]
        elif isinstance(expression, str) and expression.startswith("@Microsoft.KeyVault("):
            environment[key] = RESOLVED_KEY
        elif parameter is not None:
            given = arguments.get(parameter, literal(parameters[parameter].get("default")))
            environment[key] = as_setting(given)
        elif isinstance(expression, str) and "${" not in expression:
            environment[key] = expression
        else:
            environment[key] = f"stand-in for {key}"  # a resource's property the code does not parse
    return environment


# Each key deploy.sh takes that gives an account with built-in models: its template parameter, key
# setting, the account the app derives from it, and the models that account offers on its own.
BUILT_IN_KEYS = (
    ("aimlapiApiKey", "AIMLAPI_API_KEY", "aimlapi", {"veo-3.1", "veo-3.1-fast"}),
    ("geminigenApiKey", "GEMINIGEN_API_KEY", "geminigen", {"veo-3.1", "veo-3.1-fast"}),
    ("geminiApiKey", "GEMINI_API_KEY", "gemini", {"veo-3.0", "veo-3.0-fast"}),
    ("falKey", "FAL_KEY", "fal", {"veo-3.1", "veo-3.1-fast"}),
)


def test_a_deployment_with_only_a_provider_key_offers_live_models_only() -> None:
    """What deploy.sh --provider-keys (AIMLAPI_API_KEY, GEMINIGEN_API_KEY, GEMINI_API_KEY or
    FAL_KEY) and nothing else deploys: the app starts with that provider's built-in models, none of
    them a retired Sora."""
    for parameter, setting, account, models in BUILT_IN_KEYS:
        environment = app_environment(**{parameter: "a-key"})
        assert "AZURE_OPENAI_ENDPOINT" not in environment
        assert environment[setting] == RESOLVED_KEY
        settings = Settings.from_env(environment)
        assert set(settings.providers) == {account}
        assert settings.catalog, f"{parameter}: no model offered"
        assert models <= set(settings.catalog)
        assert not [model for model in settings.catalog if model.startswith("sora")]
        assert {model.provider for model in settings.catalog.values()} == {account}
        # A key stored by an earlier run (deploy.sh passes storedProviderKeys) offers the same.
        stored = Settings.from_env(app_environment(storedProviderKeys=[setting]))
        assert set(stored.catalog) == set(settings.catalog), setting
        assert not [model for model in stored.catalog if model.startswith("sora")]


def test_a_deployment_with_every_built_in_key_offers_each_account_s_models() -> None:
    """All four keys: four accounts, each serving its models; an id a former account already
    offers gets the account's name as a suffix (fal's veo-3.1 is veo-3.1-fal)."""
    settings = Settings.from_env(app_environment(**dict.fromkeys([key[0] for key in BUILT_IN_KEYS], "a-key")))
    assert set(settings.providers) == {account for _, _, account, _ in BUILT_IN_KEYS}
    assert {model.provider for model in settings.catalog.values()} == set(settings.providers)
    assert settings.catalog["veo-3.1"].provider == "aimlapi"
    assert settings.catalog["veo-3.0"].provider == "gemini"
    assert settings.catalog["veo-3.1-fal"].provider == "fal"
    assert settings.catalog["veo-3.1-fast-fal"].provider == "fal"
    assert not [model for model in settings.catalog if model.startswith("sora")]


def test_a_deployment_with_an_azure_openai_account_too_offers_no_sora() -> None:
    settings = Settings.from_env(app_environment(aimlapiApiKey="a-key", openAiAccountName="my-openai"))
    assert set(settings.providers) == {"aimlapi", "azure-openai"}
    assert settings.catalog
    assert not [model for model in settings.catalog if model.startswith("sora")]


def test_deployments_without_a_model_are_refused_by_the_app_as_by_deploy_sh() -> None:
    """The cases deploy.sh refuses before deploying are the ones the app would refuse at start."""
    with pytest.raises(SettingsError, match="PROVIDERS"):
        Settings.from_env(app_environment())
    with pytest.raises(SettingsError, match="MODEL_CATALOG"):
        Settings.from_env(app_environment(openAiAccountName="my-openai"))
    # An OpenAI-compatible key alone makes no account: such an account is only listed in PROVIDERS.
    with pytest.raises(SettingsError, match="PROVIDERS"):
        Settings.from_env(app_environment(openaiCompatibleApiKey="a-key"))


def test_an_azure_openai_catalog_and_the_legacy_parameters_still_deploy() -> None:
    catalog = [
        {
            "id": "my-video-model",
            "provider": "azure-openai",
            "provider_model": "my-deployment",
            "sizes": ["1280x720"],
            "seconds": [4, 8],
            "price_per_second": 0.1,
        }
    ]
    settings = Settings.from_env(
        app_environment(openAiAccountName="my-openai", modelCatalog=json.dumps(catalog))
    )
    assert set(settings.catalog) == {"my-video-model"}
    assert settings.catalog["my-video-model"].provider == "azure-openai"
    # An existing parameter file that still sets the per-model parameters keeps its models.
    legacy = Settings.from_env(
        app_environment(
            openAiAccountName="my-openai",
            soraDeployments={"sora-2": "my-sora-2"},
            allowedModels="sora-2",
        )
    )
    assert set(legacy.catalog) == {"sora-2"}
    assert legacy.catalog["sora-2"].provider_model == "my-sora-2"
