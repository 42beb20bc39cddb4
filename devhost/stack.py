"""The local stack: Azurite, the Sora simulator and the durable dev host, started and stopped together."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devhost.azurite import Azurite
from devhost.config import flag, load_values
from devhost.functions import index_app
from devhost.guards import BODY_LIMIT_SETTING, max_request_body_bytes
from devhost.host import DevHost
from devhost.net import LOOPBACK
from gateway.clients import close_clients, get_app_store
from sorasim import SimulatorConfig, SoraSimulator

log = logging.getLogger("devhost.stack")

DEV_APP_ID = "app_local_dev"


def point_providers_at(providers: str, simulator_url: str) -> str:
    """PROVIDERS with every loopback account moved to the simulator's address, path kept.

    The sample names the simulator at its default port; the stack (and tests) run it wherever a
    port is free. On the local stack the simulator is the only loopback upstream, so an account
    on loopback is an account on the simulator. Anything else is left as it is.
    """
    accounts = json.loads(providers)
    target = urlsplit(simulator_url)
    for account in accounts.values():
        parts = urlsplit(str(account.get("base_url", "")))
        if parts.hostname and _is_loopback(parts.hostname):
            account["base_url"] = urlunsplit((target.scheme, target.netloc, parts.path, "", ""))
    return json.dumps(accounts)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class LocalStack:
    project_dir: Path
    state_dir: Path
    values: dict[str, str] = field(default_factory=dict)
    azurite_in_memory: bool = False

    def __post_init__(self) -> None:
        self._azurite: Azurite | None = None
        self._simulator: SoraSimulator | None = None
        self._host: DevHost | None = None
        self.api_url = ""
        self.simulator_url: str | None = None

    @classmethod
    def from_project(cls, project_dir: Path) -> LocalStack:
        values = load_values(project_dir)
        state_dir = Path(values.get("DEVHOST_STATE_DIR") or project_dir / ".devhost")
        return cls(
            project_dir=project_dir,
            state_dir=state_dir,
            values=values,
            azurite_in_memory=flag(values, "AZURITE_IN_MEMORY", False),
        )

    def start(self) -> None:
        """Start everything; on any failure stop what already runs and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        # The app runs in this process and reads its settings from the environment, as on Azure,
        # where app settings are in place before the worker indexes the app. A function the
        # worker refuses, or a setting the app refuses while loading, stops it all here.
        os.environ.update(self.values)
        index_app(self.app_script)
        self._azurite = Azurite(
            self.project_dir, self.state_dir / "azurite", in_memory=self.azurite_in_memory
        )
        self._azurite.start()
        self.values["AzureWebJobsStorage"] = self._azurite.connection_string
        if flag(self.values, "DEVHOST_SIMULATOR", True):
            self._start_simulator()
        os.environ.update(self.values)  # now with the storage and upstream endpoints
        self._seed_dev_app()
        self._start_host()

    def _start_simulator(self) -> None:
        config = SimulatorConfig.from_env(self.values)
        preferred = int(self.values.get("SORA_SIM_PORT") or 0)
        try:
            # The simulator binds its port as it starts and holds it: no probe that another
            # process could overtake. 0 is the kernel's choice of a free port.
            simulator = SoraSimulator(config, host=LOOPBACK, port=preferred).start()
        except OSError:
            if not preferred:
                raise
            log.warning("port %s is taken; the simulator takes a free one", preferred)
            simulator = SoraSimulator(config, host=LOOPBACK, port=0).start()
        self._simulator = simulator
        self.simulator_url = simulator.url
        # The app's unchanged DefaultAzureCredential finds these, as it would on App Service,
        # and asks the simulator's managed-identity endpoint for its tokens.
        self.values.update(
            {
                "AZURE_OPENAI_ENDPOINT": simulator.url,
                "IDENTITY_ENDPOINT": simulator.token_endpoint,
                "IDENTITY_HEADER": simulator.identity_header,
                # Only the managed identity: never fall through to developer credentials or IMDS.
                "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            }
        )
        if self.values.get("PROVIDERS"):
            self.values["PROVIDERS"] = point_providers_at(self.values["PROVIDERS"], simulator.url)

    def _seed_dev_app(self) -> None:
        key = self.values.get("DEV_APP_KEY")
        if not key:
            return
        get_app_store().ensure_app(DEV_APP_ID, "Local development", "pro", key)

    def _start_host(self) -> None:
        port = int(self.values.get("DEVHOST_PORT") or 7071)
        host = DevHost(
            self.app_script,
            state_dir=self.state_dir / "durable",
            host=LOOPBACK,
            port=port,
            task_hub=self.values.get("TASK_HUB_NAME") or "devhost",
            activity_latency=float(self.values.get("DEVHOST_ACTIVITY_LATENCY_MS") or 0) / 1000,
            master_key=self.values.get("DEVHOST_MASTER_KEY") or None,
            max_request_body_bytes=max_request_body_bytes(self._host_settings()),
        )
        host.start()
        self._host = host
        self.api_url = host.url

    def _host_settings(self) -> dict[str, str]:
        """Settings the Functions host itself reads from the environment, such as
        FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, from local.settings.json or the process environment."""
        # The process environment wins, as with `func start`.
        return {
            BODY_LIMIT_SETTING: os.environ.get(BODY_LIMIT_SETTING) or self.values.get(BODY_LIMIT_SETTING, "")
        }

    def stop(self) -> None:
        """Stop everything that runs, newest first; safe to call more than once."""
        if self._host is not None:
            self._host.stop()
        # The app runs in this process: its pooled connections go before the servers do.
        close_clients()
        if self._simulator is not None:
            self._simulator.stop()
        if self._azurite is not None:
            self._azurite.stop()
        self._host = self._simulator = self._azurite = None

    @property
    def app_script(self) -> str:
        """The app's script, named by the setting Azure's worker reads (function_app.py by default)."""
        return (
            os.environ.get("PYTHON_SCRIPT_FILE_NAME")
            or self.values.get("PYTHON_SCRIPT_FILE_NAME")
            or "function_app.py"
        )

    def describe(self) -> str:
        assert self._azurite is not None
        lines = [
            f"API            {self.api_url}/api  (health: {self.api_url}/api/health)",
            f"Azurite        blob :{self._azurite.ports['blob']}  queue :{self._azurite.ports['queue']}"
            f"  table :{self._azurite.ports['table']}  pid {self._azurite.pid}",
            f"Sora upstream  {self.simulator_url or self.values.get('AZURE_OPENAI_ENDPOINT')}"
            + ("  (simulator)" if self.simulator_url else ""),
            f"State          {self.state_dir}",
        ]
        if self._host is not None:
            lines.append(
                f"Host key       {self._host.master_key}  (master key: x-functions-key header or ?code=,"
                " e.g. for /runtime/webhooks/durabletask)"
            )
            lines.append(f"Durable RPC    {self._host.rpc_url}/durabletask/  (loopback, no key)")
        if self.values.get("DEV_APP_KEY"):
            lines.append(f"Dev app key    {self.values['DEV_APP_KEY']}  (app {DEV_APP_ID}, plan pro)")
        return "\n".join(lines)
