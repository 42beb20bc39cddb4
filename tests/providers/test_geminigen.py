"""Conformance of the GeminiGen adapter (gateway.providers.geminigen) against the simulator's
GeminiGen protocol (sorasim.geminigen), over real HTTP on loopback.

Documented facts relied on (GeminiGen's own reference was mostly unavailable: the Sora page of
its docs, otherwise third-party clients and test doubles, so each is [weak] unless it is on that
page):

- base `/uapi/v1`, header `x-api-key`; create is multipart/form-data at `video-gen/sora`
  (duration 10|15, aspect_ratio landscape|portrait, resolution small=720p|large=1080p, image as
  `files`) [docs] and `video-gen/veo` (duration 4|6|8, aspect_ratio 16:9|9:16, resolution
  720p|1080p, `ref_images` with `mode_image`) [clients];
- the answer and `GET history/{uuid}`: `uuid`, `status` 1/2/3 (0 queued), `status_percentage`,
  `error_code`/`error_message`, result at `generated_video[0].video_url`, `thumbnail_url`;
  results downloaded from a CDN without the key [clients];
- errors `{"detail": {"error_code", "error_message"}}`: API_KEY_REQUIRED, API_KEY_NOT_FOUND (404
  in one double), GEMINI_RAI_MEDIA_FILTERED, SYSTEM_ERROR, RATE_LIMIT_ERROR (429 + retry-after)
  [an integration note, one test double];
- no listing relied on, no idempotency: a create whose answer is lost is ambiguous.

What these tests cannot show: that the real service behaves like the simulator.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.providers.geminigen import GeminiGenProvider, _video, build
from gateway.providers.port import ProviderAccount, ProviderVideo, ReferenceFile, VideoRequest
from sorasim import SimulatorConfig, SoraSimulator
from tests.mp4 import boxes, duration_seconds, video_dimensions
from tests.providers.support import download, jobs_created, marker
from tests.simulator.support import png_bytes

KEY = "test-geminigen-key-" + "k" * 16
KNOBS: dict[str, Any] = {
    "job_seconds": 1.5,
    "fault_rate": 0.0,
    "creates_per_minute": 0,
    "fault_kinds": "429,500,503,dropped",
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def simulator() -> Iterator[SoraSimulator]:
    config = SimulatorConfig(geminigen_key=KEY, **KNOBS)
    with SoraSimulator(config, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def sim(simulator: SoraSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoraSimulator]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    simulator.update_config(**KNOBS)
    simulator.reset()
    yield simulator
    simulator.update_config(**KNOBS)
    simulator.reset()


def account(sim: SoraSimulator, key: str = KEY, **options: str) -> ProviderAccount:
    return ProviderAccount(
        name="geminigen-test", kind="geminigen", base_url=f"{sim.url}/uapi/v1", api_key=key, options=options
    )


@pytest.fixture
def provider(sim: SoraSimulator) -> Iterator[GeminiGenProvider]:
    adapter = GeminiGenProvider(account(sim))
    yield adapter
    adapter.close()


def sora(prompt: str, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": "sora-2",
        "prompt": prompt,
        "seconds": 10,
        "size": "1280x720",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    return VideoRequest(**{**fields, **changes})


def veo(prompt: str, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": "veo-3.1-fast",
        "prompt": prompt,
        "seconds": 4,
        "size": "1280x720",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    return VideoRequest(**{**fields, **changes})


def wait_until_finished(
    provider: GeminiGenProvider, video_id: str, timeout: float = 15.0
) -> list[ProviderVideo]:
    seen: list[ProviderVideo] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = provider.get(video_id)
        seen.append(video)
        if video.finished:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{video_id} did not finish within {timeout}s: {seen[-1]}")


# -- the happy path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_for", "seconds", "aspect_ratio", "resolution", "pixels"),
    [
        (sora, 10, "16:9", "720p", (1280, 720)),
        (sora, 15, "9:16", "1080p", (1080, 1920)),
        (veo, 4, "16:9", "720p", (1280, 720)),
        (veo, 6, "9:16", "1080p", (1080, 1920)),
    ],
)
def test_create_progress_complete_and_download_a_real_mp4(
    sim: SoraSimulator,
    provider: GeminiGenProvider,
    request_for: Any,
    seconds: int,
    aspect_ratio: str,
    resolution: str,
    pixels: tuple[int, int],
) -> None:
    tag = marker()
    size = f"{pixels[0]}x{pixels[1]}"
    request = request_for(
        f"a lighthouse at dusk {tag}",
        seconds=seconds,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        size=size,
    )
    started = time.time()
    created = provider.create(request)

    assert created.status in ("queued", "in_progress")
    assert str(uuid.UUID(created.id)) == created.id  # GeminiGen jobs are known by uuid
    assert (created.prompt, created.model) == (request.prompt, request.model)
    assert created.created_at is not None
    assert abs(created.created_at - started) < 5
    assert jobs_created(sim, tag) == 1

    seen = wait_until_finished(provider, created.id)
    final = seen[-1]
    assert final.status == "completed", final
    assert final.progress == 100
    running = [video.progress for video in seen if video.status == "in_progress"]
    assert running == sorted(running), "progress never goes back"
    assert any(progress is not None and 0 < progress < 100 for progress in running)
    assert len(set(running)) >= 2, f"progress did not rise: {running}"

    data = download(provider, created.id)
    assert boxes(data)[0][0] == "ftyp"
    assert duration_seconds(data) == pytest.approx(seconds, abs=0.5)
    assert video_dimensions(data) == pixels


def test_thumbnail_is_a_jpeg(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    assert provider.capabilities.thumbnail
    created = provider.create(veo(f"thumbnail {marker()}"))
    assert wait_until_finished(provider, created.id)[-1].status == "completed"
    assert download(provider, created.id, "thumbnail")[:3] == b"\xff\xd8\xff"


def test_unfinished_video_has_no_asset(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    sim.update_config(job_seconds=30.0)
    created = provider.create(veo(f"not yet {marker()}"))
    with pytest.raises(UpstreamRejectedError) as caught:
        download(provider, created.id)
    assert caught.value.code == "video_not_ready"


# -- image input -----------------------------------------------------------------------------


def sent_bodies(provider: GeminiGenProvider) -> list[requests.PreparedRequest]:
    """Every request the adapter's session sends, as sent (a response hook sees its request)."""
    sent: list[requests.PreparedRequest] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.request)

    provider._session.hooks["response"].append(record)
    return sent


