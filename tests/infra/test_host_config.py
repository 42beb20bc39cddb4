"""host.json and local.settings.sample.json hold what the Functions host needs, locally and in Azure."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from typing import Any

from tests.infra.bicep import PROJECT_DIR, main_template

HOST_JSON = PROJECT_DIR / "host.json"
SAMPLE = PROJECT_DIR / "local.settings.sample.json"
# Azure Storage task hub names: letters and digits, starting with a letter, 3 to 45 characters.
TASK_HUB = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")
# "[4.*, 5.0.0)" or "[4.0.0, 5.0.0)": the bundle range Flex Consumption needs, or a later one.
BUNDLE_RANGE = re.compile(r"\[(\d+)(?:\.(?:\d+|\*))*,\s*(\d+)\.0\.0\)")
SETTING_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


def host() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    return data


def sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return data


def test_host_json_uses_the_v2_schema_and_a_supported_extension_bundle() -> None:
    config = host()
    assert config["version"] == "2.0"
    bundle = config["extensionBundle"]
    assert bundle["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    match = BUNDLE_RANGE.fullmatch(bundle["version"].replace(" ", ""))
    assert match, f"not a version range: {bundle['version']}"
    low, high = int(match.group(1)), int(match.group(2))
    assert low >= 4, "Flex Consumption and the v2 Python model need extension bundle 4.x or later"
    assert high == low + 1, "the range should stay within one major version"


def test_host_json_names_a_durable_task_hub_from_a_setting() -> None:
    durable = host()["extensions"]["durableTask"]
    hub = durable["hubName"]
    reference = SETTING_REFERENCE.fullmatch(hub)
    assert reference, "the task hub should come from a setting, so local and Azure hubs differ"
    setting = reference.group(1)
    local = sample()["Values"][setting]
    assert TASK_HUB.fullmatch(local), f"{setting}={local!r} is not a valid task hub name"
    template = main_template()
    default = template["parameters"]["taskHubName"]["default"]
    assert TASK_HUB.fullmatch(default)
    assert default != local, "Azure and local runs should not share a task hub name"
    # The Durable Task Scheduler switch is an app-setting override; host.json keeps Azure Storage.
    assert "storageProvider" not in durable or durable["storageProvider"].get("type") in (
        None,
        "AzureStorage",
    )


def test_routes_are_served_under_api() -> None:
    # deploy.sh and the template's outputs print https://<app>/api/v1 and /api/health.
    assert host()["extensions"]["http"]["routePrefix"] == "api"


def test_every_setting_host_json_references_is_in_the_local_sample() -> None:
    values = sample()["Values"]
    for name in SETTING_REFERENCE.findall(HOST_JSON.read_text(encoding="utf-8")):
        assert values.get(name), f"host.json uses %{name}% but the sample does not set it"


def test_local_sample_runs_the_python_worker_against_azurite() -> None:
    data = sample()
    assert data["IsEncrypted"] is False
    values = data["Values"]
    assert all(isinstance(value, str) for value in values.values()), "Core Tools reads string values only"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"


def test_the_template_python_version_satisfies_the_project() -> None:
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    minimum = tuple(int(part) for part in re.findall(r"\d+", project["requires-python"])[:2])
    parameter = main_template()["parameters"]["pythonVersion"]
    allowed = next(d["argument"] for d in parameter["decorators"] if d["type"] == "allowed")
    for version in allowed:
        assert tuple(int(part) for part in version.split(".")) >= minimum


def test_the_runtime_azure_runs_is_pinned_and_is_the_one_the_dev_host_runs() -> None:
    """Python 3.13+ apps run on the azure-functions-runtime release named in requirements.txt
    (runtime version control); the local stack must load functions with that same release."""
    pins = dict(
        line.split("==", 1)
        for line in (PROJECT_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert "azure-functions-runtime" in pins, "pin the runtime so Azure runs the version tested here"
    assert importlib.metadata.version("azure-functions-runtime") == pins["azure-functions-runtime"].strip()
