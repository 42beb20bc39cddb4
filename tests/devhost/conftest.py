"""Fixtures for the durable dev host tests: hosts on temporary state directories."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devhost.host import DevHost  # noqa: E402
from tests.devhost.devhost_testkit import StartHost  # noqa: E402


@pytest.fixture
def start_host(tmp_path: Path) -> Iterator[StartHost]:
    """Start a DevHost for an app; every host started is stopped at the end of the test."""
    hosts: list[DevHost] = []

    def start(app: Any, state_dir: Path | None = None, **options: Any) -> DevHost:
        host = DevHost(app, state_dir=state_dir or tmp_path / "state", **options)
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in reversed(hosts):
        host.stop()
