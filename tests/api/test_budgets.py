"""Money budgets through the HTTP API, on a stack of their own: refusal, usage, settlement by outcome."""

from __future__ import annotations

import json
import time
from calendar import monthrange
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests

from gateway.webhooks import sign
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.contract.document import assert_matches_document, pointer, schema_errors
from tests.contract.support import webhook_receiver

# sora-2 (the catalog's first model) at 0.10 a second, 4 s by default: 0.40 a video.
PRICE = 0.4
BUDGETS = {
    # Neither a job that fails after acceptance nor one the content filter refuses is charged.
    "pro": {"month": 1.0, "charge_failed": False, "charge_refused": False},
    "business": {"month": 10.0, "threshold": 0.05},  # the default policy: it is; announced at 0.50
}


@pytest.fixture(scope="module")
def budget_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("budgets"), PLAN_BUDGETS=json.dumps(BUDGETS)
    ) as running:
        yield running


def _month_end() -> int:
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return int(start.timestamp()) + monthrange(now.year, now.month)[1] * 86400


def test_an_overrun_is_refused_and_money_comes_back_as_the_policy_says(budget_stack: RunningStack) -> None:
    client = budget_stack.client
    app = client.create_app("pro")
    failing = client.create_video(app.api_key, {"prompt": "A storm at sea #sim:fail"})
    completing = client.create_video(app.api_key)
    assert (failing.status_code, completing.status_code) == (202, 202), completing.text
    assert failing.headers["x-budget-remaining"] == "0.600000"
    assert completing.headers["x-budget-remaining"] == "0.200000"
    assert completing.json()["cost"] is None  # not settled yet

    refused = client.create_video(app.api_key)

    assert refused.status_code == 429
    error = assert_matches_document("POST", "/v1/videos", refused)["error"]  # and docs/api.md's table
    assert (error["type"], error["code"], error["window"]) == (
        "insufficient_quota",
        "budget_exceeded",
        "month",
    )
    assert error["resets_at"] == pytest.approx(_month_end(), abs=2)
    assert int(refused.headers["Retry-After"]) == pytest.approx(_month_end() - time.time(), abs=5)
    assert refused.headers["x-budget-remaining"] == "0.200000"
    answer = requests.get(
        f"{client.api}/v1/usage", headers={"Authorization": f"Bearer {app.api_key}"}, timeout=30
    )
    usage = assert_matches_document("GET", "/v1/usage", answer)
    assert usage["used"]["hour"] == 2  # the refusal took no slot
    month = usage["budget"]["month"]
    assert (month["limit"], month["spent"], month["remaining"]) == (1.0, 0.0, pytest.approx(0.2))
    assert month["reserved"] == pytest.approx(2 * PRICE)
    assert usage["budget"]["currency"] == "USD"

    failed = client.wait_finished(app.api_key, failing.json()["id"])
    done = client.wait_finished(app.api_key, completing.json()["id"])

    assert (failed["status"], failed["error"]["code"]) == ("failed", "video_generation_failed")
    assert failed["cost"] == {"amount": 0.0, "currency": "USD"}  # charge_failed false: released
    assert done["status"] == "completed"
    assert done["cost"] == {"amount": PRICE, "currency": "USD"}
    assert_matches_document("GET", "/v1/videos/{video_id}", client.get_video(app.api_key, done["id"]))
    usage = client.usage(app.api_key)
    month = usage["budget"]["month"]
    assert (month["spent"], month["reserved"]) == (pytest.approx(PRICE), 0.0)
    assert month["remaining"] == pytest.approx(1.0 - PRICE)
    assert usage["used"]["hour"] == 1  # slot and money went back together
    assert client.create_video(app.api_key).status_code == 202  # what came back is spendable


def test_a_cancelled_job_gets_its_money_back(budget_stack: RunningStack) -> None:
    client = budget_stack.client
    app = client.create_app("pro")
    video = client.create_video(app.api_key).json()
    assert client.delete_video(app.api_key, video["id"]).status_code == 200
    # Cancelled before the provider finished it: released while queued; after acceptance too
    # under this plan's policy (charge_failed false).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        month = client.usage(app.api_key)["budget"]["month"]
        if month["reserved"] == 0:
            break
        time.sleep(0.3)
    assert (month["reserved"], month["spent"], month["remaining"]) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(("plan", "charged"), [("pro", False), ("business", True)])
def test_a_job_the_content_filter_refuses_is_charged_as_its_plan_says(
    budget_stack: RunningStack, plan: str, charged: bool
) -> None:
    """The simulator refuses a `#sim:blocked` prompt at create: the provider never accepted the
    job, for a reason of the request's own (`charge_refused`, default true)."""
    client = budget_stack.client
    app = client.create_app(plan)
    created = client.create_video(app.api_key, {"prompt": "forbidden #sim:blocked"})
    assert created.status_code == 202, created.text
    failed = client.wait_finished(app.api_key, created.json()["id"])
    assert failed["error"]["code"] == "content_policy_violation"
    assert failed["cost"] == {"amount": PRICE if charged else 0.0, "currency": "USD"}
    usage = client.usage(app.api_key)
    month = usage["budget"]["month"]
    assert (month["spent"], month["reserved"]) == (pytest.approx(PRICE if charged else 0.0), 0.0)
    assert usage["used"]["hour"] == (1 if charged else 0)  # the slot follows the money


