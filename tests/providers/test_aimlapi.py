"""Conformance of the AI/ML API adapter (gateway.providers.aimlapi) against the simulator's aimlapi
protocol (sorasim.aimlapi), over real HTTP on loopback.

Documented facts relied on (AI/ML API docs: video-models schemas, universal-video-fetch,
errors-and-messages), as the simulator reproduces them:

- create `POST /v2/video/generations` JSON {model, prompt, duration, aspect_ratio, resolution,
  image_url for i2v}, bearer key; the answer is the poll object, usually `queued`;
- poll `GET /v2/video/generations?generation_id=<id>`; ids are opaque and contain `:` and `/`;
  statuses queued | generating | completed | error, no progress; `video.url` when completed,
  `error: {name, message}` when failed; content refusals arrive as `status: "error"`;
- the video is fetched from `video.url` without the key;
- errors {message, path, requestId, statusCode, timestamp}: 400 "Body validation error!",
  401 bad key, 429 "Too Many Requests" without Retry-After, 5xx;
- no list, delete or idempotency endpoints: a create whose answer is lost is ambiguous.

Documented variants the simulator does not produce (`generation_id` instead of `id`,
`succeeded`/`failed`/`waiting`, 403 out of credits, 502/504, a 200 without an id) are checked
against a scripted loopback server at the end.

Not verifiable here: the real service's refusal names, whether Veo i2v takes a `data:` URL,
what the real CDN does with an Authorization header (the simulated one refuses it so a leak shows).
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.providers import aimlapi
from gateway.providers.aimlapi import AimlApiProvider
from gateway.providers.port import ProviderAccount, ProviderVideo, ReferenceFile, VideoProvider, VideoRequest
from sorasim import SimulatorConfig, SoraSimulator
from tests import mp4
from tests.mp4 import video_dimensions
from tests.providers.support import jobs_created, options_created
from tests.simulator.support import png_bytes

KEY = "sim-aimlapi-key-" + "k" * 24
BASELINE_KNOBS: dict[str, Any] = {
    "job_seconds": 1.0,
    "fault_rate": 0.0,
    "fault_kinds": "429,500,503,dropped",
    "creates_per_minute": 0,
    "video_bytes": 0,
}


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[SoraSimulator]:
    config = SimulatorConfig(aimlapi_key=KEY, **BASELINE_KNOBS)
    with SoraSimulator(config, host="127.0.0.1", port=0) as simulator:
        yield simulator


@pytest.fixture
def sim(shared_simulator: SoraSimulator) -> Iterator[SoraSimulator]:
    shared_simulator.update_config(**BASELINE_KNOBS)
    shared_simulator.reset()
    yield shared_simulator
    shared_simulator.update_config(**BASELINE_KNOBS)
    shared_simulator.reset()


@pytest.fixture
def sent() -> list[requests.PreparedRequest]:
    """Every request the provider's session sent, as it went on the wire."""
    return []


@pytest.fixture
def provider(sim: SoraSimulator, sent: list[requests.PreparedRequest]) -> Iterator[AimlApiProvider]:
    session = requests.Session()
    session.trust_env = False
    session.hooks["response"].append(lambda response, *args, **kwargs: sent.append(response.request))
    with session:
        adapter = AimlApiProvider(account(sim.url), session=session)
        yield adapter
        adapter.close()


def account(base_url: str, key: str = KEY) -> ProviderAccount:
    return ProviderAccount(name="aimlapi-test", kind="aimlapi", base_url=base_url, api_key=key)


