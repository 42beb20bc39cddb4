"""Taking a running stack's storage away for real, and giving it back.

`paused`: the Azurite process is stopped (SIGSTOP): connections are accepted, nothing answers, as
with storage that hangs. `stopped`: Azurite exits (SIGTERM, saving its data) and is started again
afterwards with the same command line (ports and data), as after an outage ends. A module that
stops one keeps the restarted process in a list its own module-scoped fixture ends after its
stack (see `restarted_azurites`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import RunningStack
from tests.gateway.test_storage_seam import pid_listening_on

Restarted = list[subprocess.Popen[bytes]]


def table_port(stack: RunningStack) -> int:
    return int(re.findall(r"TableEndpoint=http://127\.0\.0\.1:(\d+)/", stack.storage_connection_string)[0])


def azurite_pid(stack: RunningStack) -> int:
    return pid_listening_on(table_port(stack))


def restarted_azurites() -> Iterator[Restarted]:
    """The body of a module-scoped fixture: Azurites started again by `stopped`, ended last."""
    started: Restarted = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def stopped(stack: RunningStack, restarted: Restarted) -> Iterator[None]:
    """Storage down for the block; up again on the same ports and data afterwards, listening
    before anything reads storage (the stack's end reads its jobs)."""
    port = table_port(stack)
    pid = pid_listening_on(port)
    command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until_gone(pid)
        yield
    finally:
        restarted.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until_listening(port)


def wait_until_gone(pid: int, timeout: float = 30.0) -> None:
    """Until `pid` has exited (the stack reaps it later; a zombie holds no port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"Azurite {pid} did not stop within {timeout} s")


def wait_until_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"Azurite did not listen on {port} again within {timeout} s")
