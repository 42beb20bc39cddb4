"""Faults exactly where they hurt, through the whole local stack: the gateway reaches the Sora
simulator through a proxy that fails only the requests a test chooses (see upstream_proxy)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.blobs import VideoAssets, blob_service
from gateway.messages import failure_message
from sorasim import SimulatorConfig, SoraSimulator
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.images_support import image_bytes
from tests.pipeline.test_outcomes import wait_until
from tests.pipeline.upstream_proxy import (
    CREATE_VIDEO,
    DELETE_VIDEO,
    STATUS_CHECK,
    THUMBNAIL_CONTENT,
    VIDEO_CONTENT,
    Rule,
    UpstreamProxy,
)
from tests.webhooks.receiver import Receiver

MP4_SIGNATURE = b"ftyp"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(job_seconds=3)) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(simulator: SoraSimulator) -> Iterator[UpstreamProxy]:
    with UpstreamProxy(simulator.url) as running:
        yield running


@pytest.fixture(scope="module")
def proxied_stack(
    tmp_path_factory: pytest.TempPathFactory, simulator: SoraSimulator, proxy: UpstreamProxy
) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("proxied"),
        DEVHOST_SIMULATOR="false",
        AZURE_OPENAI_ENDPOINT=proxy.url,
        IDENTITY_ENDPOINT=simulator.token_endpoint,
        IDENTITY_HEADER=simulator.identity_header,
        AZURE_TOKEN_CREDENTIALS="ManagedIdentityCredential",
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_proxy(proxy: UpstreamProxy, simulator: SoraSimulator) -> Iterator[None]:
    yield
    proxy.clear()
    simulator.update_config(job_seconds=3)


class Job:
    """One video through the proxied stack, with what the tests look at."""

    def __init__(self, stack: RunningStack, proxy: UpstreamProxy, body: dict[str, Any] | None = None) -> None:
        self.stack, self.proxy = stack, proxy
        self.app = stack.client.create_app("pro")
        self.prompt = f"A kite over dunes [{uuid.uuid4().hex}]"
        response = stack.client.create_video(self.app.api_key, {"prompt": self.prompt, **(body or {})})
        assert response.status_code == 202, response.text
        self.id: str = response.json()["id"]

    @property
    def upstream_id(self) -> str:
        return wait_until(lambda: self.proxy.created.get(self.prompt))

    def video(self) -> dict[str, Any]:
        return dict(self.stack.client.get_video(self.app.api_key, self.id).json())

    def wait_for(self, *statuses: str, timeout: float = 90) -> dict[str, Any]:
        return self.stack.client.wait_for(self.app.api_key, self.id, statuses, timeout)

    def answers(self, method: str, pattern: str) -> list[int | str]:
        """How the proxy answered this job's requests of `method` matching `pattern`."""
        marker = f"/videos/{self.upstream_id}"
        return [seen.answered for seen in self.proxy.requests_to(method, pattern) if marker in seen.target]

    def upstream_deleted(self) -> bool:
        return 200 in self.answers("DELETE", DELETE_VIDEO)

    def blobs(self) -> list[str]:
        assets = VideoAssets(blob_service(self.stack.storage_connection_string), "videos")
        prefix = f"{self.app.id}/{self.id}/"
        return [name for name, _ in assets.list_blobs() if name.startswith(prefix)]

    def orchestration(self, **params: str) -> dict[str, Any]:
        """The instance's status from the dev host's durable management API (with its key)."""
        response = self.stack.management_get(f"instances/{self.id}", **params)
        response.raise_for_status()
        return dict(response.json())

    def stored_orchestration(self) -> str:
        """Everything the task hub keeps of this job's orchestration, as the management API shows
        it: input, output, and every history event with its activity input and result."""
        response = self.stack.management_get(
            f"instances/{self.id}", showHistory="true", showHistoryOutput="true", showInput="true"
        )
        response.raise_for_status()
        return response.text

    def wait_orchestration_done(self, timeout: float = 30) -> dict[str, Any]:
        return wait_until(lambda: _done(self.orchestration()), timeout=timeout)


def _done(status: dict[str, Any]) -> dict[str, Any] | None:
    return status if status["runtimeStatus"] in ("Completed", "Failed", "Terminated") else None