def veo(prompt: str, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": "google/veo-3.1-t2v",
        "prompt": prompt,
        "seconds": 4,
        "size": "1280x720",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    fields.update(changes)
    return VideoRequest(**fields)


def wait_until_finished(provider: VideoProvider, video: ProviderVideo, timeout: float = 15.0) -> list[str]:
    """Poll until the job ends; the statuses seen, in order, the last one final."""
    seen = [video.status]
    deadline = time.monotonic() + timeout
    while not video.finished:
        assert time.monotonic() < deadline, f"{video.id} still {video.status} after {timeout}s"
        time.sleep(0.05)
        video = provider.get(video.id)
        assert video.progress is None  # the provider reports no progress
        if video.status != seen[-1]:
            seen.append(video.status)
    return seen


# -- the happy path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "resolution", "seconds", "pixels"),
    [
        ("google/veo-3.1-t2v", "16:9", "720p", 4, (1280, 720)),
        ("openai/sora-2-t2v", "9:16", "720p", 8, (720, 1280)),
    ],
)
def test_create_runs_completes_and_downloads_the_requested_mp4(
    sim: SoraSimulator,
    provider: AimlApiProvider,
    model: str,
    aspect_ratio: str,
    resolution: str,
    seconds: int,
    pixels: tuple[int, int],
) -> None:
    request = veo(
        "a lighthouse at dusk #aiml-happy",
        model=model,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        seconds=seconds,
        size="x".join(map(str, pixels)),
    )
    video = provider.create(request)

    # Opaque ids with ':' and '/' survive the round trip through the query string.
    assert ":" in video.id
    assert "/" in video.id
    assert video.status == "queued"
    assert video.progress is None
    seen = wait_until_finished(provider, video)
    assert seen == ["queued", "in_progress", "completed"]
    assert jobs_created(sim, "#aiml-happy") == 1

    with provider.open_asset(video.id) as chunks:
        data = b"".join(chunks)
    assert mp4.boxes(data)[0][0] == "ftyp"
    assert abs(mp4.duration_seconds(data) - seconds) < 0.5
    assert video_dimensions(data) == pixels
    assert sim.stats()["downloads"] == 1


def test_image_to_video_sends_the_reference_inline(sim: SoraSimulator, provider: AimlApiProvider) -> None:
    reference = ReferenceFile("start.png", png_bytes(1280, 720), "image/png")
    video = provider.create(veo("from a picture", model="google/veo-3.1-i2v", reference=reference))
    assert wait_until_finished(provider, video)[-1] == "completed"

    # The same model without an image is a body validation error, permanent.
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(veo("no picture", model="google/veo-3.1-i2v"))
    assert raised.value.status == 400
    assert raised.value.code == "invalid_request"
    assert raised.value.message.startswith("Body validation error!")


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "google/veo-9-t2v"},  # unknown model
        {"seconds": 5},  # Veo takes 4, 6 or 8
        {"model": "openai/sora-2-t2v", "seconds": 6},  # Sora takes 4, 8 or 12
        {"model": "openai/sora-2-t2v", "resolution": "1080p"},  # Sora 2 is 720p only
        {"aspect_ratio": "1:1"},
        {"options": {"generate_audio": "no"}},  # a boolean in Veo's schema
        {"options": {"negative_prompt": False}},  # a string in Veo's schema
    ],
)
def test_what_a_model_does_not_take_is_rejected_as_invalid(
    sim: SoraSimulator, provider: AimlApiProvider, changes: dict[str, Any]
) -> None:
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(veo("a shape the model lacks #aiml-invalid", **changes))
    assert raised.value.status == 400
    assert raised.value.code == "invalid_request"
    assert "Body validation error!" in raised.value.message
    assert jobs_created(sim, "#aiml-invalid") == 0


# -- per-request options (gateway.video_options) ---------------------------------------------


def test_veo_models_carry_negative_prompt_and_generate_audio_and_others_none() -> None:
    plain = account("http://127.0.0.1:9")
    for model in ("google/veo-3.1-t2v", "google/veo-3.1-t2v-fast"):
        assert aimlapi.video_options(plain, model) == {"negative_prompt", "generate_audio"}
    assert aimlapi.video_options(plain, "openai/sora-2-t2v") == frozenset()


def test_veo_options_are_sent_at_the_top_level(
    sim: SoraSimulator, provider: AimlApiProvider, sent: list[requests.PreparedRequest]
) -> None:
    options: dict[str, str | bool] = {"negative_prompt": "people", "generate_audio": False}
    provider.create(veo("an empty beach #aiml-options", options=options))
    raw = sent[0].body
    body = json.loads(raw.decode() if isinstance(raw, bytes) else raw or "{}")
    assert {name: body[name] for name in options} == options
    assert options_created(sim, "#aiml-options") == [options]


