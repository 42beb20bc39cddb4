"""Azurite (the Azure Storage emulator from npm) as a child process of the local stack."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from devhost.net import LOOPBACK, free_port
from gateway.settings import AZURITE_ACCOUNT, AZURITE_KEY

log = logging.getLogger("devhost.azurite")
STANDARD_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
START_ATTEMPTS = 3  # starts on newly chosen ports when another process took one meanwhile
_PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def _die_with_parent() -> None:
    """Linux: have the kernel stop Azurite if the stack dies without cleaning up. The kernel
    means the thread that started it: start Azurite from a thread that outlives it."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` itself holds the listening socket on `port` (Linux: read from
    /proc); None where /proc cannot tell. Answering on the port is not enough: another process
    that bound it first answers there too, until our Azurite notices and exits."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    sockets = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()  # sl, local address:port (hex), remote, state, ..., inode
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == _TCP_LISTEN and local_port == port and fields[9] in sockets:
                    return True
    return False


def _serves(pid: int, port: int) -> bool:
    owned = _listens_on(pid, port)
    return _listening(port) if owned is None else owned


class _PortTaken(Exception):
    """Azurite exited because a port chosen for it was bound by someone else first."""


class Azurite:
    def __init__(
        self,
        project_dir: Path,
        data_dir: Path,
        *,
        in_memory: bool = False,
        tls: tuple[Path, Path] | None = None,
        oauth: bool = False,
        debug_log: bool = False,
    ) -> None:
        """`tls` (a PEM certificate and its key) makes every endpoint HTTPS; `oauth` has Azurite
        accept bearer tokens (`--oauth basic`, which needs HTTPS); `debug_log` has it write every
        request it handles to `debug_log_path`."""
        if oauth and tls is None:
            raise ValueError("Azurite accepts bearer tokens over HTTPS only: oauth needs tls")
        self._binary = project_dir / "node_modules" / ".bin" / "azurite"
        self._data_dir = data_dir
        self._in_memory = in_memory
        self._tls = tls
        self._oauth = oauth
        self._debug_log = debug_log
        self._process: subprocess.Popen[bytes] | None = None
        self._errors_from = 0  # where this start's output begins in azurite.err
        self.ports: dict[str, int] = {}

    @property
    def scheme(self) -> str:
        return "http" if self._tls is None else "https"

    @property
    def debug_log_path(self) -> Path:
        return self._data_dir / "azurite.debug.log"

    def endpoint(self, service: str) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.ports[service]}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        endpoints = ";".join(
            f"{service.capitalize()}Endpoint={self.endpoint(service)}" for service in self.ports
        )
        account = (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY}"
        )
        return f"{account};{endpoints};"

    def start(self, timeout: float = 60.0) -> None:
        """Start Azurite on free loopback ports (the standard ones when free) and wait until it
        listens on all three.

        Azurite binds its ports itself, so a port found free here can be taken by another process
        before Azurite binds it; Azurite then exits with EADDRINUSE, and is started again on
        ports chosen anew (a few times) rather than failing the stack.
        """
        if not self._binary.exists():
            raise FileNotFoundError(f"{self._binary} is missing; run `npm ci` (make setup) first")
        self._data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once(timeout)
                return
            except _PortTaken:
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(
                        f"Azurite lost its ports {START_ATTEMPTS} times: {self._error_tail()}"
                    ) from None
                log.warning("Azurite could not bind its ports (taken meanwhile); choosing others")

    def _start_once(self, timeout: float) -> None:
        self.ports = {service: free_port(port) for service, port in STANDARD_PORTS.items()}
        command = [
            str(self._binary),
            "--silent",
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
            # Azurite's telemetry otherwise phones home (and probes the Azure metadata address).
            "--disableTelemetry",
        ]
        for service, port in self.ports.items():
            command += [f"--{service}Host", LOOPBACK, f"--{service}Port", str(port)]
        command += ["--inMemoryPersistence"] if self._in_memory else ["--location", str(self._data_dir)]
        if self._tls is not None:
            command += ["--cert", str(self._tls[0]), "--key", str(self._tls[1])]
        if self._oauth:
            command += ["--oauth", "basic"]
        if self._debug_log:
            command += ["--debug", str(self.debug_log_path)]
        log.info("starting Azurite: blob %(blob)s, queue %(queue)s, table %(table)s", self.ports)
        errors = self._data_dir / "azurite.err"
        self._errors_from = errors.stat().st_size if errors.exists() else 0
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=open(errors, "ab"),  # noqa: SIM115 - lives as long as the child
            # prctl only, then exec: nothing in it can deadlock on a lock held by another thread.
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        try:
            for port in self.ports.values():
                # Its own socket: another process on a port it lost answers there too, until it
                # notices and exits (then _check_running starts it again on other ports).
                while not _serves(self._process.pid, port):
                    self._check_running()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"Azurite not listening on {port} after {timeout}s")
                    time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _check_running(self) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            return
        tail = self._error_tail()
        if "EADDRINUSE" in tail:
            raise _PortTaken(tail)
        raise RuntimeError(f"Azurite exited: {tail}")

    def _error_tail(self) -> str:
        """What this start of Azurite wrote to stderr (the file keeps earlier starts' too)."""
        path = self._data_dir / "azurite.err"
        if not path.exists():
            return "(no output)"
        with path.open("rb") as errors:
            errors.seek(self._errors_from)
            return errors.read().decode(errors="replace")[-2000:] or "(no output)"

    @property
    def pid(self) -> int | None:
        """The emulator's process id while it runs (tests stop it to take storage away)."""
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
