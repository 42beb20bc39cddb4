"""The async video handlers never block the event loop: each blocking step runs in a thread.

The handlers are async because the durable client is; storage, body parsing, the DNS look-up
of a webhook URL and an image's fetch and decoding would stall every other request on the
worker's loop. Each blocking dependency
is replaced by a stand-in that records whether it ran on the loop's thread, and the handlers are
called as the Functions worker calls them. No stack needed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

import api.intake
import api.video_views
import api.videos
from api.forms import read_fields
from gateway.apps import App
from gateway.jobs import Job
from gateway.quota import Limits, Usage
from gateway.settings import Settings
from gateway.submissions import Accepted, Reservation

SETTINGS = Settings.from_env(
    {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AZURE_OPENAI_ENDPOINT": "https://x.invalid",
        "SORA_DEPLOYMENTS": '{"sora-2": "sora-2"}',
    }
)
APP = App(id="app_loop", name="loop", plan="pro", created_at=0, key_hash="h", webhook_secret="s")
SOURCE = Job(
    id="video_source",
    app_id=APP.id,
    model="sora-2",
    prompt="p",
    seconds="4",
    size="720x1280",
    created_at=0,
    status="completed",
    upstream_id="up_source",
)
USAGE = Usage(limits=Limits(hour=5, day=20), used={"hour": 1, "day": 1}, resets_at={"hour": 1, "day": 1})
BODY = {"prompt": "A harbour at dusk", "webhook_url": "https://hooks.example.com/video"}


class Calls:
    """Which blocking step ran where."""

    def __init__(self) -> None:
        self.where: list[tuple[str, str]] = []

    def off_loop[**P, R](self, name: str, work: Callable[P, R]) -> Callable[P, R]:
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                asyncio.get_running_loop()
                self.where.append((name, "event loop"))
            except RuntimeError:
                self.where.append((name, "thread"))
            return work(*args, **kwargs)

        return guarded

    def on_the_loop(self) -> list[str]:
        return [name for name, where in self.where if where == "event loop"]

    def names(self) -> set[str]:
        return {name for name, _ in self.where}


class StandInSubmissions:
    def __init__(self, calls: Calls) -> None:
        self.reserve = calls.off_loop("reserve", self._reserve)
        self.record = calls.off_loop("record", self._record)
        self.abandon = calls.off_loop("abandon", lambda reservation: None)

    def _reserve(self, app: App, limits: Any, submission: Any) -> Reservation:
        return Reservation(app=app, submission=submission, job_id="video_new", created_at=0, usage=USAGE)

    def _record(self, reservation: Reservation, reference: Any) -> Accepted:
        spec = reservation.submission.spec
        job = Job(
            id=reservation.job_id,
            app_id=reservation.app.id,
            model=spec.model,
            prompt=spec.prompt,
            seconds=spec.seconds,
            size=spec.size,
            created_at=0,
            webhook_url=reservation.submission.webhook_url,
        )
        return Accepted(job=job, usage=USAGE)


class StandInJobs:
    def update_job(self, app_id: str, job_id: str, **changes: Any) -> Job:
        return Job(**{**SOURCE.__dict__, "id": job_id, **changes})


class StandInDurableClient:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.events: list[str] = []

    async def start_new(self, name: str, instance_id: str, client_input: Any) -> str:
        self.started.append(instance_id)
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.events.append(instance_id)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    patches: dict[tuple[Any, str], Callable[..., Any]] = {
        (api.videos, "authenticate_app"): lambda req: APP,
        (api.videos, "get_owned_job"): lambda app, video_id: SOURCE,
        (api.videos, "read_fields"): read_fields,
        (api.videos, "render"): lambda job, settings=None: {"id": job.id},
        (api.videos, "get_submissions"): lambda: StandInSubmissions(recorded),
        (api.videos, "get_job_store"): StandInJobs,
        # The webhook URL's DNS look-up (and an image URL's fetch) happen in intake.
        (api.intake, "check_public_url"): lambda url, **kwargs: None,
        (api.intake, "fetch_limited"): lambda url, **kwargs: (b"", None),
    }
    for (module, name), work in patches.items():
        monkeypatch.setattr(module, name, recorded.off_loop(name, work))
    monkeypatch.setattr(api.videos, "get_settings", lambda: SETTINGS)
    monkeypatch.setattr(api.video_views, "get_settings", lambda: SETTINGS)
    return recorded


def handler(builder: Any) -> Callable[..., Any]:
    """The handler as registered, under the durable middleware that would build the real client
    from its binding string: the stand-in client is handed in directly instead."""
    function: Callable[..., Any] = builder._function.get_user_function().__wrapped__
    return function


def request(method: str, url: str, body: Any = None, **route_params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=url,
        headers={"Content-Type": "application/json", "Authorization": "Bearer k"},
        body=json.dumps(body).encode() if body is not None else b"",
        route_params=route_params,
    )


def test_create_runs_every_blocking_step_in_a_thread(calls: Calls) -> None:
    client = StandInDurableClient()
    response = asyncio.run(
        handler(api.videos.create_video)(request("POST", "http://h/api/v1/videos", BODY), client)
    )

    assert response.status_code == 202, response.get_body()
    assert client.started == ["video_new"]
    assert {
        "authenticate_app",
        "read_fields",
        "check_public_url",
        "reserve",
        "record",
        "render",
    } <= calls.names()
    assert calls.on_the_loop() == []


def test_create_with_an_image_url_fetches_and_decodes_in_threads_after_the_slot(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        api.intake, "prepare_reference_image", calls.off_loop("decode", lambda data, size: None)
    )
    body = {**BODY, "input_reference": {"image_url": "https://images.example.com/a.png"}}
    response = asyncio.run(
        handler(api.videos.create_video)(
            request("POST", "http://h/api/v1/videos", body), StandInDurableClient()
        )
    )

    assert response.status_code == 202, response.get_body()
    assert calls.on_the_loop() == []
    order = [name for name, _ in calls.where]
    # The image is fetched and decoded only once the quota slot is held, and before the record.
    assert (
        order.index("reserve") < order.index("fetch_limited") < order.index("decode") < order.index("record")
    )


def test_remix_runs_every_blocking_step_in_a_thread(calls: Calls) -> None:
    client = StandInDurableClient()
    remix = request("POST", "http://h/api/v1/videos/video_source/remix", BODY, video_id=SOURCE.id)

    response = asyncio.run(handler(api.videos.remix_video)(remix, client))

    assert response.status_code == 202, response.get_body()
    assert client.started == ["video_new"]
    # The remix's webhook URL is resolved (DNS) too: that must not happen on the loop.
    assert {"authenticate_app", "get_owned_job", "read_fields", "check_public_url", "reserve", "record"} <= (
        calls.names()
    )
    assert calls.on_the_loop() == []


def test_cancel_runs_every_blocking_step_in_a_thread(calls: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    running = Job(**{**SOURCE.__dict__, "status": "in_progress"})
    monkeypatch.setattr(api.videos, "get_owned_job", calls.off_loop("get_owned_job", lambda app, _: running))
    client = StandInDurableClient()

    response = asyncio.run(
        handler(api.videos.delete_video)(
            request("DELETE", "http://h/api/v1/videos/video_source", video_id=SOURCE.id), client
        )
    )

    assert response.status_code == 200, response.get_body()
    assert client.events == [SOURCE.id]
    assert {"authenticate_app", "get_owned_job", "get_job_store"} <= calls.names()
    assert calls.on_the_loop() == []