@pytest.mark.parametrize(("request_for", "part"), [(sora, "files"), (veo, "ref_images")])
def test_reference_image_goes_as_a_file_part(
    sim: SoraSimulator, provider: GeminiGenProvider, request_for: Any, part: str
) -> None:
    assert provider.capabilities.image_input
    sent = sent_bodies(provider)
    image = ReferenceFile("first.png", png_bytes(1280, 720), "image/png")
    created = provider.create(request_for(f"from an image {marker()}", reference=image))

    body = sent[0].body
    assert isinstance(body, bytes)
    assert sent[0].headers["Content-Type"].startswith("multipart/form-data")
    assert f'name="{part}"; filename="first.png"'.encode() in body
    assert image.content in body
    assert wait_until_finished(provider, created.id)[-1].status == "completed"


@pytest.mark.parametrize("request_for", [sora, veo])
def test_reference_that_is_not_an_image_is_refused(
    sim: SoraSimulator, provider: GeminiGenProvider, request_for: Any
) -> None:
    # The simulator inspects uploads only in the family's image fields: a refusal proves the
    # reference went in one of them.
    tag = marker()
    not_an_image = ReferenceFile("notes.png", b"plain text, not pixels", "image/png")
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(request_for(f"bad image {tag}", reference=not_an_image))
    assert caught.value.status == 422
    assert caught.value.code == "invalid_request"
    assert jobs_created(sim, tag) == 0