# -- failures reported by the job ------------------------------------------------------------


def test_a_refused_prompt_is_accepted_then_fails_with_a_code(
    sim: SoraSimulator, provider: AimlApiProvider
) -> None:
    video = provider.create(veo("something not allowed #sim:blocked"))
    assert video.status == "queued"  # refusals are not create errors on this provider
    assert wait_until_finished(provider, video)[-1] == "failed"
    failed = provider.get(video.id)
    assert failed.error_code == "content_policy_violation"
    assert failed.error_message
    with pytest.raises(UpstreamRejectedError) as raised, provider.open_asset(video.id):
        pass
    assert raised.value.code == "video_not_ready"


def test_a_job_failing_part_way_fails_with_its_code(sim: SoraSimulator, provider: AimlApiProvider) -> None:
    video = provider.create(veo("will break #sim:fail"))
    seen = wait_until_finished(provider, video)
    assert seen == ["queued", "in_progress", "failed"]
    failed = provider.get(video.id)
    assert failed.error_code == "video_generation_failed"
    assert failed.error_message


def test_an_unknown_generation_is_not_found(sim: SoraSimulator, provider: AimlApiProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.get("0123abcd:google/veo-3.1-t2v")
    assert raised.value.status == 404
    assert raised.value.code == "not_found"


# -- throttling and transient faults ---------------------------------------------------------


def test_the_creation_quota_throttles_without_making_a_job(
    sim: SoraSimulator, provider: AimlApiProvider
) -> None:
    sim.update_config(creates_per_minute=1)
    first = provider.create(veo("quota one #aiml-quota"))
    with pytest.raises(UpstreamThrottled) as raised:
        provider.create(veo("quota two #aiml-quota"))
    assert raised.value.status == 429
    assert raised.value.retry_after is None  # the provider sends no Retry-After
    assert jobs_created(sim, "#aiml-quota") == 1
    wait_until_finished(provider, first)


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [
        ("500", UpstreamTransientError),
        ("503", UpstreamTransientError),
        ("dropped", UpstreamTransientError),
        ("429", UpstreamThrottled),
    ],
)
def test_faults_on_polls_are_retryable(
    sim: SoraSimulator, provider: AimlApiProvider, kind: str, error_class: type[UpstreamError]
) -> None:
    video = provider.create(veo("polled through faults"))
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(error_class) as raised:
        provider.get(video.id)
    assert not isinstance(raised.value, UpstreamAmbiguousError)
    assert sim.stats()["faults_injected"] == 1
    sim.update_config(fault_rate=0.0)
    assert wait_until_finished(provider, provider.get(video.id))[-1] == "completed"


@pytest.mark.parametrize("kind", ["dropped", "500", "503"])
def test_a_create_whose_answer_is_lost_is_ambiguous(
    sim: SoraSimulator, provider: AimlApiProvider, kind: str
) -> None:
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamAmbiguousError) as raised:
        provider.create(veo("lost answer #aiml-lost"))
    # Not retryable: the provider cannot be asked whether the job exists.
    assert not isinstance(raised.value, UpstreamTransientError)
    assert sim.stats()[f"faults_{kind}"] == 1


def test_a_create_throttled_by_a_fault_is_retryable(sim: SoraSimulator, provider: AimlApiProvider) -> None:
    sim.update_config(fault_rate=1.0, fault_kinds="429")
    with pytest.raises(UpstreamThrottled):
        provider.create(veo("throttled create"))