def test_cancel_while_a_status_check_is_retrying_ends_at_its_next_attempt(
    proxied_stack: RunningStack, proxy: UpstreamProxy, simulator: SoraSimulator
) -> None:
    simulator.update_config(job_seconds=60)
    job = Job(proxied_stack, proxy)
    job.wait_for("in_progress")
    proxy.add(Rule("GET", STATUS_CHECK, status=503))  # every status check now fails, and is retried
    wait_until(lambda: 503 in job.answers("GET", STATUS_CHECK))

    cancelled_at = time.monotonic()
    assert proxied_stack.client.delete_video(job.app.api_key, job.id).status_code == 200

    # The retried check's next attempt (3 s on) sees the cancel mark: the orchestration ends and
    # deletes the upstream job long before the check's eight attempts, or the job, would have.
    wait_until(job.upstream_deleted, timeout=20)
    status = job.wait_orchestration_done()
    assert time.monotonic() - cancelled_at < 20
    assert status["runtimeStatus"] == "Completed"
    assert (status["output"]["status"], status["output"]["error_code"]) == ("failed", "cancelled")
    video = job.video()
    assert (video["status"], video["error"]["code"]) == ("failed", "cancelled")


@pytest.mark.parametrize(
    ("answer", "code"), [(404, "upstream_job_not_found"), (401, "upstream_access_denied")]
)
def test_a_permanent_status_answer_fails_the_job_at_once(
    proxied_stack: RunningStack, proxy: UpstreamProxy, simulator: SoraSimulator, answer: int, code: str
) -> None:
    simulator.update_config(job_seconds=60)
    job = Job(proxied_stack, proxy)
    job.wait_for("in_progress")
    proxy.add(Rule("GET", STATUS_CHECK, status=answer))
    failed = job.wait_for("failed", timeout=20)  # not a timeout after JOB_TIMEOUT_MINUTES
    assert failed["error"] == {"code": code, "message": failure_message(code)}
    # Asked once, not retried eight times: a permanent answer is final.
    assert job.answers("GET", STATUS_CHECK).count(answer) == 1


def test_a_429_during_the_copy_is_waited_out(proxied_stack: RunningStack, proxy: UpstreamProxy) -> None:
    # More 429s than Durable's eight attempts: throttling is waited out, never counted as failure.
    proxy.add(Rule("GET", VIDEO_CONTENT, status=429, retry_after=1, times=9))
    job = Job(proxied_stack, proxy)
    done = job.wait_for("completed", "failed")
    assert done["status"] == "completed"
    assert job.answers("GET", VIDEO_CONTENT) == [429] * 9 + [200]
    assert MP4_SIGNATURE in requests.get(done["video_url"], timeout=10).content[:16]


def test_an_outage_during_the_copy_fails_the_job_cleanly(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    # Every download of the MP4 breaks off half-way: the worst case for a partial blob.
    proxy.add(Rule("GET", VIDEO_CONTENT, cut=True))
    with Receiver() as receiver:
        job = Job(proxied_stack, proxy, {"webhook_url": receiver.url("/hook")})
        failed = job.wait_for("completed", "failed", timeout=150)
        wait_until(lambda: receiver.on("/hook"), timeout=30)
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "upstream_unavailable",
        "message": failure_message("upstream_unavailable"),
    }
    assert failed["video_url"] is None
    assert job.answers("GET", VIDEO_CONTENT) == ["cut"] * 8  # Durable's eight attempts
    assert job.blobs() == []  # no partial MP4, no thumbnail
    wait_until(job.upstream_deleted, timeout=20)
    assert receiver.on("/hook")[0].body.count(b'"video.failed"') == 1
    assert job.wait_orchestration_done()["output"]["error_code"] == "upstream_unavailable"


