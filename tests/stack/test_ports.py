"""Ports of the local stack: each one held from the moment it is chosen, or its loss survived.

A port probed free and released is free only until someone else binds it (another test's server,
or any outgoing connection, which takes its local port from the same ephemeral range). The dev
host and the simulator bind the port they serve on themselves (port 0: the kernel's choice, held
from then on); Azurite binds its own, so a lost race is detected and Azurite started again.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devhost import azurite as azurite_module
from devhost.azurite import Azurite, _listens_on
from devhost.net import LOOPBACK
from tests.conftest import PROJECT_DIR


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that another process holds (here: this test), listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_azurite_that_loses_a_port_race_starts_again_on_other_ports(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: the race itself (a port taken between the probe and Azurite's bind) cannot be
    timed from here, so the probe is made to hand out a port that is already held, once; what
    follows is real: Azurite fails to bind it, exits, and the start goes on with new ports."""
    real_free_port = azurite_module.free_port
    handed_out: list[int] = []

    def probe_once_wrong(preferred: int | None = None) -> int:
        port = taken_port if not handed_out else real_free_port(preferred)
        handed_out.append(port)
        return port

    monkeypatch.setattr(azurite_module, "free_port", probe_once_wrong)
    emulator = Azurite(PROJECT_DIR, tmp_path, in_memory=True)
    emulator.start()
    try:
        assert handed_out[0] == taken_port
        assert taken_port not in emulator.ports.values()
        assert len(handed_out) == 6  # three ports, chosen twice
        # The Azurite that runs is the second one, and it serves.
        service = TableServiceClient.from_connection_string(emulator.connection_string)
        service.create_table("portrace")
        assert [table.name for table in service.list_tables()] == ["portrace"]
        # The first attempt's refusal is what was recognised (and it said why).
        assert "EADDRINUSE" in (tmp_path / "azurite.err").read_text(errors="replace")
    finally:
        emulator.stop()


def test_azurite_gives_up_after_its_attempts_and_says_why(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected as above, on every attempt: the start must end with an error naming the cause,
    never a stack that believes a port someone else answers on is Azurite's."""
    monkeypatch.setattr(azurite_module, "free_port", lambda preferred=None: taken_port)
    emulator = Azurite(PROJECT_DIR, tmp_path, in_memory=True)
    with pytest.raises(RuntimeError, match="lost its ports 3 times") as refused:
        emulator.start()
    assert "EADDRINUSE" in str(refused.value)
    assert emulator.pid is None  # nothing left running


def test_two_azurites_started_at_once_on_the_same_preferred_ports_never_share_one(tmp_path: Path) -> None:
    """What two test sessions on one machine did: both stacks prefer 10000-10002 and start
    together. The loser's Azurite exits only a moment after the winner answers on the ports;
    answering is not enough, each start must end with ports its own process listens on.

    Each start runs on a thread of its own that lives until the end: Azurite is told to stop
    when the thread that started it ends (PR_SET_PDEATHSIG follows the thread, not the process)."""
    emulators = [Azurite(PROJECT_DIR, tmp_path / name, in_memory=True) for name in ("a", "b")]
    started = threading.Barrier(3)
    done = threading.Event()
    failures: list[BaseException] = []

    def start(emulator: Azurite) -> None:
        try:
            emulator.start()
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        started.wait(timeout=120)
        done.wait(timeout=300)
        emulator.stop()

    threads = [threading.Thread(target=start, args=(emulator,)) for emulator in emulators]
    for thread in threads:
        thread.start()
    try:
        started.wait(timeout=120)
        assert failures == []
        first, second = (set(emulator.ports.values()) for emulator in emulators)
        assert not first & second
        for emulator in emulators:
            assert emulator.pid is not None
            assert all(_listens_on(emulator.pid, port) for port in emulator.ports.values())
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
