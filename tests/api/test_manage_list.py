"""`GET /api/v1/manage/apps`: the operators' paged list of apps, against the local stack."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack, launch_stack
from tests.gateway_client import AppCredentials


def _all_pages(stack: RunningStack, order: str, limit: int = 10) -> list[dict[str, Any]]:
    """Every app, following `last_id` as `after` until `has_more` is false."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": limit, "order": order}
    while True:
        response = stack.client.manage("GET", "/apps", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["object"] == "list"
        assert len(page["data"]) <= limit
        if page["data"]:
            assert (page["first_id"], page["last_id"]) == (page["data"][0]["id"], page["data"][-1]["id"])
        items += page["data"]
        if not page["has_more"]:
            return items
        assert len(page["data"]) == limit
        params["after"] = page["last_id"]


@pytest.fixture(scope="module")
def listed_apps(stack: RunningStack) -> list[AppCredentials]:
    marker = uuid.uuid4().hex[:8]
    return [stack.client.create_app("pro", name=f"list {marker} {n}") for n in range(25)]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_with_limit_10_returns_every_app_once_in_order(
    stack: RunningStack, listed_apps: list[AppCredentials], order: str
) -> None:
    items = _all_pages(stack, order)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), "an app was listed twice"
    positions = [(item["created_at"], item["id"]) for item in items]
    assert positions == sorted(positions, reverse=order == "desc")
    mine = [app_id for app_id in ids if app_id in {app.id for app in listed_apps}]
    assert sorted(mine) == sorted(app.id for app in listed_apps)
    # Created one after another: by creation order (ties within a second go by id).
    created = {item["id"]: item["created_at"] for item in items}
    expected = sorted((app.id for app in listed_apps), key=lambda app_id: (created[app_id], app_id))
    assert mine == (expected if order == "asc" else expected[::-1])


def test_default_page_is_20_newest_first_and_items_are_the_app_object(
    stack: RunningStack, listed_apps: list[AppCredentials]
) -> None:
    response = stack.client.manage("GET", "/apps")

    assert response.status_code == 200, response.text
    page = response.json()
    assert len(page["data"]) == 20
    assert page["has_more"] is True
    positions = [(item["created_at"], item["id"]) for item in page["data"]]
    assert positions == sorted(positions, reverse=True)
    newest = listed_apps[-1].id
    shown = next(item for item in _all_pages(stack, "desc", limit=100) if item["id"] == newest)
    assert shown == stack.client.manage("GET", f"/apps/{newest}").json()
    assert set(shown) == {"id", "object", "name", "plan", "created_at"}


def test_no_item_carries_a_secret(stack: RunningStack, listed_apps: list[AppCredentials]) -> None:
    responses = [
        stack.client.manage("GET", "/apps", params={"limit": 100, "order": o}) for o in ("asc", "desc")
    ]

    for response in responses:
        assert response.status_code == 200, response.text
        assert all(
            set(item) == {"id", "object", "name", "plan", "created_at"} for item in response.json()["data"]
        )
        for app in listed_apps:
            assert app.api_key not in response.text
            assert app.webhook_secret not in response.text


@pytest.mark.parametrize("admin_key", [None, "", "wrong-admin-key"])
def test_without_the_admin_key_is_401(stack: RunningStack, admin_key: str | None) -> None:
    headers = {} if admin_key is None else {"x-admin-key": admin_key}
    response = requests.get(f"{stack.api}/v1/manage/apps", headers=headers, timeout=30)

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_admin_key"
    assert '"data"' not in response.text


@pytest.mark.parametrize(
    ("params", "param", "says"),
    [
        ({"limit": "0"}, "limit", "from 1 to 100"),
        ({"limit": "101"}, "limit", "from 1 to 100"),
        ({"limit": "ten"}, "limit", "from 1 to 100"),
        ({"limit": "1_0"}, "limit", "from 1 to 100"),  # Python's int() would read 10
        ({"limit": " 10"}, "limit", "from 1 to 100"),
        ({"limit": "-1"}, "limit", "from 1 to 100"),
        ({"order": "newest"}, "order", "asc or desc"),
        ({"order": ""}, "order", "asc or desc"),
        ({"after": "app_0000000000000000000000000000dead"}, "after", "no app has the id"),
        ({"after": "not an id!"}, "after", "Expected an app id"),
        ({"after": "a" * 129}, "after", "Expected an app id"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    stack: RunningStack, listed_apps: list[AppCredentials], params: dict[str, str], param: str, says: str
) -> None:
    response = stack.client.manage("GET", "/apps", params=params)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)
    assert says in error["message"]


def test_without_an_admin_key_configured_the_list_does_not_exist(tmp_path: Path) -> None:
    own = launch_stack(tmp_path / "stack", ADMIN_API_KEY="")
    try:
        without = requests.get(f"{own.api}/v1/manage/apps", timeout=30)
        guessed = requests.get(f"{own.api}/v1/manage/apps", headers={"x-admin-key": ""}, timeout=30)
    finally:
        own.stop()

    for response in (without, guessed):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