def test_a_thumbnail_that_cannot_be_fetched_does_not_fail_the_video(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    proxy.add(Rule("GET", THUMBNAIL_CONTENT, status=503))
    job = Job(proxied_stack, proxy)
    done = job.wait_for("completed", "failed")
    assert done["status"] == "completed"
    assert done["thumbnail_url"] is None
    assert job.answers("GET", THUMBNAIL_CONTENT) == [503]  # its own one attempt
    assert job.blobs() == [f"{job.app.id}/{job.id}/video.mp4"]


def test_cancel_during_the_copy_leaves_no_blobs_and_deletes_the_upstream_job(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    release = threading.Event()
    proxy.add(Rule("GET", VIDEO_CONTENT, hold=release, times=1))
    job = Job(proxied_stack, proxy)
    try:
        wait_until(lambda: proxy.held > 0)  # the copy is under way
        assert proxied_stack.client.delete_video(job.app.api_key, job.id).status_code == 200
    finally:
        release.set()
    status = job.wait_orchestration_done()
    assert (status["output"]["status"], status["output"]["error_code"]) == ("failed", "cancelled")
    wait_until(job.upstream_deleted, timeout=20)
    assert job.blobs() == []
    video = job.video()
    assert (video["status"], video["error"]["code"], video["video_url"]) == ("failed", "cancelled", None)


# -- nothing kept that should not be ----------------------------------------------------------


def test_a_completed_job_leaves_no_sas_url_in_the_task_hub(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    job = Job(proxied_stack, proxy)
    done = job.wait_for("completed", "failed")
    assert done["status"] == "completed"
    assert "sig=" in done["video_url"]  # the API signs one as it answers: sending, not storing
    job.wait_orchestration_done()
    stored = job.stored_orchestration()
    status = json.loads(stored)
    assert status["output"]["video_blob"] == f"{job.app.id}/{job.id}/video.mp4"
    # The history really holds the activity results (the store result names the blob) ...
    events = status["historyEvents"]
    assert any("video_blob" in json.dumps(event) for event in events if event.get("FunctionName"))
    # ... and nowhere in input, output or history is there a signed URL, or a link to storage.
    assert "sig=" not in stored
    assert "sig%3D" not in stored
    assert "video_url" not in json.dumps(status["output"])


def reference_image() -> str:
    return "data:image/png;base64," + base64.b64encode(image_bytes(720, 1280)).decode()


def test_a_cancel_while_the_thumbnail_fails_leaves_no_file_of_the_job(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    # The MP4 is copied; the thumbnail download hangs until the cancel is in, then fails (503).
    release = threading.Event()
    proxy.add(Rule("GET", THUMBNAIL_CONTENT, hold=release, status=503, times=1))
    thumbnails_before = len(proxy.requests_to("GET", THUMBNAIL_CONTENT))
    job = Job(proxied_stack, proxy, {"input_reference": reference_image(), "size": "720x1280"})
    prefix = f"{job.app.id}/{job.id}/"
    try:
        wait_until(lambda: proxy.held > 0, timeout=90)  # the video is in storage by now
        assert f"{prefix}video.mp4" in job.blobs()
        assert f"{prefix}reference.png" in job.blobs()
        assert proxied_stack.client.delete_video(job.app.api_key, job.id).status_code == 200
    finally:
        release.set()
    status = job.wait_orchestration_done()
    assert (status["output"]["status"], status["output"]["error_code"]) == ("failed", "cancelled")
    # (A create with an image is multipart, which the proxy does not trace to an upstream id.)
    assert [seen.answered for seen in proxy.requests_to("GET", THUMBNAIL_CONTENT)[thumbnails_before:]] == [
        503
    ]
    # Read from Blob Storage itself, not through the API: not the MP4, not the reference image.
    assert job.blobs() == []
    video = job.video()
    assert (video["status"], video["error"]["code"], video["video_url"]) == ("failed", "cancelled", None)


# What an app must never read in error.message: a method, a path, a status line, a URL, a key.
INTERNALS = re.compile(r"\b(GET|POST|DELETE|PUT)\b|/|\b[1-5]\d\d\b|https?:|api[-_]?key|Bearer|proxy", re.I)


def test_an_upstream_outage_at_create_reads_as_a_product_sentence(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    proxy.add(Rule("POST", CREATE_VIDEO, status=503))  # every create attempt: 503 with a body
    job = Job(proxied_stack, proxy)
    failed = job.wait_for("completed", "failed", timeout=150)
    assert failed["error"] == {
        "code": "upstream_unavailable",
        "message": failure_message("upstream_unavailable"),
    }
    assert INTERNALS.search(failed["error"]["message"]) is None
    assert INTERNALS.search(json.dumps(failed["error"])) is None
    assert len([seen for seen in proxy.requests_to("POST", CREATE_VIDEO) if seen.answered == 503]) >= 8


def test_an_upstream_code_that_is_not_a_code_is_not_shown(
    proxied_stack: RunningStack, proxy: UpstreamProxy
) -> None:
    # A refusal whose "code" is the upstream's text: a verb, a path and a status line.
    proxy.add(Rule("POST", CREATE_VIDEO, status=400, code="POST /openai/v1/videos: 400 Bad Request"))
    job = Job(proxied_stack, proxy)
    failed = job.wait_for("completed", "failed", timeout=60)
    assert failed["error"] == {"code": "upstream_error", "message": failure_message("upstream_error")}
    assert INTERNALS.search(json.dumps(failed["error"])) is None
