"""GET /api/health lists every provider account, up or down; details only for the admin key;
no key of any kind in the answer.

The shared stack is only read. A provider is made to cool down on a stack of this module's own
(short cool-down), by recording failures through the store straight into that stack's Azurite,
as activities would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from devhost.config import load_values
from gateway.health import ProviderHealth
from gateway.settings import AZURITE_KEY
from gateway.tables import Tables, table_service
from tests.conftest import DEV_APP_KEY, HOST_KEY, PROJECT_DIR, RunningStack, stack_until_jobs_end
from tests.contract.document import assert_matches_document

DETAIL_FIELDS = {
    "accepted",
    "refused",
    "failed",
    "throttled",
    "consecutive_failures",
    "last_outcome",
    "last_outcome_at",
    "latency_ms",
    "cooling_down_until",
}
COOL_DOWN_SECONDS = 3.0


def accounts(stack: RunningStack) -> set[str]:
    return set(json.loads(load_values(PROJECT_DIR, stack.env)["PROVIDERS"]))


def secrets_of(stack: RunningStack) -> list[str]:
    """Every key the stack knows: the providers' (the simulator's), the apps', admin, host, storage."""
    values = load_values(PROJECT_DIR, stack.env)
    keys = [values[name] for name in values if name.startswith("SORA_SIM_") and name.endswith("_KEY")]
    return [*keys, stack.admin_key, stack.dev_key, DEV_APP_KEY, HOST_KEY, AZURITE_KEY]


def health(stack: RunningStack, admin_key: str | None = None) -> requests.Response:
    headers = {} if admin_key is None else {"x-admin-key": admin_key}
    response = requests.get(f"{stack.api}/health", headers=headers, timeout=15)
    assert response.status_code == 200, response.text
    # The OpenAPI document's Health schema describes it, details and all.
    assert assert_matches_document("GET", "/health", response)["storage"] == "ok"
    return response


def assert_no_key_material(stack: RunningStack, response: requests.Response) -> None:
    for secret in secrets_of(stack):
        assert secret
        assert secret not in response.text


def test_every_account_is_listed_for_anyone_without_details(stack: RunningStack) -> None:
    response = health(stack)
    providers = response.json()["providers"]
    assert set(providers) == accounts(stack)
    # Nothing in this module makes the shared stack's accounts fail.
    assert set(providers.values()) == {"up"}
    assert "provider_details" not in response.json()
    assert_no_key_material(stack, response)


def test_a_wrong_admin_key_is_no_error_and_gets_no_details(stack: RunningStack) -> None:
    for wrong in ("wrong-admin-key", stack.admin_key + "x", stack.dev_key):
        response = health(stack, wrong)
        assert "provider_details" not in response.json()
        assert set(response.json()["providers"]) == accounts(stack)


def test_the_admin_key_adds_each_accounts_record(stack: RunningStack) -> None:
    response = health(stack, stack.admin_key)
    details = response.json()["provider_details"]
    assert set(details) == accounts(stack)
    for name, record in details.items():
        assert set(record) == DETAIL_FIELDS, name
        assert record["last_outcome"] in (None, "accepted", "refused", "failed", "throttled")
        assert all(record[count] >= 0 for count in ("accepted", "refused", "failed", "throttled"))
    assert_no_key_material(stack, response)


@pytest.fixture(scope="module")
def cooling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("provider-health"),
        PROVIDER_FAILURES_TO_COOL_DOWN="2",
        PROVIDER_COOL_DOWN_SECONDS=str(COOL_DOWN_SECONDS),
    ) as running:
        yield running


def test_a_cooling_account_is_down_until_its_cool_down_ends(cooling_stack: RunningStack) -> None:
    prefix = load_values(PROJECT_DIR, cooling_stack.env).get("TABLE_PREFIX", "")
    tables = Tables(table_service(cooling_stack.storage_connection_string), prefix=prefix)
    store = ProviderHealth(tables, failures_to_cool_down=2, cool_down_seconds=COOL_DOWN_SECONDS)
    store.record("aimlapi", "accepted", latency_ms=420.0)
    store.record("fal", "failed")
    assert health(cooling_stack).json()["providers"]["fal"] == "up"  # one failure is not enough

    store.record("fal", "failed")
    cooled_at = time.time()
    providers = health(cooling_stack).json()["providers"]
    assert providers["fal"] == "down"
    assert {name for name, status in providers.items() if status == "down"} == {"fal"}

    response = health(cooling_stack, cooling_stack.admin_key)
    fal = response.json()["provider_details"]["fal"]
    assert (fal["failed"], fal["consecutive_failures"], fal["last_outcome"]) == (2, 2, "failed")
    assert fal["cooling_down_until"] == pytest.approx(cooled_at + COOL_DOWN_SECONDS, abs=2.0)
    aimlapi = response.json()["provider_details"]["aimlapi"]
    assert (aimlapi["accepted"], aimlapi["latency_ms"], aimlapi["cooling_down_until"]) == (1, 420.0, None)
    assert_no_key_material(cooling_stack, response)

    deadline = time.monotonic() + COOL_DOWN_SECONDS + 10
    while health(cooling_stack).json()["providers"]["fal"] == "down":
        assert time.monotonic() < deadline, "fal stayed down after its cool-down"
        time.sleep(0.5)
    assert time.time() >= cooled_at + COOL_DOWN_SECONDS - 1.0
