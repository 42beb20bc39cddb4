"""Per-app rolling quota through the HTTP API; against the local stack."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import RunningStack

RATE_HEADERS = (
    "x-ratelimit-limit-hour",
    "x-ratelimit-remaining-hour",
    "x-ratelimit-limit-day",
    "x-ratelimit-remaining-day",
)


def test_sixth_create_in_an_hour_is_429_with_exact_retry_after(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    first_at = time.time()
    remaining = []
    for _ in range(5):
        response = client.create_video(app.api_key)
        assert response.status_code == 202, response.text
        remaining.append(int(response.headers["x-ratelimit-remaining-hour"]))

    refused = client.create_video(app.api_key)

    assert remaining == [4, 3, 2, 1, 0]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["window"] == "hour"
    retry_after = int(refused.headers["Retry-After"])
    expected = 3600 - (time.time() - first_at)
    assert 1 <= retry_after <= 3600
    assert abs(retry_after - expected) <= 3
    assert all(name in refused.headers for name in RATE_HEADERS)
    assert refused.headers["x-ratelimit-limit-day"] == "20"
    assert refused.headers["x-ratelimit-remaining-day"] == "15"
    assert refused.headers["x-budget-remaining"] == "unlimited"  # no PLAN_BUDGETS: no money limit


def test_twenty_concurrent_creates_with_five_slots_admit_exactly_five(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    marker = f"[{app.id}]"

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(lambda _: client.create_video(app.api_key, {"prompt": f"race {marker}"}), range(20))
        )

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(202) == 5
    assert statuses.count(429) == 15
    assert client.usage(app.api_key)["used"]["hour"] == 5
    accepted = [response.json()["id"] for response in responses if response.status_code == 202]
    for video_id in accepted:
        assert client.wait_finished(app.api_key, video_id)["status"] == "completed"
    assert stack.upstream_jobs_for(marker) == 5


def test_rejected_requests_consume_nothing(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    bad = [
        client.create_video(app.api_key, {"prompt": ""}),
        client.create_video(app.api_key, {"prompt": "x", "seconds": "7"}),
        client.create_video("sgw_wrong_key"),
        client.create_video(app.api_key, {"prompt": "x"}, headers={"Content-Type": "text/plain"}),
    ]
    assert [response.status_code for response in bad] == [400, 400, 401, 415]
    assert client.usage(app.api_key)["used"] == {"hour": 0, "day": 0}


def test_usage_reports_plan_limits_and_reset_times(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("business")
    before = time.time()
    client.create_video(app.api_key)
    usage = client.usage(app.api_key)
    assert usage["plan"] == "business"
    assert usage["video_enabled"] is True
    assert usage["limits"] == {"hour": 5, "day": 20}
    assert usage["used"] == {"hour": 1, "day": 1}
    assert usage["remaining"] == {"hour": 4, "day": 19}
    assert before + 3600 - 2 <= usage["resets_at"]["hour"] <= time.time() + 3600 + 2
    assert before + 86400 - 2 <= usage["resets_at"]["day"] <= time.time() + 86400 + 2


def test_a_slot_is_given_back_when_the_upstream_never_accepted_the_job(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    # An outage: every upstream request fails with a 5xx or a dropped connection (no 429s,
    # which are waited out rather than counted as failures).
    with stack.sim_configured(fault_rate=1.0, fault_kinds="500,503,dropped"):
        created = client.create_video(app.api_key)
        assert created.status_code == 202
        assert client.usage(app.api_key)["used"]["hour"] == 1
        failed = client.wait_finished(app.api_key, created.json()["id"], timeout=120)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "upstream_unavailable"
    assert client.usage(app.api_key)["used"]["hour"] == 0


def test_a_content_refusal_keeps_the_slot(stack: RunningStack) -> None:
    client = stack.client
    app = client.create_app("pro")
    created = client.create_video(app.api_key, {"prompt": "Something not allowed #sim:blocked"})
    failed = client.wait_finished(app.api_key, created.json()["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "content_policy_violation"
    assert client.usage(app.api_key)["used"]["hour"] == 1
