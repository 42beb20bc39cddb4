"""The operators' view of one app's usage and of recent failures across apps, against the
local stack. Failures are real: the simulator fails a job whose prompt carries `#sim:fail`."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests

from tests.conftest import RunningStack

FAIL_MARKER = "#sim:fail"  # sorasim.jobs.FAIL_MARKER: the job fails upstream after a while


def _failures(stack: RunningStack, **params: str | int) -> dict[str, Any]:
    response = stack.client.manage("GET", "/failures", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_apps_usage_reads_as_the_app_reads_its_own(stack: RunningStack) -> None:
    app = stack.client.create_app("pro", name="usage view")
    created = stack.client.create_video(app.api_key, {"prompt": "A usage view " + uuid.uuid4().hex})
    assert created.status_code == 202, created.text
    own = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(app.api_key), timeout=30)
    viewed = stack.client.manage("GET", f"/apps/{app.id}/usage")
    assert viewed.status_code == 200, viewed.text
    assert viewed.json() == own.json()
    assert viewed.json()["used"] == {"hour": 1, "day": 1}
    assert viewed.headers["x-ratelimit-remaining-hour"] == "4"
    # The app's own key does not open the operators' view, and an unknown app is 404.
    refused = requests.get(
        f"{stack.api}/v1/manage/apps/{app.id}/usage", headers={"x-admin-key": app.api_key}, timeout=30
    )
    assert refused.status_code == 401
    missing = stack.client.manage("GET", "/apps/app_does_not_exist/usage")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "app_not_found"
    stack.client.wait_finished(app.api_key, created.json()["id"])


def test_a_free_apps_usage_says_it_has_no_video(stack: RunningStack) -> None:
    app = stack.client.create_app("free", name="free usage view")
    body = stack.client.manage("GET", f"/apps/{app.id}/usage").json()
    assert body["plan"] == "free"
    assert body["video_enabled"] is False


def test_recent_failures_list_every_app_with_codes_and_counts(stack: RunningStack) -> None:
    started = int(time.time())
    apps = [stack.client.create_app("pro", name=f"failures {n}") for n in range(2)]
    failed_ids = []
    for app in apps:
        created = stack.client.create_video(
            app.api_key, {"prompt": f"A doomed shot {FAIL_MARKER} {uuid.uuid4().hex}", "seconds": "4"}
        )
        assert created.status_code == 202, created.text
        failed_ids.append(created.json()["id"])
    ok = stack.client.create_video(apps[0].api_key, {"prompt": "A fine shot " + uuid.uuid4().hex})
    for app, video_id in zip(apps, failed_ids, strict=True):
        assert stack.client.wait_finished(app.api_key, video_id)["status"] == "failed"
    assert stack.client.wait_finished(apps[0].api_key, ok.json()["id"])["status"] == "completed"

    listed = _failures(stack, since=started)
    mine = [item for item in listed["data"] if item["id"] in failed_ids]
    assert {item["app_id"] for item in mine} == {app.id for app in apps}
    assert ok.json()["id"] not in {item["id"] for item in listed["data"]}
    for item in mine:
        assert item["object"] == "video.failure"
        assert item["error"]["code"]
        assert item["error"]["message"]
        assert item["provider"]
        assert item["model"]
        assert item["completed_at"] >= item["created_at"] >= started
    # Newest failure first; counts cover the whole window.
    finished = [item["completed_at"] for item in listed["data"]]
    assert finished == sorted(finished, reverse=True)
    assert sum(listed["counts"]["by_code"].values()) == len(listed["data"])
    assert sum(listed["counts"]["by_provider"].values()) == len(listed["data"])
    assert listed["since"] == started
    # A page of one says more follow, and its counts still cover every failure.
    one = _failures(stack, since=started, limit=1)
    assert len(one["data"]) == 1
    assert one["has_more"] is True
    assert sum(one["counts"]["by_code"].values()) >= len(failed_ids)
    # A window that starts later holds none of them.
    after_them = max(item["completed_at"] for item in mine) + 1
    time.sleep(max(0.0, after_them - time.time()))
    later = _failures(stack, since=after_them)
    assert not {item["id"] for item in later["data"]} & set(failed_ids)


def test_failures_refuse_bad_queries_and_app_keys(stack: RunningStack) -> None:
    future = str(int(time.time()) + 3600)
    for params, param in (
        ({"since": future}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
    ):
        response = stack.client.manage("GET", "/failures", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["param"] == param
    refused = requests.get(f"{stack.api}/v1/manage/failures", headers=stack.headers(), timeout=30)
    assert refused.status_code == 401
    default = _failures(stack)
    assert abs(default["since"] - (time.time() - 86400)) < 120
