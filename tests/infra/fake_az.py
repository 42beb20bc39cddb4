"""A stand-in for the Azure CLI, so deploy.sh and teardown.sh run here without Azure.

Each call is appended to $FAKE_AZ_STATE/calls.jsonl (its argv, the parameters files it was handed
and their modes, and which provider key variables its environment held); state between calls (the
vault's secrets: the admin key and provider keys) lives in $FAKE_AZ_STATE/state.json. Anything
unexpected exits 99, so the test sees which command the script should not have run.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ["FAKE_AZ_STATE"])
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
OPENAI_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/my-sora"
VAULT_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-gw/providers/Microsoft.KeyVault/vaults/kv-test"
OUTPUTS = {
    "functionAppName": "sora-gw-test",
    "baseUrl": "https://sora-gw-test.azurewebsites.net/api/v1",
    "healthUrl": "https://sora-gw-test.azurewebsites.net/api/health",
    "keyVaultName": "kv-test",
}
# Template parameter of each provider key -> its Key Vault secret (as infra/main.bicep names them).
PROVIDER_KEY_SECRETS = {
    "aimlapiApiKey": "aimlapi-api-key",
    "geminigenApiKey": "geminigen-api-key",
    "geminiApiKey": "gemini-api-key",
    "falKey": "fal-api-key",
    "openaiCompatibleApiKey": "openai-compatible-api-key",
}
PROVIDER_KEY_VARIABLES = (
    "AIMLAPI_API_KEY",
    "GEMINIGEN_API_KEY",
    "GEMINI_API_KEY",
    "FAL_KEY",
    "OPENAI_COMPATIBLE_API_KEY",
)


def load() -> dict[str, Any]:
    path = STATE_DIR / "state.json"
    state: dict[str, Any] = {"deployed": False, "secret": None, "secrets": {}}
    if path.exists():
        state.update(json.loads(path.read_text()))
    return state


def save(state: dict[str, Any]) -> None:
    (STATE_DIR / "state.json").write_text(json.dumps(state))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


def record(entry: dict[str, Any]) -> None:
    with open(STATE_DIR / "calls.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def deployment_parameters(args: list[str], entry: dict[str, Any]) -> dict[str, Any]:
    """Every --parameters value, reading @files (and noting their paths and permissions)."""
    found: dict[str, Any] = {}
    values: list[str] = []
    collecting = False
    for arg in args:
        if arg == "--parameters":
            collecting = True
            continue
        if arg.startswith("--"):
            collecting = False
        if collecting:
            values.append(arg)
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            entry["parameter_file_mode"] = stat.S_IMODE(path.stat().st_mode)
            entry.setdefault("parameter_files", []).append(str(path))
            content = json.loads(path.read_text())
            found.update({key: item["value"] for key, item in content["parameters"].items()})
        else:
            key, _, item = value.partition("=")
            found[key] = item
    return found


def main(args: list[str]) -> int:
    state = load()
    entry: dict[str, Any] = {
        "argv": args,
        "key_variables": sorted(name for name in PROVIDER_KEY_VARIABLES if name in os.environ),
    }
    out = ""
    code = 0
    command = " ".join(arg for arg in args[:3] if not arg.startswith("-"))
    if command.startswith("account show"):
        query = option(args, "--query")
        out = {"user.type": "user", "user.name": "operator@example.com", None: ""}.get(query, "")
    elif command.startswith("ad signed-in-user show"):
        out = "00000000-0000-0000-0000-0000000000aa"
    elif command.startswith(("cognitiveservices account list", "cognitiveservices account show")):
        out = OPENAI_ID
    elif command.startswith(("group create", "provider register", "functionapp restart", "keyvault purge")):
        pass
    elif command.startswith("group exists"):
        out = "true" if state["deployed"] else "false"
    elif command.startswith("group delete"):
        state["deployed"] = False
        state["secrets"] = {}
    elif command.startswith("keyvault list"):
        query = option(args, "--query") or ""
        if state["deployed"]:
            out = VAULT_ID if query.endswith(".id | [0]") else "kv-test"
    elif command.startswith("resource show"):
        ids = option(args, "--ids") or ""
        if (ids == f"{VAULT_ID}/secrets/admin-api-key" and state["secret"]) or (
            state["deployed"] and ids.removeprefix(f"{VAULT_ID}/secrets/") in state["secrets"]
        ):
            out = "{}"
        else:
            sys.stderr.write("(ResourceNotFound) not found\n")
            code = 3
    elif command.startswith("deployment group create") or command.startswith("deployment group what-if"):
        parameters = deployment_parameters(args, entry)
        entry["parameters"] = parameters
        if command.startswith("deployment group create"):
            state["deployed"] = True
            if parameters.get("adminApiKey"):
                state["secret"] = parameters["adminApiKey"]
            for parameter, secret in PROVIDER_KEY_SECRETS.items():
                if parameters.get(parameter):
                    state["secrets"][secret] = parameters[parameter]
    elif command.startswith("deployment group show"):
        query = option(args, "--query") or ""
        out = OUTPUTS[query.split(".")[2]]
    elif command.startswith("functionapp deployment source"):
        with zipfile.ZipFile(option(args, "--src") or "") as archive:
            entry["zip"] = sorted(archive.namelist())
    elif command.startswith("keyvault secret show"):
        out = state["secret"] or ""
    elif command.startswith("identity list"):
        out = "11111111-1111-1111-1111-111111111111"
    elif command.startswith("role assignment list"):
        out = f"{OPENAI_ID}/providers/Microsoft.Authorization/roleAssignments/ra-1\n/subscriptions/x/ra-2"
    elif command.startswith("role assignment delete"):
        pass
    else:
        sys.stderr.write(f"fake az: unexpected command {args}\n")
        code = 99
    record(entry)
    save(state)
    if out and "--output" in args and option(args, "--output") == "none":
        out = ""
    if out:
        print(out)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