def test_the_default_policy_charges_a_job_that_failed_after_acceptance(budget_stack: RunningStack) -> None:
    client = budget_stack.client
    app = client.create_app("business")
    created = client.create_video(app.api_key, {"prompt": "A storm at sea #sim:fail"})
    assert created.headers["x-budget-remaining"] == "9.600000"
    failed = client.wait_finished(app.api_key, created.json()["id"])
    assert failed["cost"] == {"amount": PRICE, "currency": "USD"}
    month = client.usage(app.api_key)["budget"]["month"]
    assert (month["spent"], month["reserved"]) == (pytest.approx(PRICE), 0.0)


def test_crossing_the_threshold_is_announced_once_to_the_crossing_creates_webhook(
    budget_stack: RunningStack,
) -> None:
    client = budget_stack.client
    app = client.create_app("business")
    with webhook_receiver() as receiver:
        body = {"prompt": "A quiet harbour", "webhook_url": receiver.url}
        ids = [client.create_video(app.api_key, body).json()["id"] for _ in range(3)]  # 0.40, 0.80, 1.20
        deliveries = receiver.wait_for(4)  # three videos' events and one budget event
        time.sleep(2)  # and nothing more arrives
        deliveries = list(receiver.deliveries)

    events = [(delivery, json.loads(delivery.body)) for delivery in deliveries]
    announced = [(delivery, event) for delivery, event in events if event["type"] == "budget.threshold"]
    assert len(announced) == 1, [event["type"] for _, event in events]
    delivery, event = announced[0]
    assert schema_errors(pointer("components", "schemas", "BudgetThresholdEvent"), event) == []
    data = event["data"]
    assert (data["app_id"], data["window"], data["threshold"], data["limit"]) == (app.id, "month", 0.05, 10.0)
    assert data["start"] == datetime.now(UTC).strftime("%Y-%m")
    assert data["spent"] + data["reserved"] >= 0.8
    headers = {name.lower(): value for name, value in delivery.headers.items()}
    assert headers["webhook-id"] == event["id"] == f"evt_budget_{app.id}_month_{data['start']}"
    expected = sign(
        app.webhook_secret, headers["webhook-id"], int(headers["webhook-timestamp"]), delivery.body.decode()
    )
    assert headers["webhook-signature"] == expected
    for video_id in ids:
        client.wait_finished(app.api_key, video_id)


def test_an_apps_own_budget_overrides_its_plans_until_cleared(budget_stack: RunningStack) -> None:
    client = budget_stack.client
    app = client.create_app("pro")  # the plan's budget: 1.00 a month
    path = f"/apps/{app.id}"
    bad = client.manage("PATCH", path, json={"budget": {"month": -1}})
    assert bad.status_code == 400
    assert assert_matches_document("PATCH", "/v1/manage/apps/{app_id}", bad)["error"]["param"] == "budget"
    assert client.manage("PATCH", path, json={"budget": {"month": 0.5}}).status_code == 200

    first = client.create_video(app.api_key)
    second = client.create_video(app.api_key)

    assert (first.status_code, first.headers["x-budget-remaining"]) == (202, "0.100000")
    assert (second.status_code, second.json()["error"]["code"]) == (429, "budget_exceeded")
    assert client.usage(app.api_key)["budget"]["month"]["limit"] == 0.5
    read = client.manage("GET", f"{path}/usage")
    assert read.json()["budget"]["month"]["limit"] == 0.5  # the operators see the budget in force

    assert client.manage("PATCH", path, json={"budget": None}).status_code == 200
    third = client.create_video(app.api_key)
    assert (third.status_code, third.headers["x-budget-remaining"]) == (202, "0.200000")
    for video in (first, third):
        client.wait_finished(app.api_key, video.json()["id"])


def test_racing_creates_admit_exactly_the_ones_that_fit_the_budget(budget_stack: RunningStack) -> None:
    client = budget_stack.client
    app = client.create_app("pro")  # 1.00 a month at 0.40 a video: two fit

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: client.create_video(app.api_key), range(10)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] * 2 + [429] * 8
    assert {response.json()["error"]["code"] for response in responses if response.status_code == 429} == {
        "budget_exceeded"
    }
    usage = client.usage(app.api_key)
    assert usage["used"]["hour"] == 2
    assert usage["budget"]["month"]["reserved"] + usage["budget"]["month"]["spent"] == pytest.approx(0.8)
    for response in responses:
        if response.status_code == 202:
            client.wait_finished(app.api_key, response.json()["id"])
