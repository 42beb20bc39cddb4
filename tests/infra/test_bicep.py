"""The Bicep templates parse, and declare what the issue asks for (checked on the parse tree)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import (
    INFRA_DIR,
    PROJECT_DIR,
    bicep_files,
    deployed_app_settings,
    evaluate,
    main_template,
    parse,
    resource_body,
    resources_of_type,
    template_app_settings,
    text,
)

# Built-in role definition ids (identical in every tenant).
BUILT_IN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Durable Task Data Contributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def body(name: str) -> dict[str, Any]:
    return resource_body(main_template()["resources"][name])


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return resource_body(next(iter(found.values())))


def role_assignments() -> list[tuple[str, str, str]]:
    """(role definition id, scope symbol, principal type) of every role assignment, in every file."""
    found = []
    for path in bicep_files():
        template = parse(path)
        variables = template.get("variables", {})
        guids: dict[str, str] = {}
        for name, variable in variables.items():
            value = variable["value"]
            if isinstance(value, str) and GUID.fullmatch(value):
                guids[name] = value
            elif isinstance(value, dict):
                guids.update({f"{name}.{key}": item for key, item in value.items() if isinstance(item, str)})
        for resource in resources_of_type(template, "Microsoft.Authorization/roleAssignments").values():
            config = resource_body(resource)
            role = config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            if isinstance(role, dict):  # roleIds.name
                operands = role["operator"]["operands"]
                role = f"{operands['operand_1']}.{operands['operand_2']}"
            found.append((guids[role], config["scope"], config["properties"]["principalType"]))
    return found


@pytest.mark.parametrize("path", bicep_files(), ids=lambda path: str(path.relative_to(INFRA_DIR)))
def test_bicep_file_parses(path: Path) -> None:
    template = parse(path)
    assert template.get("resources") or template.get("modules")


def test_templates_exist_and_use_no_registry_modules() -> None:
    assert INFRA_DIR / "main.bicep" in bicep_files()
    for path in bicep_files():
        for name, module in parse(path).get("modules", {}).items():
            assert module["type"] == "local", f"{path.name}: module {name} comes from a registry"
            assert (path.parent / module["detail"]["path"]).is_file()
    assert not list(INFRA_DIR.rglob("bicepconfig.json")), "no registry aliases needed"


def test_no_keys_or_plain_secrets_in_templates() -> None:
    for path in bicep_files():
        source = path.read_text(encoding="utf-8")
        for forbidden in ("listKeys(", "listkeys(", "AccountKey=", "SharedAccessSignature", "primaryKey"):
            assert forbidden not in source, f"{path.name} uses {forbidden}"
        template = parse(path)
        for name, parameter in template.get("parameters", {}).items():
            secure = any(decorator["type"] == "secure" for decorator in parameter["decorators"])
            if secure:
                assert parameter.get("default") in (None, ""), f"secure parameter {name} has a default"
            for output in template.get("outputs", {}).values():
                if secure:
                    assert name not in text(output["value"]), f"output reveals {name}"


def test_every_parameter_is_described() -> None:
    for path in bicep_files():
        for name, parameter in parse(path).get("parameters", {}).items():
            kinds = {decorator["type"] for decorator in parameter["decorators"]}
            assert "description" in kinds, f"{path.name}: parameter {name} has no @description"


def test_function_app_runs_python_on_flex_consumption_with_a_user_assigned_identity() -> None:
    template = main_template()
    plan = only(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    site = only(template, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert "appSettings" not in properties.get("siteConfig", {}), (
        "settings belong to the appsettings resource"
    )
    assert "linuxFxVersion" not in properties.get("siteConfig", {})
    config = properties["functionAppConfig"]
    assert config["runtime"]["name"] == "python"
    version = template["parameters"][config["runtime"]["version"]]
    allowed = next(d["argument"] for d in version["decorators"] if d["type"] == "allowed")
    # Python 3.13 on Flex Consumption runs the azure-functions-runtime pinned in requirements.txt.
    assert set(allowed) == {"3.13"}
    assert version["default"] in allowed
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    scale = config["scaleAndConcurrency"]
    assert {"instanceMemoryMB", "maximumInstanceCount", "alwaysReady"} <= set(scale)
    assert "identity" in text(properties["keyVaultReferenceIdentity"])


def test_publishing_passwords_are_off() -> None:
    policies = resources_of_type(main_template(), "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {
        resource_body(policy)["name"]: resource_body(policy)["properties"]["allow"]
        for policy in policies.values()
    } == {
        "scm": False,
        "ftp": False,
    }


def test_storage_account_has_no_shared_keys_and_no_public_blobs() -> None:
    storage = only(main_template(), "Microsoft.Storage/storageAccounts")["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["supportsHttpsTrafficOnly"] is True


def test_containers_tables_and_lifecycle_rule() -> None:
    template = main_template()
    parameters = template["parameters"]
    containers = [
        resource_body(resource)
        for resource in resources_of_type(
            template, "Microsoft.Storage/storageAccounts/blobServices/containers"
        ).values()
    ]
    names = {container["name"] for container in containers}
    assert "videosContainer" in names
    assert parameters["videosContainer"]["default"] == "videos"
    deployment_value = text(
        only(template, "Microsoft.Web/sites")["properties"]["functionAppConfig"]["deployment"]
    )
    assert any(f"${{{name}}}" in deployment_value for name in names - {"videosContainer"}), (
        "deployment container"
    )
    assert all(container["properties"]["publicAccess"] == "None" for container in containers)

    tables = resources_of_type(template, "Microsoft.Storage/storageAccounts/tableServices/tables")
    (loop,) = (resource["config"]["loop_type"]["detail"]["array_name"] for resource in tables.values())
    declared = set(template["variables"][loop]["value"])
    used_by_code = set(re.findall(r'^[A-Z_]+_TABLE = "(\w+)"$', _gateway_sources(), flags=re.MULTILINE))
    assert declared <= used_by_code, f"tables the code never uses: {declared - used_by_code}"
    assert {"apps", "appkeys", "jobs"} <= declared

    policy = only(template, "Microsoft.Storage/storageAccounts/managementPolicies")
    (rule,) = policy["properties"]["policy"]["rules"]
    assert rule["enabled"] is True
    assert rule["definition"]["filters"]["prefixMatch"] == ["${videosContainer}/"]
    delete = rule["definition"]["actions"]["baseBlob"]["delete"]
    assert set(delete.values()) == {"videoRetentionDays"}
    settings = template_app_settings()
    assert "videoRetentionDays" in text(settings["VIDEO_RETENTION_DAYS"][0])
    assert settings["VIDEOS_CONTAINER"] == ["videosContainer"]


def _gateway_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in sorted((PROJECT_DIR / "gateway").glob("*.py"))
    )


def test_application_insights_accepts_entra_id_only() -> None:
    template = main_template()
    insights = only(template, "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert "WorkspaceResourceId" in insights


def test_key_vault_uses_rbac_and_holds_the_admin_key_only_when_given() -> None:
    template = main_template()
    vault = only(template, "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    secrets = resources_of_type(template, "Microsoft.KeyVault/vaults/secrets")
    (secret,) = [
        secret for secret in secrets.values() if resource_body(secret)["name"] == "adminKeySecretName"
    ]
    condition = text(secret["config"]["condition"])
    assert "adminApiKey" in condition
    assert resource_body(secret)["properties"]["value"] == "adminApiKey"


# Each provider key: its @secure() template parameter -> the app setting PROVIDERS' key_setting names.
PROVIDER_KEYS = {
    "aimlapiApiKey": "AIMLAPI_API_KEY",
    "geminigenApiKey": "GEMINIGEN_API_KEY",
    "geminiApiKey": "GEMINI_API_KEY",
    "falKey": "FAL_KEY",
    "openaiCompatibleApiKey": "OPENAI_COMPATIBLE_API_KEY",
}


def is_secure(parameter: dict[str, Any]) -> bool:
    return any(decorator["type"] == "secure" for decorator in parameter["decorators"])


def only_if_given(condition: Any, parameter: str) -> bool:
    """`!empty(parameter)`, exactly."""
    expected: Any = {
        "operator": {
            "type": "not",
            "operands": {
                "bool_value": {"function": {"type": "empty", "parameters": {"item_to_test": parameter}}}
            },
        }
    }
    return bool(condition == expected)


def test_provider_keys_are_secure_parameters_that_default_to_nothing() -> None:
    parameters = main_template()["parameters"]
    for parameter in PROVIDER_KEYS:
        assert parameter in parameters, f"no parameter {parameter}"
        assert is_secure(parameters[parameter]), f"{parameter} is not @secure()"
        assert parameters[parameter]["type"] == "string"
        assert parameters[parameter]["default"] == ""
    # Not secrets: names of settings and JSON documents, printable in the deployment history.
    for parameter in ("modelCatalog", "providers", "storedProviderKeys"):
        assert not is_secure(parameters[parameter])
    assert parameters["modelCatalog"]["default"] == parameters["providers"]["default"] == ""


def test_each_given_provider_key_becomes_a_key_vault_secret_and_a_reference_setting() -> None:
    template = main_template()
    secret_names = template["variables"]["providerKeySecretNames"]["value"]
    assert set(secret_names) == set(PROVIDER_KEYS.values())
    secrets = {
        resource_body(secret)["properties"]["value"]: secret
        for secret in resources_of_type(template, "Microsoft.KeyVault/vaults/secrets").values()
    }
    settings = template_app_settings()
    for parameter, setting in PROVIDER_KEYS.items():
        # The secret: written only when the key is given, holding it, under the setting's secret name.
        secret = secrets[parameter]
        assert only_if_given(secret["config"]["condition"], parameter), (
            f"{parameter}: secret is unconditional"
        )
        body = resource_body(secret)
        assert body["parent"] == "vault"
        assert text(body["name"]) == text(
            {
                "operator": {
                    "type": "property_accessor",
                    "operands": {"operand_1": "providerKeySecretNames", "operand_2": setting},
                }
            }
        )
        # The setting: a Key Vault reference to that secret (like ADMIN_API_KEY), never the key.
        (value,) = settings[setting]
        assert value == (
            f"@Microsoft.KeyVault(VaultName=${{vault.name}};SecretName=${{providerKeySecretNames.{setting}}})"
        )
        assert parameter not in text(value)


def deployed_settings(**arguments: Any) -> set[str]:
    """The app settings a deployment with these parameter values sets."""
    return set(deployed_app_settings(**arguments))


def written_secrets(**arguments: Any) -> set[str]:
    """The Key Vault secret resources a deployment with these parameter values writes."""
    template = main_template()
    return {
        name
        for name, secret in resources_of_type(template, "Microsoft.KeyVault/vaults/secrets").items()
        if evaluate(secret["config"]["condition"], template, arguments)
    }


def test_the_evaluator_follows_conditions() -> None:
    assert "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" not in deployed_settings()
    assert "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" in deployed_settings(useDurableTaskScheduler=True)
    assert written_secrets() == set()
    assert written_secrets(adminApiKey="x") == {"adminKeySecret"}


def test_provider_key_settings_exist_only_for_keys_given_or_stored() -> None:
    """No key, no secret and no setting; a key given writes its secret and references it; a key
    stored by an earlier deployment (storedProviderKeys) keeps its reference without a new secret."""
    key_settings = set(PROVIDER_KEYS.values())
    assert not deployed_settings() & key_settings
    for parameter, setting in PROVIDER_KEYS.items():
        assert deployed_settings(**{parameter: "a-key"}) & key_settings == {setting}
        (secret,) = written_secrets(**{parameter: "a-key"})
        assert resource_body(main_template()["resources"][secret])["properties"]["value"] == parameter
        assert deployed_settings(storedProviderKeys=[setting]) & key_settings == {setting}
        assert written_secrets(storedProviderKeys=[setting]) == set()
    assert deployed_settings(aimlapiApiKey="a", storedProviderKeys=sorted(key_settings)) >= key_settings


def test_settings_wait_for_the_secrets_they_reference() -> None:
    template = main_template()
    (config,) = [
        resource
        for resource in resources_of_type(template, "Microsoft.Web/sites/config").values()
        if resource_body(resource)["name"] == "appsettings"
    ]
    secrets = set(resources_of_type(template, "Microsoft.KeyVault/vaults/secrets"))
    assert len(secrets) == 1 + len(PROVIDER_KEYS)
    assert secrets <= set(resource_body(config)["dependsOn"])


def test_no_output_reveals_a_key_or_where_it_is_kept() -> None:
    template = main_template()
    secure = {name for name, parameter in template["parameters"].items() if is_secure(parameter)}
    assert set(PROVIDER_KEYS) | {"adminApiKey"} <= secure
    hidden = secure | set(resources_of_type(template, "Microsoft.KeyVault/vaults/secrets"))
    hidden |= {"providerKeySecretNames", *PROVIDER_KEYS.values()}
    for name, output in template["outputs"].items():
        mentioned = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text(output["value"])))
        assert not mentioned & hidden, f"output {name} mentions {mentioned & hidden}"


# The legacy per-model parameters -> the setting each writes. Any of these settings makes the app
# derive its models on the Azure OpenAI account, so none may be written unless the operator asks.
LEGACY_PARAMETERS = {
    "soraDeployments": "SORA_DEPLOYMENTS",
    "allowedModels": "ALLOWED_MODELS",
    "allowedSeconds": "ALLOWED_SECONDS",
    "allowedSizes": "ALLOWED_SIZES",
    "modelOptions": "MODEL_OPTIONS",
    "pricing": "PRICING",
}
LEGACY_SETTINGS = set(LEGACY_PARAMETERS.values())
# A value each legacy parameter could be given (its type: an object or a comma-separated string).
LEGACY_VALUES: dict[str, Any] = {
    "soraDeployments": {"sora-2": "my-sora-2"},
    "allowedModels": "sora-2",
    "allowedSeconds": "4,8",
    "allowedSizes": "1280x720",
    "modelOptions": {"sora-2": {"sizes": ["1280x720"], "seconds": ["4"]}},
    "pricing": {"sora-2": {"1280x720": 0.1}},
}


def test_no_legacy_sora_settings_by_default() -> None:
    """Sora 2 is retired: a default deployment names no Sora model and writes no per-model setting
    (any of which would make the app offer the retired models)."""
    parameters = main_template()["parameters"]
    for parameter in LEGACY_PARAMETERS:
        assert parameter in parameters, f"{parameter} is gone: existing parameter files would fail"
        assert parameters[parameter]["default"] in ("", {}), f"{parameter} has a default"
    assert not LEGACY_SETTINGS & deployed_settings()
    for name, parameter in parameters.items():
        assert "sora-2" not in text(parameter.get("default", "")), (
            f"parameter {name} defaults to a Sora model"
        )


def test_each_legacy_setting_is_written_only_when_its_parameter_is_given() -> None:
    for parameter, setting in LEGACY_PARAMETERS.items():
        written = deployed_settings(**{parameter: LEGACY_VALUES[parameter]}) & LEGACY_SETTINGS
        assert written == {setting}, f"{parameter} given writes {written}"
    everything = deployed_settings(**LEGACY_VALUES)
    assert everything >= LEGACY_SETTINGS
    # MODEL_CATALOG replaces the per-model settings (the app refuses both at once).
    with_catalog = deployed_settings(modelCatalog='[{"id": "m"}]', **LEGACY_VALUES)
    assert "MODEL_CATALOG" in with_catalog
    assert not LEGACY_SETTINGS & with_catalog


def test_model_catalog_and_providers_are_set_only_when_given() -> None:
    default = deployed_settings()
    assert not {"MODEL_CATALOG", "PROVIDERS"} & default
    assert "MODEL_CATALOG" in deployed_settings(modelCatalog='[{"id": "m"}]')
    with_providers = deployed_settings(providers='{"a": {}}')
    assert "PROVIDERS" in with_providers
    assert not LEGACY_SETTINGS & with_providers


def default_provider_account(**arguments: Any) -> Any:
    template = main_template()
    return evaluate("defaultProviderAccount", template, arguments)


def test_given_providers_get_the_azure_openai_account_only_when_one_is_deployed() -> None:
    template = main_template()
    providers = template["variables"]["providerSettings"]["value"]["operator"]["operands"]["false_value"]
    assert "defaultProviderAccount" in text(providers["PROVIDERS"])
    # No account: nothing is added (an azure-openai entry without endpoint or role could only fail).
    assert default_provider_account() == {}
    # An account: it joins the given ones, with Entra ID (no key).
    added = default_provider_account(openAiAccountName="my-openai")
    assert set(added) == {"'azure-openai'"}
    account = added["'azure-openai'"]
    assert account["kind"] == "azure-openai"
    assert "key_setting" not in account
    assert account["base_url"] == "azureOpenAiEndpoint"


def test_role_assignments_for_the_identity() -> None:
    assignments = role_assignments()
    expected = {
        ("Storage Blob Data Owner", "storage"),
        ("Storage Queue Data Contributor", "storage"),
        ("Storage Table Data Contributor", "storage"),
        ("Monitoring Metrics Publisher", "appInsights"),
        ("Key Vault Secrets User", "vault"),
        ("Durable Task Data Contributor", "scheduler"),
        ("Cognitive Services OpenAI User", "account"),
    }
    by_id = {role_id: name for name, role_id in BUILT_IN_ROLES.items()}
    granted = {(by_id.get(role_id, role_id), scope) for role_id, scope, _ in assignments}
    assert expected <= granted
    assert {role_id for role_id, _, _ in assignments} <= set(BUILT_IN_ROLES.values()), "unknown role id"
    service_principal = [scope for _, scope, kind in assignments if kind == "ServicePrincipal"]
    assert len(service_principal) == len(expected)


def test_openai_account_is_an_existing_resource_reached_through_a_local_module() -> None:
    template = main_template()
    (module,) = template["modules"].values()
    config = module["config"]["config"]
    assert config["scope"]["function"]["type"] == "resource_group"
    assert config["params"]["accountName"] == "openAiAccountName"
    child = parse(INFRA_DIR / module["detail"]["path"])
    (account,) = resources_of_type(child, "Microsoft.CognitiveServices/accounts").values()
    assert account["existing"] is True
    assert "endpoint" in child["outputs"]
    (endpoint,) = template_app_settings()["AZURE_OPENAI_ENDPOINT"]
    assert endpoint == "azureOpenAiEndpoint"
    assert "openAiAccess" in text(template["variables"]["azureOpenAiEndpoint"]["value"])


def test_azure_openai_is_optional_and_nothing_of_it_is_deployed_without_an_account() -> None:
    """No account (the default): no role assignment on one, no AZURE_OPENAI_ENDPOINT (which the app
    takes as "there is an azure-openai account"), an empty endpoint output. With one: all of them."""
    template = main_template()
    parameters = template["parameters"]
    assert parameters["openAiAccountName"]["default"] == ""
    assert parameters["openAiEndpoint"]["default"] == ""
    (module,) = template["modules"].values()
    condition = module["config"]["condition"]
    assert evaluate(condition, template, {}) is False
    assert evaluate(condition, template, {"openAiAccountName": "my-openai"}) is True
    # The module holds the only Cognitive Services role assignment.
    assert not resources_of_type(template, "Microsoft.CognitiveServices/accounts")
    assert "AZURE_OPENAI_ENDPOINT" not in deployed_settings()
    assert "AZURE_OPENAI_ENDPOINT" not in deployed_settings(openAiEndpoint="https://proxy.example")
    assert "AZURE_OPENAI_ENDPOINT" in deployed_settings(openAiAccountName="my-openai")
    output = template["outputs"]["openAiEndpoint"]["value"]
    assert evaluate(output, template, {}) == ""
    assert evaluate(output, template, {"openAiEndpoint": "https://proxy.example"}) == ""
    assert evaluate(
        output, template, {"openAiAccountName": "a", "openAiEndpoint": "https://proxy.example"}
    ) == ("https://proxy.example")
    assert "openAiAccess" in text(evaluate(output, template, {"openAiAccountName": "a"}))


def test_durable_task_scheduler_is_optional_and_off_by_default() -> None:
    template = main_template()
    assert template["parameters"]["useDurableTaskScheduler"]["default"] is False
    for resource_type in ("Microsoft.DurableTask/schedulers", "Microsoft.DurableTask/schedulers/taskHubs"):
        (resource,) = resources_of_type(template, resource_type).values()
        assert resource["config"]["condition"] == "useDurableTaskScheduler"
    hub = resource_body(
        next(iter(resources_of_type(template, "Microsoft.DurableTask/schedulers/taskHubs").values()))
    )
    assert hub["name"] == template_app_settings()["TASK_HUB_NAME"][0] == "taskHubName"


def test_outputs_give_the_script_what_it_prints() -> None:
    outputs = main_template()["outputs"]
    assert {"functionAppName", "baseUrl", "healthUrl", "keyVaultName"} <= set(outputs)
    assert outputs["baseUrl"]["value"].endswith("/api/v1")
    script = (PROJECT_DIR / "scripts" / "deploy.sh").read_text(encoding="utf-8")
    for name in re.findall(r"\$\(output (\w+)\)", script):
        assert name in outputs, f"deploy.sh reads output {name}, which the template does not have"
