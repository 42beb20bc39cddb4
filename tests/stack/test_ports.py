"""Ports of the local stack: each one held from the moment it is chosen, or its loss survived.

A port probed free and released is free only until someone else binds it (another test's server,
or any outgoing connection, which takes its local port from the same ephemeral range). The dev
host and the simulator bind the port they serve on themselves (port 0: the kernel's choice, held
from then on); Azurite binds its own, so a lost race is detected and Azurite started again.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devhost import azurite as azurite_module
from devhost.azurite import Azurite
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
