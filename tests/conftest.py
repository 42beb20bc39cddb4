"""Fixtures that start real components on free loopback ports and stop them afterwards."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from devhost.azurite import Azurite
from devhost.config import load_values
from devhost.management import client_binding
from devhost.net import wait_for_http
from devhost.stack import point_providers_at
from gateway.blobs import VideoAssets, blob_service
from gateway.jobs import JobStore
from gateway.settings import AZURITE_ACCOUNT, AZURITE_KEY
from gateway.tables import Tables, table_service
from sorasim import SoraSimulator
from tests.gateway_client import GatewayClient
from tests.sim_records import sim_created

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEV_APP_KEY = "sgw_test_dev_app_key_" + "x" * 24
ADMIN_KEY = "test-admin-key"
# The dev host's master key in every stack under test: /runtime/webhooks/durabletask needs it.
HOST_KEY = "test-host-master-key-" + "y" * 24
DURABLE_WEBHOOK = "/runtime/webhooks/durabletask"
ALLOWED_ORIGIN = "http://127.0.0.1:5173"


@dataclass
class RunningStack:
    """A `python -m devhost` process tree under test."""

    api: str  # http://127.0.0.1:PORT/api
    simulator: str
    dev_key: str
    admin_key: str
    state_dir: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def storage_connection_string(self) -> str:
        """The stack's Azurite, read from the ports it printed when it started."""
        found = re.findall(r"Azurite +blob :(\d+) +queue :(\d+) +table :(\d+)", self.log_path.read_text())
        blob, queue, table = found[-1]
        account = f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY}"
        endpoints = {"Blob": blob, "Queue": queue, "Table": table}
        return account + "".join(
            f";{name}Endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}" for name, port in endpoints.items()
        )

    @property
    def origin(self) -> str:
        """The dev host's origin, http://127.0.0.1:PORT (the api without /api)."""
        return self.api.removesuffix("/api")

    @property
    def host_key(self) -> str:
        """The host's master key, which authorizes the durable management API (as in Azure)."""
        return self.env["DEVHOST_MASTER_KEY"]

    def management_get(self, path: str, **params: str) -> requests.Response:
        """GET /runtime/webhooks/durabletask/{path} with the host key, e.g. `instances/{id}`."""
        return requests.get(
            f"{self.origin}{DURABLE_WEBHOOK}/{path.lstrip('/')}",
            params=params,
            headers={"x-functions-key": self.host_key},
            timeout=10,
        )

    def orchestration_status(self, instance_id: str) -> dict[str, Any]:
        """The durable status of one instance, as the management API answers it."""
        response = self.management_get(f"instances/{instance_id}")
        response.raise_for_status()
        return dict(response.json())

    @property
    def durable_rpc_url(self) -> str:
        """The stack's local durable RPC endpoint (no key, loopback), read from what it printed."""
        found = re.findall(r"Durable RPC +(http://\S+)", self.log_path.read_text())
        return str(found[-1])

    def durable_client_binding(self) -> str:
        """The durableClient binding string the host gives a function, for a client in a test:
        `df.DurableOrchestrationClient(stack.durable_client_binding())`."""
        return client_binding(
            self.origin,
            self.durable_rpc_url.removesuffix("/").removesuffix("/durabletask"),
            self.env["TASK_HUB_NAME"],
            # The master key authorizes the management URLs as the extension's system key does.
            self.host_key,
        )

    def upstream_jobs_for(self, marker: str) -> int:
        """Upstream jobs created with `marker` in their prompt (tests share one simulator)."""
        return int(sim_created(self.simulator, marker)["jobs_created"])

    def upstream_options_for(self, marker: str) -> list[dict[str, Any]]:
        """The provider-native option fields each upstream create with `marker` carried."""
        return list(sim_created(self.simulator, marker)["options"])

    def stored_files(self, prefix: str) -> list[str]:
        """The names of the blobs under `prefix` in the stack's videos container, sorted
        (none when the container was never made: the first stored asset creates it)."""
        container = BlobServiceClient.from_connection_string(
            self.storage_connection_string
        ).get_container_client("videos")
        if not container.exists():
            return []
        return sorted(blob.name for blob in container.list_blobs(name_starts_with=prefix))

    @property
    def client(self) -> GatewayClient:
        return GatewayClient(self.api, self.admin_key)

    @contextlib.contextmanager
    def sim_configured(self, **knobs: float | str) -> Iterator[None]:
        """The shared simulator with `knobs` changed for the block, then set back to what they
        were before it (read from the simulator, not assumed)."""
        url = f"{self.simulator}/_sim/config"
        current = requests.get(url, timeout=5)
        current.raise_for_status()
        before = {name: current.json()[name] for name in knobs}
        requests.patch(url, json=knobs, timeout=5).raise_for_status()
        try:
            yield
        finally:
            requests.patch(url, json=before, timeout=5).raise_for_status()

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.dev_key}"}

    def sim_stats(self) -> dict[str, int]:
        response = requests.get(f"{self.simulator}/_sim/stats", timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def start(self) -> None:
        """Start the stack and learn where it listens from what it prints when ready.

        The dev host and the simulator bind their own ports (0 in stack_env: the kernel picks a
        free one and it is theirs from then on), so no port is probed free and then lost to
        another process before it is bound. A restart binds the same ones again."""
        printed_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devhost"],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            banner = self._wait_for_banner(printed_from, timeout=120)
            api = re.search(r"^API +(http://\S+/api)", banner, re.M)
            simulator = re.search(r"^Sora upstream +(http://\S+) +\(simulator\)", banner, re.M)
            assert api is not None, banner
            self.api = api.group(1)
            self.env["DEVHOST_PORT"] = self.api.removesuffix("/api").rsplit(":", 1)[1]
            if simulator is not None:
                self.simulator = simulator.group(1)
                self.env["SORA_SIM_PORT"] = self.simulator.rsplit(":", 1)[1]
            wait_for_http(f"{self.api}/health", timeout=60)
        except (TimeoutError, RuntimeError, AssertionError):
            self.stop()
            raise RuntimeError("local stack did not become healthy:\n" + self.log_tail()) from None

    def _wait_for_banner(self, printed_from: int, timeout: float) -> str:
        """The "Local stack ready" lines this start printed (devhost/__main__.py)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as printed:
                printed.seek(printed_from)
                text = printed.read().decode(errors="replace")
            ready = text.find("Local stack ready:")
            if ready >= 0 and "Ctrl-C stops everything." in text[ready:]:
                return text[ready:]
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError("the stack exited while starting")
            time.sleep(0.1)
        raise TimeoutError("the stack did not print that it is ready")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def unfinished_jobs(self) -> list[str]:
        """Ids of the stack's jobs whose record is not final yet (queued or in progress)."""
        service = TableServiceClient.from_connection_string(self.storage_connection_string)
        prefix = load_values(PROJECT_DIR, self.env).get("TABLE_PREFIX", "")  # as the stack reads it
        jobs = JobStore(Tables(service, prefix=prefix))
        return sorted(job.id for job in jobs.unfinished_jobs_created_before(time.time() + 60))

    def stop_after_every_job_ends(self, timeout: float = 120.0) -> None:
        """Stop once every job has a final record; fail if one never gets there.

        No job may be left unfinished: whatever a test did to it (cancel, outage, deadline), its
        orchestration must bring its record to `completed` or `failed` on its own.
        """
        deadline = time.monotonic() + timeout
        try:
            unfinished = self.unfinished_jobs()
            while unfinished and time.monotonic() < deadline:
                time.sleep(1.0)
                unfinished = self.unfinished_jobs()
        finally:  # a failing read must not leave the stack running
            self.stop()
        assert unfinished == [], f"jobs left unfinished after {timeout:.0f} s: {unfinished}"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def stack_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AZURE_", "IDENTITY_"))}
    env.update(
        {
            # Any free port, bound by the stack itself (RunningStack.start reads which).
            "DEVHOST_PORT": "0",
            "SORA_SIM_PORT": "0",
            "DEVHOST_STATE_DIR": str(state_dir),
            "DEV_APP_KEY": DEV_APP_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "DEVHOST_MASTER_KEY": HOST_KEY,
            "TASK_HUB_NAME": "TestHub",
            "SORA_SIM_JOB_SECONDS": "3",
            "SORA_SIM_FAULT_RATE": "0",
            "SORA_SIM_CREATES_PER_MINUTE": "0",
            "POLL_MIN_SECONDS": "0.5",
            "POLL_MAX_SECONDS": "3",
            "UPSTREAM_CREATES_PER_MINUTE": "0",
            "WEBHOOK_RETRY_SECONDS": "0.5,1,1,1,1",
            "PYTHONUNBUFFERED": "1",
            # Activities and their results cross Storage queues in Azure: a cancel can land while
            # an activity runs. Every stack under test has that latency, so such races show up.
            "DEVHOST_ACTIVITY_LATENCY_MS": "250",
            # One other web origin may call the API, so CORS answers can be checked (a header
            # value only: nothing is ever sent there).
            "CORS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        }
    )
    env.update(overrides)
    return env


def launch_stack(state_dir: Path, simulator: SoraSimulator | None = None, **overrides: str) -> RunningStack:
    """Start `python -m devhost`; with `simulator`, use that one (it outlives stack restarts)."""
    env = stack_env(state_dir, **overrides)
    if simulator is not None:
        env.update(
            {
                "DEVHOST_SIMULATOR": "false",
                "AZURE_OPENAI_ENDPOINT": simulator.url,
                "IDENTITY_ENDPOINT": simulator.token_endpoint,
                "IDENTITY_HEADER": simulator.identity_header,
                "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            }
        )
    # An upstream of the test's own (a simulator, or a proxy before one): the sample's loopback
    # provider accounts go there, as the stack points them at a simulator it starts itself.
    upstream = simulator.url if simulator is not None else overrides.get("AZURE_OPENAI_ENDPOINT")
    providers = load_values(PROJECT_DIR, env).get("PROVIDERS")
    if upstream and providers and "PROVIDERS" not in overrides:
        env["PROVIDERS"] = point_providers_at(providers, upstream)
    stack = RunningStack(
        api="",  # known once it has started
        simulator=simulator.url if simulator is not None else "",
        dev_key=env["DEV_APP_KEY"],
        admin_key=env["ADMIN_API_KEY"],
        state_dir=state_dir,
        log_path=state_dir / "stack.log",
        env=env,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    stack.start()
    return stack


@contextlib.contextmanager
def stack_until_jobs_end(
    state_dir: Path, simulator: SoraSimulator | None = None, **overrides: str
) -> Iterator[RunningStack]:
    """A stack for a fixture: at the end it waits for every job to end, then stops, and fails
    if one never did (see RunningStack.stop_after_every_job_ends)."""
    running = launch_stack(state_dir, simulator, **overrides)
    try:
        yield running
    except BaseException:
        running.stop()
        raise
    running.stop_after_every_job_ends()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One local stack shared by the tests that only read or add their own data."""
    with stack_until_jobs_end(tmp_path_factory.mktemp("stack")) as running:
        yield running


@contextlib.contextmanager
def running_azurite(state_dir: Path, **options: Any) -> Iterator[Azurite]:
    """An Azurite of its own (in memory), stopped on leaving; `options` as Azurite takes them
    (tls, oauth, debug_log)."""
    emulator = Azurite(PROJECT_DIR, state_dir, in_memory=True, **options)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A private Azurite (in memory) for tests that use storage without the whole stack; or, when
    SHARED_AZURITE_PORTS names one already running (blob,queue,table), that one: `make mutation`
    runs the suite once per mutant and starts Azurite only once (tests keep to their own prefixes)."""
    shared = os.environ.get("SHARED_AZURITE_PORTS")
    if shared:
        emulator = Azurite(PROJECT_DIR, tmp_path_factory.mktemp("azurite"), in_memory=True)
        emulator.ports = dict(zip(("blob", "queue", "table"), map(int, shared.split(",")), strict=True))
        yield emulator
        return
    with running_azurite(tmp_path_factory.mktemp("azurite")) as emulator:
        yield emulator


@pytest.fixture
def tables(azurite: Azurite) -> Tables:
    """Tables under a prefix of their own, so tests never see each other's rows; built through
    the gateway's storage seam (timeouts, outages as StorageUnavailable), as the app builds them."""
    service = table_service(azurite.connection_string)
    return Tables(service, prefix="t" + uuid.uuid4().hex[:10])


@pytest.fixture
def video_assets(azurite: Azurite) -> VideoAssets:
    return VideoAssets(blob_service(azurite.connection_string), "videos-" + uuid.uuid4().hex[:10])


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail any test whose code tries to connect beyond loopback (e.g. a credential probing IMDS)."""
    attempts: list[object] = []
    original_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> None:
        internet = self.family in (socket.AF_INET, socket.AF_INET6)
        if internet and not ipaddress.ip_address(address[0]).is_loopback:
            attempts.append(address)
            raise ConnectionRefusedError(f"tests must stay on loopback, not {address!r}")
        original_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield attempts
    assert attempts == [], f"connections beyond loopback were attempted: {attempts}"