def test_a_create_that_could_not_connect_is_retryable(sim: SoraSimulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # Nothing listens there any more: the connection is refused, so nothing was sent.
    adapter = AimlApiProvider(account(f"http://127.0.0.1:{closed_port}"))
    try:
        with pytest.raises(UpstreamTransientError) as raised:
            adapter.create(veo("never sent"))
        assert not isinstance(raised.value, UpstreamAmbiguousError)
    finally:
        adapter.close()


def test_a_create_that_times_out_reading_is_ambiguous() -> None:
    """A server that takes the request and never answers: it may have made the job."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received: list[bytes] = []

    def swallow() -> None:
        connection, _ = listener.accept()
        with connection:
            received.append(connection.recv(65536))
            time.sleep(1.5)

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    adapter = AimlApiProvider(account(f"http://127.0.0.1:{listener.getsockname()[1]}"), timeout=(2.0, 0.3))
    try:
        with pytest.raises(UpstreamAmbiguousError):
            adapter.create(veo("slow answer"))
    finally:
        adapter.close()
        thread.join(5)
        listener.close()
    assert received
    assert received[0].startswith(b"POST /v2/video/generations")


# -- credentials -----------------------------------------------------------------------------


def test_a_wrong_key_is_access_denied_and_never_repeated(sim: SoraSimulator) -> None:
    wrong = "wrong-aimlapi-key-" + "w" * 20
    adapter = AimlApiProvider(account(sim.url, key=wrong))
    try:
        for call in (lambda: adapter.create(veo("wrong key")), lambda: adapter.get("abc:google/veo-3.1-t2v")):
            with pytest.raises(UpstreamRejectedError) as raised:
                call()
            assert raised.value.status == 401
            assert raised.value.code == "upstream_access_denied"
            assert wrong not in str(raised.value)
            assert wrong not in repr(raised.value.args)
    finally:
        adapter.close()
    assert sim.stats()["unauthorized"] == 2
    assert wrong not in repr(account(sim.url, key=wrong))


def test_the_key_goes_to_the_api_and_never_to_the_cdn(
    sim: SoraSimulator, provider: AimlApiProvider, sent: list[requests.PreparedRequest]
) -> None:
    video = provider.create(veo("cdn check"))
    wait_until_finished(provider, video)
    sent.clear()
    with provider.open_asset(video.id) as chunks:
        data = b"".join(chunks)
    assert data[4:8] == b"ftyp"

    api = [request for request in sent if "/v2/video/generations" in (request.url or "")]
    cdn = [request for request in sent if "/_cdn/aimlapi/" in (request.url or "")]
    assert len(api) == 1
    assert len(cdn) == 1
    assert api[0].headers["Authorization"] == f"Bearer {KEY}"
    # The opaque id is URL-encoded in the query (':' and '/' escaped).
    assert "generation_id=" + video.id.replace(":", "%3A").replace("/", "%2F") in (api[0].url or "")
    assert "Authorization" not in cdn[0].headers
    assert all(KEY not in str(value) for value in cdn[0].headers.values())

    # The simulated CDN refuses credentials, so a leaking adapter could not download at all.
    leaked = requests.get(cdn[0].url or "", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert leaked.status_code == 403


def test_only_the_video_variant_exists(sim: SoraSimulator, provider: AimlApiProvider) -> None:
    assert provider.capabilities.thumbnail is False
    assert provider.capabilities.image_input is True
    assert provider.capabilities.delete is False
    assert provider.capabilities.find_recent is False
    assert provider.capabilities.remix is False
    with (
        pytest.raises(ValueError, match="thumbnail"),
        provider.open_asset("abc:google/veo-3.1-t2v", "thumbnail"),
    ):
        pass


def test_the_module_builds_a_provider_for_an_account(sim: SoraSimulator) -> None:
    built = aimlapi.build(account(sim.url))
    try:
        assert built.name == "aimlapi-test"
        video = built.create(veo("built by the factory"))
        assert video.status == "queued"
        assert wait_until_finished(built, video)[-1] == "completed"
    finally:
        built.close()


def test_a_data_url_reference_is_checked_by_the_simulator(sim: SoraSimulator) -> None:
    """The simulator's half of the image choice: http(s) URLs on trust, data URLs must be images."""
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "google/veo-3.1-i2v", "prompt": "p", "duration": 4, "resolution": "720p"}
    not_an_image = "data:image/png;base64," + base64.b64encode(b"not an image").decode()
    for image_url, status in (
        ("https://example.invalid/start.png", 200),
        (not_an_image, 400),
        ("ftp://example.invalid/start.png", 400),
    ):
        response = requests.post(
            f"{sim.url}/v2/video/generations",
            json={**body, "image_url": image_url},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == status, response.text
        if status == 400:
            assert set(response.json()) == {"message", "path", "requestId", "statusCode", "timestamp"}


# -- documented variants the simulator does not produce, from a scripted loopback server -----


class ScriptedServer:
    """A loopback HTTP server answering each request with the next scripted (status, body)."""

    def __init__(self, answers: list[tuple[int, Any]], headers: dict[str, str] | None = None) -> None:
        self.answers = list(answers)
        self.extra_headers = headers or {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []
        self.header_values: list[str] = []
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                script.requests.append((self.command, self.path))
                script.authorizations.append(self.headers.get("Authorization"))
                script.header_values.extend(str(value) for value in self.headers.values())
                status, body = script.answers.pop(0)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in script.extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_older_field_names_and_status_words_are_understood() -> None:
    with ScriptedServer(
        [
            (200, {"generation_id": "349865017168125:minimax/hailuo-2.3", "status": "waiting"}),
            (200, {"id": "349865017168125:minimax/hailuo-2.3", "status": "active", "video": None}),
            (200, {"id": "349865017168125:minimax/hailuo-2.3", "status": "succeeded", "video": {"url": "x"}}),
            (200, {"id": "349865017168125:minimax/hailuo-2.3", "status": "failed", "error": None}),
        ]
    ) as server:
        adapter = AimlApiProvider(account(server.url))
        try:
            created = adapter.create(veo("older names"))
            assert (created.id, created.status) == ("349865017168125:minimax/hailuo-2.3", "queued")
            assert adapter.get(created.id).status == "in_progress"
            assert adapter.get(created.id).status == "completed"
            failed = adapter.get(created.id)
            assert (failed.status, failed.error_code) == ("failed", "video_generation_failed")
        finally:
            adapter.close()
    assert server.requests[1] == (
        "GET",
        "/v2/video/generations?generation_id=349865017168125%3Aminimax%2Fhailuo-2.3",
    )


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "message": message,
        "path": "/v2/video/generations",
        "requestId": "798b860e-98c2-4e8e-8c50-550bcfc2eccc",
        "statusCode": str(status),
        "timestamp": "2026-11-26T07:13:27.813Z",
    }


@pytest.mark.parametrize(
    ("status", "body", "error_class", "code"),
    [
        (403, error_body(403, "You've run out of credits."), UpstreamRejectedError, "upstream_access_denied"),
        (429, error_body(429, "Too Many Requests"), UpstreamThrottled, None),
        (502, error_body(502, "Bad Gateway"), UpstreamAmbiguousError, None),
        (504, b"<html>gateway timeout</html>", UpstreamAmbiguousError, None),
        (200, b"not json", UpstreamAmbiguousError, None),
        (200, {"status": "queued"}, UpstreamAmbiguousError, None),  # accepted, but no id to follow
    ],
)
def test_create_answers_are_classified(
    status: int, body: Any, error_class: type[UpstreamError], code: str | None
) -> None:
    with ScriptedServer([(status, body)]) as server:
        adapter = AimlApiProvider(account(server.url))
        try:
            with pytest.raises(error_class) as raised:
                adapter.create(veo("classified"))
        finally:
            adapter.close()
    if code is not None:
        assert isinstance(raised.value, UpstreamRejectedError)
        assert raised.value.code == code
        assert raised.value.message == body["message"]
    if error_class is UpstreamAmbiguousError:
        assert not isinstance(raised.value, UpstreamTransientError)


def test_a_redirect_elsewhere_does_not_carry_the_key() -> None:
    """Should the API ever redirect to another host, the key stays behind (requests drops it)."""
    answer = {"id": "abc:google/veo-3.1-t2v", "status": "generating"}
    with ScriptedServer([(200, answer)]) as elsewhere:
        target = elsewhere.url.replace("127.0.0.1", "localhost") + "/v2/video/generations"
        with ScriptedServer([(307, b"")], headers={"Location": target}) as api:
            adapter = AimlApiProvider(account(api.url))
            try:
                assert adapter.get("abc:google/veo-3.1-t2v").status == "in_progress"
            finally:
                adapter.close()
    assert api.authorizations == [f"Bearer {KEY}"]
    assert elsewhere.authorizations == [None]
    assert not any(KEY in value for value in elsewhere.header_values)
    assert not any(KEY in path for _, path in elsewhere.requests)
