"""The host keys that authorize the host's own endpoints (/runtime/webhooks/...), as the Functions host keeps them.

Facts from Azure/azure-functions-host (AuthenticationLevelHandler, AuthorizationOptionsExtensions,
DefaultScriptWebHookProvider) that this imitates:

- A key arrives in the `x-functions-key` header or the `code` query parameter; the header wins.
- `runtime/webhooks/{extension}` requires the system key named `{extension}_extension` or the
  master key (an admin-level key passes every check); anything else is answered 401.
- The URL the host gives an extension for its webhook carries that system key as `?code=`, so
  the extension's management URLs (statusQueryGetUri, ...) carry it too.
- The host generates missing keys on first start and keeps them (in Azure in blob storage, with
  `AzureWebJobsSecretStorageType=files` in `secrets/host.json`), so they outlive restarts.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
DURABLE_EXTENSION = "durabletask"
SECRETS_FILE = Path("secrets") / "host.json"


def extension_key_name(extension: str) -> str:
    """The system key an extension's webhook requires, named by the host's convention."""
    return f"{extension}_extension".lower()


def generate_key() -> str:
    # The host's keys are 40 random bytes, URL-safe base64; the length only has to be unguessable.
    return base64.urlsafe_b64encode(secrets.token_bytes(40)).decode().rstrip("=")


@dataclass(frozen=True)
class HostKeys:
    master: str
    system: Mapping[str, str]

    @classmethod
    def load_or_create(cls, state_dir: Path, master_key: str | None = None) -> HostKeys:
        """The keys kept under `state_dir`, created on first use; `master_key`, when given, is
        the master key (a configured one wins over the kept one, and is not written down)."""
        path = state_dir / SECRETS_FILE
        kept: dict[str, object] = {}
        if path.is_file():
            kept = json.loads(path.read_text(encoding="utf-8"))
        master = str(kept.get("masterKey") or "")
        raw_system = kept.get("systemKeys")
        system = {str(k): str(v) for k, v in raw_system.items()} if isinstance(raw_system, dict) else {}
        durable_name = extension_key_name(DURABLE_EXTENSION)
        if not master or durable_name not in system:
            master = master or generate_key()
            system.setdefault(durable_name, generate_key())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps({"masterKey": master, "systemKeys": system}, indent=2), encoding="utf-8"
            )
            path.chmod(0o600)
        return cls(master=master_key or master, system=system)

    def extension_key(self, extension: str) -> str:
        return self.system[extension_key_name(extension)]

    def authorizes_extension(self, presented: str | None, extension: str) -> bool:
        """Whether `presented` may call `extension`'s webhook: its system key or the master key."""
        if not presented:
            return False
        wanted = [self.master, self.system.get(extension_key_name(extension), "")]
        # Compare every candidate in constant time, so timing tells nothing about which is close.
        matches = [hmac.compare_digest(presented.encode(), key.encode()) for key in wanted if key]
        return any(matches)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request presents: the header when there is one (even empty), else the query
    parameter, like the host."""
    if KEY_HEADER in headers:
        return headers[KEY_HEADER]
    return query.get(KEY_QUERY)
