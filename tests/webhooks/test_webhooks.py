"""Signed webhooks, verified with an independent Standard Webhooks implementation."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.messages import failure_message
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.contract.support import wait_until
from tests.gateway.test_storage_seam import pid_listening_on
from tests.webhooks.receiver import Delivery, Receiver, ResettingReceiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures=4) as running:
        yield running


def wait_for_deliveries(receiver: Receiver, path: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.on(path)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(receiver.on(path))} deliveries to {path}, expected {count}")
        time.sleep(0.2)


def test_completed_event_survives_four_failures_and_verifies(stack: RunningStack, receiver: Receiver) -> None:
    app = stack.client.create_app("pro")
    path = f"/hooks/{app.id}"
    created = stack.client.create_video(
        app.api_key, {"prompt": "A hummingbird", "webhook_url": receiver.url(path)}
    )
    assert created.status_code == 202, created.text
    video_id = created.json()["id"]

    wait_for_deliveries(receiver, path, 5)
    # Once the orchestration has ended it schedules nothing more: a sixth attempt, if one were
    # (wrongly) made, would have arrived by then.
    stored = finished_orchestration(stack, video_id)
    assert json.loads(stored)["runtimeStatus"] == "Completed"

    deliveries = receiver.on(path)
    assert [delivery.answered for delivery in deliveries] == [500, 500, 500, 500, 204]
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 1  # one event, retried
    verified = Webhook(app.webhook_secret).verify(deliveries[-1].body, deliveries[-1].headers)
    assert verified["type"] == "video.completed"
    assert verified["data"]["id"] == video_id
    assert verified["data"]["status"] == "completed"
    assert verified["data"]["video_url"].startswith("http://127.0.0.1:")
    # The event carries a URL signed as it is sent (sending, not storing) ...
    assert "sig=" in verified["data"]["video_url"]
    # The video itself was never held up by the failing receiver.
    assert stack.client.get_video(app.api_key, video_id).json()["status"] == "completed"
    # ... and the task hub keeps none: not in the delivery's input or result, nor anywhere else.
    assert "deliver_webhook" in stored
    assert "sig=" not in stored


def finished_orchestration(stack: RunningStack, instance_id: str, timeout: float = 30.0) -> str:
    """The instance's status with its whole history and every activity result, once it ended."""
    deadline = time.monotonic() + timeout
    while True:
        response = stack.management_get(
            f"instances/{instance_id}", showHistory="true", showHistoryOutput="true", showInput="true"
        )
        response.raise_for_status()
        if response.json()["runtimeStatus"] == "Completed" or time.monotonic() > deadline:
            return response.text
        time.sleep(0.2)


def webhook_schedule(stack: RunningStack) -> list[float]:
    """The stack's waits between delivery attempts (WEBHOOK_RETRY_SECONDS, short under test)."""
    return [float(delay) for delay in stack.env["WEBHOOK_RETRY_SECONDS"].split(",")]


def delivery_results(history_text: str) -> list[object]:
    """The results of the instance's deliver_webhook activity runs, in order."""
    results = []
    for event in json.loads(history_text)["historyEvents"]:
        if event.get("FunctionName") == "deliver_webhook" and event["EventType"] == "TaskCompleted":
            result = event.get("Result")
            results.append(json.loads(result) if isinstance(result, str) else result)
    return results


def assert_video_readable(stack: RunningStack, api_key: str, video_id: str) -> None:
    """Completed, and its MP4 downloads: the webhook's failure left the video alone."""
    video = stack.client.get_video(api_key, video_id).json()
    assert video["status"] == "completed", video
    content = requests.get(
        f"{stack.api}/v1/videos/{video_id}/content", headers=stack.headers(api_key), timeout=30
    )
    assert content.status_code == 200, content.text
    assert content.content[4:8] == b"ftyp"  # an MP4


