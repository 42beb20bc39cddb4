"""Management, usage and health: real answers, each checked against the document."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack, launch_stack
from tests.contract.document import assert_matches_document
from tests.contract.support import assert_error, bearer
from tests.gateway_client import AppCredentials

APPS = "/v1/manage/apps"
APP = "/v1/manage/apps/{app_id}"
KEYS = "/v1/manage/apps/{app_id}/keys"
UNKNOWN_APP = "app_00000000000000000000000000000000"


def manage(
    stack: RunningStack, method: str, path: str, *, admin_key: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = {
        "x-admin-key": stack.admin_key if admin_key is None else admin_key,
        **kwargs.pop("headers", {}),
    }
    return requests.request(method, f"{stack.api}/v1/manage{path}", headers=headers, timeout=30, **kwargs)


def test_app_lifecycle(stack: RunningStack) -> None:
    created = manage(stack, "POST", "/apps", json={"name": "Contract app", "plan": "free"})
    app = assert_matches_document("POST", APPS, created)
    assert created.status_code == 201, created.text
    assert (app["name"], app["plan"]) == ("Contract app", "free")

    read = manage(stack, "GET", f"/apps/{app['id']}")
    patched = manage(stack, "PATCH", f"/apps/{app['id']}", json={"plan": "business"})
    rotated = manage(stack, "POST", f"/apps/{app['id']}/keys")

    shown = assert_matches_document("GET", APP, read)
    assert shown == {key: app[key] for key in shown}
    assert set(shown).isdisjoint({"api_key", "webhook_secret"})
    assert assert_matches_document("PATCH", APP, patched)["plan"] == "business"
    new_key = assert_matches_document("POST", KEYS, rotated)["api_key"]
    assert new_key != app["api_key"]
    assert requests.get(f"{stack.api}/v1/usage", headers=bearer(new_key), timeout=30).status_code == 200


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"plan": "pro"}, "missing_required_parameter", "name"),
        ({"name": "   ", "plan": "pro"}, "invalid_value", "name"),
        ({"name": "x" * 201, "plan": "pro"}, "invalid_value", "name"),
        ({"name": "n"}, "missing_required_parameter", "plan"),
        ({"name": "n", "plan": "enterprise"}, "invalid_value", "plan"),
    ],
)
def test_create_app_rejects_bad_bodies(
    stack: RunningStack, body: dict[str, Any], code: str, param: str
) -> None:
    assert_error(manage(stack, "POST", "/apps", json=body), APPS, 400, code, param)


def test_create_app_rejects_invalid_json(stack: RunningStack) -> None:
    response = manage(stack, "POST", "/apps", data=b"{", headers={"Content-Type": "application/json"})

    assert_error(response, APPS, 400, "invalid_json")


def test_patch_rejects_a_bad_plan(stack: RunningStack, pro_app: AppCredentials) -> None:
    response = manage(stack, "PATCH", f"/apps/{pro_app.id}", json={"plan": "gold"})

    assert_error(response, APP, 400, "invalid_value", "plan")


@pytest.mark.parametrize(("method", "template"), [("GET", APP), ("PATCH", APP), ("POST", KEYS)])
def test_unknown_app_is_404(stack: RunningStack, method: str, template: str) -> None:
    response = manage(
        stack,
        method,
        template.removeprefix("/v1/manage").replace("{app_id}", UNKNOWN_APP),
        json={"plan": "pro"},
    )

    assert_error(response, template, 404, "app_not_found")


@pytest.mark.parametrize(
    ("method", "template"), [("POST", APPS), ("GET", APP), ("PATCH", APP), ("POST", KEYS)]
)
@pytest.mark.parametrize("admin_key", ["", "wrong-admin-key"])
def test_management_without_the_admin_key_is_401(
    stack: RunningStack, pro_app: AppCredentials, method: str, template: str, admin_key: str
) -> None:
    path = template.removeprefix("/v1/manage").replace("{app_id}", pro_app.id)
    response = manage(stack, method, path, admin_key=admin_key, json={"name": "n", "plan": "pro"})

    body = assert_matches_document(method, template, response)
    assert response.status_code == 401, response.text
    assert body["error"]["type"] == "authentication_error"


def test_usage_of_a_pro_and_a_free_app(stack: RunningStack, pro_app: AppCredentials) -> None:
    free = stack.client.create_app("free")

    pro_usage = requests.get(f"{stack.api}/v1/usage", headers=bearer(pro_app.api_key), timeout=30)
    free_usage = requests.get(f"{stack.api}/v1/usage", headers={"api-key": free.api_key}, timeout=30)

    pro_body = assert_matches_document("GET", "/v1/usage", pro_usage)
    free_body = assert_matches_document("GET", "/v1/usage", free_usage)
    assert (pro_body["plan"], pro_body["video_enabled"]) == ("pro", True)
    assert pro_body["resets_at"] == {"hour": None, "day": None}
    assert (free_body["plan"], free_body["video_enabled"]) == ("free", False)


def test_health(stack: RunningStack) -> None:
    response = requests.get(f"{stack.api}/health", timeout=30)

    assert assert_matches_document("GET", "/health", response)["status"] == "ok"


def test_health_when_storage_is_unreachable_is_503_with_the_error_body(tmp_path: Path) -> None:
    # A stack of its own whose Azurite is then stopped: storage really goes away.
    own = launch_stack(tmp_path / "stack")
    try:
        # The stack prints its Azurite's process id: that process, and no other, is stopped.
        pid = int(re.findall(r"Azurite .* pid (\d+)", own.log_path.read_text())[-1])
        os.kill(pid, signal.SIGTERM)
        response = requests.get(f"{own.api}/health", timeout=60)
    finally:
        own.stop()
    assert response.status_code == 503
    body = assert_matches_document("GET", "/health", response)
    assert body["error"]["code"] == "storage_unreachable"