def test_text_only_create_is_multipart_too(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    sent = sent_bodies(provider)
    provider.create(sora(f"text only {marker()}", seconds=15))
    assert sent[0].headers["Content-Type"].startswith("multipart/form-data")
    body = sent[0].body
    assert isinstance(body, bytes)
    for name, value in [("duration", "15"), ("aspect_ratio", "landscape"), ("resolution", "small")]:
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body


# -- refusals and failures -------------------------------------------------------------------


def test_blocked_prompt_is_refused_by_the_content_policy(
    sim: SoraSimulator, provider: GeminiGenProvider
) -> None:
    tag = marker()
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(sora(f"something #sim:blocked {tag}"))
    assert caught.value.code == "content_policy_violation"
    assert caught.value.status == 400
    assert jobs_created(sim, tag) == 0
    assert sim.stats()["creates_blocked"] == 1


def test_job_failing_part_way_is_failed(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    created = provider.create(veo(f"doomed #sim:fail {marker()}"))
    seen = wait_until_finished(provider, created.id)
    final = seen[-1]
    assert final.status == "failed"
    assert final.error_code == "video_generation_failed"
    assert (final.error_message or "").startswith("SYSTEM_ERROR")
    assert 0 < (final.progress or 0) < 100
    with pytest.raises(UpstreamRejectedError) as caught:
        download(provider, created.id)
    assert caught.value.code == "video_not_ready"


def test_failed_job_statuses_map_without_the_simulator() -> None:
    filtered = _video(
        {"uuid": "u", "status": 3, "error_code": "GEMINI_RAI_MEDIA_FILTERED", "error_message": "no"}
    )
    assert (filtered.status, filtered.error_code) == ("failed", "content_policy_violation")
    queued = _video({"uuid": "u", "status": 0, "status_percentage": 0, "created_at": "2025-11-24T10:03:05"})
    assert (queued.status, queued.progress, queued.created_at) == ("queued", 0, 1763978585)


def test_invalid_value_is_refused_with_the_field(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(veo(f"five seconds {marker()}", seconds=5))
    assert caught.value.status == 422
    assert "duration" in caught.value.message


def test_unknown_job_is_not_found(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.get(str(uuid.uuid4()))
    assert caught.value.status == 404


def test_family_comes_from_the_model_or_the_account(sim: SoraSimulator) -> None:
    plain = GeminiGenProvider(account(sim))
    assert (plain.family_of("sora-2-pro"), plain.family_of("veo-3.1-lite")) == ("sora", "veo")
    with pytest.raises(UpstreamRejectedError) as caught:
        plain.family_of("kling-2")
    assert caught.value.code == "unsupported_model"
    assert GeminiGenProvider(account(sim, family="veo")).family_of("kling-2") == "veo"
    plain.close()


# -- throttling, faults, lost answers --------------------------------------------------------


def test_creation_quota_throttles_with_retry_after(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    sim.update_config(creates_per_minute=1)
    tag = marker()
    provider.create(veo(f"first {tag}"))
    with pytest.raises(UpstreamThrottled) as caught:
        provider.create(veo(f"second {tag}"))
    assert caught.value.status == 429
    assert (caught.value.retry_after or 0) >= 1
    assert jobs_created(sim, tag) == 1


@pytest.mark.parametrize("kind", ["500", "503", "dropped"])
def test_faults_on_polls_are_transient(sim: SoraSimulator, provider: GeminiGenProvider, kind: str) -> None:
    created = provider.create(veo(f"flaky polls {marker()}"))
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamTransientError) as caught:
        provider.get(created.id)
    assert not isinstance(caught.value, UpstreamThrottled)
    sim.update_config(fault_rate=0.0)
    assert provider.get(created.id).id == created.id  # safe to ask again


def test_throttling_fault_on_a_poll_carries_retry_after(
    sim: SoraSimulator, provider: GeminiGenProvider
) -> None:
    created = provider.create(veo(f"throttled poll {marker()}"))
    sim.update_config(fault_rate=1.0, fault_kinds="429")
    with pytest.raises(UpstreamThrottled) as caught:
        provider.get(created.id)
    assert caught.value.retry_after in (1.0, 2.0)


@pytest.mark.parametrize("kind", ["dropped", "500", "503"])
def test_create_whose_answer_is_lost_is_ambiguous(
    sim: SoraSimulator, provider: GeminiGenProvider, kind: str
) -> None:
    assert not provider.capabilities.find_recent  # nothing to adopt from: it must not be retried
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamAmbiguousError):
        provider.create(sora(f"lost answer {marker()}"))


def test_throttled_create_is_not_ambiguous(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    sim.update_config(fault_rate=1.0, fault_kinds="429")
    with pytest.raises(UpstreamThrottled):
        provider.create(sora(f"throttled create {marker()}"))


def test_create_that_never_connected_is_transient(sim: SoraSimulator) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = ProviderAccount(
        name="geminigen-test", kind="geminigen", base_url=f"http://127.0.0.1:{port}/uapi/v1", api_key=KEY
    )
    adapter = GeminiGenProvider(refused)
    with pytest.raises(UpstreamTransientError) as caught:
        adapter.create(sora("never sent"))
    assert not isinstance(caught.value, UpstreamAmbiguousError)
    adapter.close()


def test_create_that_times_out_reading_is_ambiguous(sim: SoraSimulator) -> None:
    """A server that takes the request and never answers: it may have made the job."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        silent = ProviderAccount(
            name="geminigen-test", kind="geminigen", base_url=f"http://127.0.0.1:{port}/uapi/v1", api_key=KEY
        )
        adapter = GeminiGenProvider(silent, timeout=(2.0, 0.5))
        with pytest.raises(UpstreamAmbiguousError):
            adapter.create(sora("silent upstream"))
        adapter.close()
        thread.join(5)
        for connection in accepted:
            connection.close()


# -- credentials ---------------------------------------------------------------------------


def test_wrong_key_is_access_denied_and_never_told(sim: SoraSimulator) -> None:
    wrong = "wrong-key-" + uuid.uuid4().hex
    adapter = build(account(sim, key=wrong))
    for call in (
        lambda: adapter.create(sora(f"wrong key {marker()}")),
        lambda: adapter.get(str(uuid.uuid4())),
    ):
        with pytest.raises(UpstreamRejectedError) as caught:
            call()
        error = caught.value
        assert error.code == "upstream_access_denied"
        assert error.status == 401  # even though GeminiGen says 404 for an unknown key
        assert "API_KEY_NOT_FOUND" in error.message
        assert wrong not in f"{error} {error.message} {error!r} {error.args}"
    assert wrong not in repr(account(sim, key=wrong))
    adapter.close()


def test_missing_key_answer_is_api_key_required(sim: SoraSimulator) -> None:
    response = requests.get(f"{sim.url}/uapi/v1/history/{uuid.uuid4()}", timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "detail": {"error_code": "API_KEY_REQUIRED", "error_message": "Api key is required"}
    }


def test_key_never_goes_to_the_cdn(sim: SoraSimulator, provider: GeminiGenProvider) -> None:
    sent = sent_bodies(provider)
    created = provider.create(veo(f"cdn {marker()}"))
    wait_until_finished(provider, created.id)
    download(provider, created.id)
    download(provider, created.id, "thumbnail")

    api = [request for request in sent if "/uapi/v1/" in (request.url or "")]
    cdn = [request for request in sent if "/_cdn/geminigen/" in (request.url or "")]
    assert api
    assert all(request.headers.get("x-api-key") == KEY for request in api)
    assert len(cdn) == 2
    for request in cdn:
        assert "x-api-key" not in request.headers
        assert "Authorization" not in request.headers
        assert KEY not in str(request.headers)
    # And the CDN really needs no credential.
    assert requests.get(cdn[0].url or "", timeout=10).status_code == 200


# -- the wire as the simulator speaks it ----------------------------------------------------


def test_create_answer_has_the_documented_fields(sim: SoraSimulator) -> None:
    response = requests.post(
        f"{sim.url}/uapi/v1/video-gen/sora",
        files={"prompt": (None, f"wire {marker()}"), "model": (None, "sora-2-pro")},
        headers={"x-api-key": KEY},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    documented = {
        "id", "uuid", "user_id", "model_name", "input_text", "type", "status", "status_desc",
        "status_percentage", "error_code", "error_message", "estimated_credit", "media_type",
        "created_at", "delay_seconds", "expired_at",
    }  # fmt: skip
    assert documented <= set(body)
    assert isinstance(body["id"], int)
    assert isinstance(body["uuid"], str)
    assert (body["status"], body["model_name"], body["type"]) == (1, "sora-2-pro", "video_generation_sora")

    listing = requests.get(
        f"{sim.url}/uapi/v1/histories",
        params={"filter_by": "all", "items_per_page": 10, "page": 1},
        headers={"x-api-key": KEY},
        timeout=10,
    )
    assert listing.json()["result"][0]["uuid"] == body["uuid"]


def test_api_redirect_is_not_followed_with_the_key(sim: SoraSimulator) -> None:
    """requests keeps custom headers across a redirect to another host: x-api-key must not."""
    reached: list[dict[str, str]] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reached.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Elsewhere) as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.server_address[1]}"

        class Redirecting(Elsewhere):
            def do_GET(self) -> None:
                self.send_response(307)
                self.send_header("Location", target + self.path)
                self.end_headers()

        with http.server.HTTPServer(("127.0.0.1", 0), Redirecting) as redirecting:
            threads = [
                threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
                for server in (elsewhere, redirecting)
            ]
            for thread in threads:
                thread.start()
            base = f"http://127.0.0.1:{redirecting.server_address[1]}/uapi/v1"
            adapter = GeminiGenProvider(
                ProviderAccount(name="g", kind="geminigen", base_url=base, api_key=KEY)
            )
            try:
                with pytest.raises(UpstreamRejectedError) as caught:
                    adapter.get(str(uuid.uuid4()))
            finally:
                adapter.close()
                redirecting.shutdown()
                elsewhere.shutdown()
    assert caught.value.status == 307
    assert reached == []