def test_a_receiver_that_always_fails_gets_the_schedule_plus_one_attempts_then_nothing(
    stack: RunningStack,
) -> None:
    """docs/api.md "Webhooks": tried again after each wait of WEBHOOK_RETRY_SECONDS, so a receiver
    that never answers 2xx gets one attempt more than the schedule has waits, and then none."""
    attempts = len(webhook_schedule(stack)) + 1
    app = stack.client.create_app("pro")
    with Receiver(failures=1_000_000) as receiver:  # 500 to everything
        path = f"/always-500/{app.id}"
        created = stack.client.create_video(
            app.api_key, {"prompt": "A lighthouse", "webhook_url": receiver.url(path)}
        )
        assert created.status_code == 202, created.text
        video_id = created.json()["id"]
        # The orchestration ends only after its last attempt; once ended, it schedules nothing
        # more: whatever the receiver has seen by then is every attempt there will be.
        history = finished_orchestration(stack, video_id, timeout=90)
        assert json.loads(history)["runtimeStatus"] == "Completed"
        deliveries = receiver.on(path)

    assert [delivery.answered for delivery in deliveries] == [500] * attempts
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 1  # one event, retried
    # Each attempt was a whole activity run that reported "not delivered", and there were no more.
    assert delivery_results(history) == [False] * attempts
    # The video is finished and readable, and its record says nothing of the webhook.
    assert json.loads(history)["output"]["status"] == "completed"
    assert_video_readable(stack, app.api_key, video_id)


def test_a_receiver_host_that_resets_the_connection_fails_each_attempt_but_not_the_video(
    stack: RunningStack,
) -> None:
    """The realistic failure of the delivery itself: the receiver's host accepts the connection,
    then resets it without answering. WebhookSender.send turns that into "not delivered" (it
    never raises for the receiver's sake) and logs it; the orchestration retries on schedule."""
    attempts = len(webhook_schedule(stack)) + 1
    app = stack.client.create_app("pro")
    with ResettingReceiver() as receiver:
        created = stack.client.create_video(
            app.api_key, {"prompt": "A windmill", "webhook_url": receiver.url("/reset")}
        )
        assert created.status_code == 202, created.text
        video_id = created.json()["id"]
        history = finished_orchestration(stack, video_id, timeout=90)
        assert json.loads(history)["runtimeStatus"] == "Completed"
        arrived = receiver.requests

    # Every attempt reached the host with the signed event before it was cut off ...
    assert len(arrived) == attempts
    assert all(request.startswith(b"POST /reset ") for request in arrived)
    assert all(f"evt_{video_id}".encode() in request for request in arrived)
    # ... ended its activity normally as "not delivered" (not a crash of the activity) ...
    assert delivery_results(history) == [False] * attempts
    # ... and was logged by the sender, once per attempt, with the error's code.
    log = stack.log_path.read_text(errors="replace")
    assert log.count(f"webhook evt_{video_id} not delivered: invalid_value") == attempts
    assert f"webhook evt_{video_id} answered" not in log
    assert json.loads(history)["output"]["status"] == "completed"
    assert_video_readable(stack, app.api_key, video_id)


def test_failed_event_is_sent_for_a_refused_video(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    with Receiver() as receiver:
        path = "/failed"
        body = {"prompt": "not allowed #sim:blocked", "webhook_url": receiver.url(path)}
        stack.client.create_video(app.api_key, body)
        wait_for_deliveries(receiver, path, 1)
    event = Webhook(app.webhook_secret).verify(receiver.on(path)[0].body, receiver.on(path)[0].headers)
    assert event["type"] == "video.failed"
    assert event["data"]["error"] == {
        "code": "content_policy_violation",
        "message": failure_message("content_policy_violation"),  # never the upstream's words
    }


def test_tampered_body_or_signature_or_wrong_secret_fails_verification(stack: RunningStack) -> None:
    app, other = stack.client.create_app("pro"), stack.client.create_app("pro")
    with Receiver() as receiver:
        stack.client.create_video(app.api_key, {"prompt": "A lantern", "webhook_url": receiver.url("/t")})
        wait_for_deliveries(receiver, "/t", 1)
    delivery = receiver.on("/t")[0]
    event = json.loads(delivery.body)
    event["data"]["status"] = "failed"
    tampered_body = json.dumps(event).encode()
    signature = delivery.headers["webhook-signature"]
    tampered_signature = {
        **delivery.headers,
        "webhook-signature": signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB"),
    }

    with pytest.raises(WebhookVerificationError):
        Webhook(app.webhook_secret).verify(tampered_body, delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(app.webhook_secret).verify(delivery.body, tampered_signature)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.webhook_secret).verify(delivery.body, delivery.headers)
    assert (
        Webhook(app.webhook_secret).verify(delivery.body, delivery.headers)["id"]
        == delivery.headers["webhook-id"]
    )


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/hook", "invalid_value"),
        ("http://169.254.169.254/latest/meta-data", "invalid_value"),
        ("not a url", "invalid_value"),
    ],
)
def test_unsafe_webhook_urls_are_refused_and_cost_nothing(stack: RunningStack, url: str, code: str) -> None:
    app = stack.client.create_app("pro")
    response = stack.client.create_video(app.api_key, {"prompt": "p", "webhook_url": url})
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, "webhook_url")
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of this module's own, whose Azurite a test may pause without disturbing others."""
    with stack_until_jobs_end(tmp_path_factory.mktemp("webhook-storage")) as running:
        yield running


