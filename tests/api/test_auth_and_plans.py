"""Who may generate video: keys, plans, management; against the local stack."""

from __future__ import annotations

import requests

from tests.conftest import RunningStack


def test_missing_and_wrong_keys_are_401_and_api_key_header_works(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    missing = requests.get(f"{stack.api}/v1/usage", timeout=10)
    wrong = requests.get(f"{stack.api}/v1/usage", headers={"Authorization": "Bearer sgw_nope"}, timeout=10)
    via_api_key = requests.get(f"{stack.api}/v1/usage", headers={"api-key": app.api_key}, timeout=10)
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == wrong.json()["error"]["code"] == "invalid_api_key"
    assert via_api_key.status_code == 200


def test_free_plan_is_403_and_consumes_nothing(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("free")
    marker = f"[{app.id}]"

    response = client.create_video(app.api_key, {"prompt": f"free {marker}"})

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "plan_not_allowed"
    assert "Pro plan or higher" in error["message"]
    usage = client.usage(app.api_key)
    assert usage["video_enabled"] is False
    assert stack.upstream_jobs_for(marker) == 0


def test_plan_change_takes_effect_on_the_next_request(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("free")
    assert client.create_video(app.api_key, {"prompt": "#x"}).status_code == 403

    upgraded = client.manage("PATCH", f"/apps/{app.id}", json={"plan": "pro"})
    assert upgraded.status_code == 200
    assert upgraded.json()["plan"] == "pro"
    assert client.create_video(app.api_key).status_code == 202

    client.manage("PATCH", f"/apps/{app.id}", json={"plan": "free"})
    assert client.create_video(app.api_key).status_code == 403


def test_key_rotation_stops_the_old_key_at_once(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    rotated = client.manage("POST", f"/apps/{app.id}/keys")
    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    assert new_key != app.api_key
    assert (
        requests.get(f"{stack.api}/v1/usage", headers=stack.headers(app.api_key), timeout=10).status_code
        == 401
    )
    assert (
        requests.get(f"{stack.api}/v1/usage", headers=stack.headers(new_key), timeout=10).status_code == 200
    )


def test_management_needs_the_admin_key_and_never_returns_secrets_twice(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("business", name="Acme")
    no_key = requests.post(f"{stack.api}/v1/manage/apps", json={"name": "x", "plan": "pro"}, timeout=10)
    bad_key = requests.get(
        f"{stack.api}/v1/manage/apps/{app.id}", headers={"x-admin-key": "nope"}, timeout=10
    )
    read = client.manage("GET", f"/apps/{app.id}")
    assert no_key.status_code == bad_key.status_code == 401
    assert read.status_code == 200
    assert read.json() == {
        "id": app.id,
        "object": "app",
        "name": "Acme",
        "plan": "business",
        "created_at": read.json()["created_at"],
    }
    assert app.api_key not in read.text
    assert app.webhook_secret not in read.text
    assert app.webhook_secret.startswith("whsec_")


def test_management_validates_its_input(stack: RunningStack) -> None:
    client = stack.client
    bad_plan = client.manage("POST", "/apps", json={"name": "x", "plan": "gold"})
    no_name = client.manage("POST", "/apps", json={"plan": "pro"})
    unknown = client.manage("GET", "/apps/app_missing")
    assert (bad_plan.status_code, bad_plan.json()["error"]["param"]) == (400, "plan")
    assert (no_name.status_code, no_name.json()["error"]["code"]) == (400, "missing_required_parameter")
    assert unknown.status_code == 404


def test_one_app_never_sees_another_apps_video(stack: RunningStack) -> None:
    client = stack.client
    owner, other = client.create_app("pro"), client.create_app("pro")
    video_id = client.create_video(owner.api_key).json()["id"]
    foreign = client.get_video(other.api_key, video_id)
    unknown = client.get_video(other.api_key, "video_doesnotexist")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "video_not_found"
    assert client.delete_video(other.api_key, video_id).status_code == 404
