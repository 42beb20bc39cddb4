"""`python -m devhost` guards the durable management API with its host key, prints that key, and
the RunningStack helpers the other tests use to reach the API work with it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import azure.durable_functions as df
import requests
from azure.durable_functions.models.utils import http_utils

from tests.conftest import DURABLE_WEBHOOK, RunningStack, launch_stack


def test_the_stack_refuses_the_management_api_without_its_host_key(stack: RunningStack) -> None:
    instances = f"{stack.origin}{DURABLE_WEBHOOK}/instances"
    assert requests.get(instances, timeout=10).status_code == 401
    assert requests.get(instances, params={"code": "not-the-key"}, timeout=10).status_code == 401
    assert stack.management_get("instances").status_code == 200
    assert requests.get(instances, params={"code": stack.host_key}, timeout=10).status_code == 200


def test_a_library_client_from_the_binding_reaches_the_keyless_rpc_endpoint(stack: RunningStack) -> None:
    async def every_status() -> list[df.DurableOrchestrationStatus]:
        http_utils._client_session = None  # the library's session is bound to the loop that made it
        try:
            client = df.DurableOrchestrationClient(stack.durable_client_binding())
            return await client.get_status_all()
        finally:
            await http_utils._close_session()

    # The library raises on any answer but 200 (a 401 or 404 from a wrong endpoint included).
    statuses = asyncio.run(every_status())
    assert isinstance(statuses, list)
    assert urlsplit(stack.durable_rpc_url).port != urlsplit(stack.origin).port


def test_a_stack_without_a_configured_key_generates_prints_and_keeps_one(tmp_path: Path) -> None:
    state = tmp_path / "generated-key"
    first = launch_stack(state, DEVHOST_MASTER_KEY="")
    try:
        printed = re.findall(r"Host key +(\S+)", first.log_path.read_text())[-1]
        instances = f"{first.origin}{DURABLE_WEBHOOK}/instances"
        assert requests.get(instances, params={"code": printed}, timeout=10).status_code == 200
    finally:
        first.stop()
    second = launch_stack(state, DEVHOST_MASTER_KEY="")
    try:
        assert re.findall(r"Host key +(\S+)", second.log_path.read_text())[-1] == printed
    finally:
        second.stop()