def test_a_delivery_activity_that_raises_counts_as_a_failed_attempt_and_the_next_one_delivers(
    own_stack: RunningStack,
) -> None:
    """The activity itself failing, as it really can: it reads the job and the app from storage
    before sending, and storage that hangs makes that read raise (StorageUnavailable, after the
    storage seam's timeout). Azurite is paused for real (SIGSTOP) from the receiver while it is
    answering the first attempt, so the second attempt's reads meet it; it is resumed once that
    attempt has failed. The orchestration must count the failure as an attempt and go on."""
    stack = own_stack
    azurite = pid_listening_on(
        int(re.findall(r"TableEndpoint=http://127.0.0.1:(\d+)/", stack.storage_connection_string)[0])
    )
    app = stack.client.create_app("pro")
    pause = threading.Event()

    def pause_storage_on_the_first(delivery: Delivery) -> None:
        if not pause.is_set():
            pause.set()
            os.kill(azurite, signal.SIGSTOP)

    try:
        with Receiver(failures=1, before_answer=pause_storage_on_the_first) as receiver:
            created = stack.client.create_video(
                app.api_key, {"prompt": "A kingfisher", "webhook_url": receiver.url("/paused")}
            )
            assert created.status_code == 202, created.text
            video_id = created.json()["id"]
            # Resume storage as soon as an attempt has failed in the activity (the task hub, read
            # here, is not in Azurite).
            wait_until(lambda: failed_deliveries(stack, video_id), timeout=60)
            os.kill(azurite, signal.SIGCONT)
            history = finished_orchestration(stack, video_id, timeout=60)
    finally:
        os.kill(azurite, signal.SIGCONT)  # never leave the stack's storage stopped

    assert json.loads(history)["runtimeStatus"] == "Completed"
    failures = failed_deliveries(stack, video_id)
    assert failures, "no delivery activity failed while storage was paused"
    assert all("StorageUnavailable" in failure for failure in failures), failures
    # The host logs the failed run with its exception (the activity did raise; it did not just
    # report "not delivered").
    log = stack.log_path.read_text(errors="replace")
    assert re.search(rf"activity deliver_webhook \(instance {video_id}, task \d+\): Failed", log)
    # The receiver saw the first attempt (500) and the one after storage came back (204): the
    # failed activity runs sent nothing, yet counted, and delivery did not stop there.
    deliveries = receiver.on("/paused")
    assert [delivery.answered for delivery in deliveries] == [500, 204]
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 1
    results = delivery_results(history)
    assert (results[0], results[-1]) == (False, True)
    # Every run, failed or not, was one of the schedule's attempts.
    assert len(results) + len(failures) <= len(webhook_schedule(stack)) + 1
    assert json.loads(history)["output"]["status"] == "completed"
    assert_video_readable(stack, app.api_key, video_id)


def failed_deliveries(stack: RunningStack, instance_id: str) -> list[str]:
    """The failure details of the instance's deliver_webhook runs that raised."""
    response = stack.management_get(f"instances/{instance_id}", showHistory="true", showHistoryOutput="true")
    response.raise_for_status()
    return [
        json.dumps(event)
        for event in response.json().get("historyEvents") or []
        if event.get("FunctionName") == "deliver_webhook" and event["EventType"] == "TaskFailed"
    ]
