"""Conformance of the Gemini API adapter for Veo (gateway.providers.gemini) against the
simulator's Gemini protocol (sorasim.gemini), and against tiny scripted loopback servers for
answers the simulator does not give, over real HTTP.

Wire facts relied on, in our words, with their sources:

- [V1, V3] Create is `POST <base>/models/<model>:predictLongRunning`, authenticated by the
  `x-goog-api-key` header, with a JSON body of `instances` (one object: `prompt`, optionally an
  `image` as first frame) and `parameters`.
- [V1, V3] An image travels as `{"inlineData": {"mimeType", "data": <base64>}}` in the docs' REST
  examples, and as `{"bytesBase64Encoded", "mimeType"}` from the Python SDK; a server should take
  both.
- [V3] `aspectRatio` is 16:9 (default) or 9:16; `durationSeconds` 4, 6 or 8 (the docs quote it as
  a string, the SDK sends a number) and must be 8 for 1080p; Veo 2 takes 5 to 8 seconds and only
  720p; `resolution` 720p (default) or 1080p; `personGeneration` is `allow_all` for text alone and
  `allow_adult` when an image is given; `negativePrompt` is a string, `enhancePrompt` a bool.
- [V3, V6] The usable ids are veo-3.0-generate-001, veo-3.0-fast-generate-001 and
  veo-2.0-generate-001; the veo-3.1 preview ids were reportedly switched off, and a retired model
  answers 404 "... is no longer available" [V6, unverified].
- [V5] The create answer is an operation whose `name` reads `models/<model>/operations/<id>`.
- [V2, V3] It is read back with `GET <base>/<name>` and the same key header.
- [V1, V4] The operation has `done` (missing while it runs), then `error {code, message}` or
  `response.generateVideoResponse` with `generatedSamples[].video.uri`; a video the safety filters
  removed leaves no samples and a positive `raiMediaFilteredCount` with reasons in
  `raiMediaFilteredReasons`. Nothing reports progress or a queue position.
- [V2, V3, V5] The result uri is `<base>/files/<id>:download?alt=media`, fetched with the key and
  following redirects; the SDK takes the file id out of it and asks its own base URL.
- [V7] Errors come as `{"error": {"code", "message", "status", "details"}}`, e.g. 429 with status
  RESOURCE_EXHAUSTED; the other statuses follow google.rpc (400 INVALID_ARGUMENT, 403
  PERMISSION_DENIED, 404 NOT_FOUND, 500, 503).
- Not found in any source, so only assumed here: `Retry-After` or a google.rpc.RetryInfo delay on
  a 429; a bad key answered 400 with ErrorInfo reason API_KEY_INVALID; any cancel, delete,
  listing or idempotency (none exists, so a lost create answer is ambiguous).

What these tests cannot show: that the real service behaves like the simulator.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.providers.gemini import GeminiProvider, build, video_options
from gateway.providers.port import ProviderAccount, ProviderVideo, ReferenceFile, VideoRequest
from sorasim import SimulatorConfig, SoraSimulator
from tests.mp4 import boxes, duration_seconds, video_dimensions
from tests.providers.support import download, jobs_created, marker, options_created
from tests.simulator.support import png_bytes

KEY = "test-gemini-key-" + "k" * 16
FAST = "veo-3.0-fast-generate-001"
KNOBS: dict[str, Any] = {
    "job_seconds": 1.5,
    "fault_rate": 0.0,
    "creates_per_minute": 0,
    "fault_kinds": "429,500,503,dropped",
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def simulator() -> Iterator[SoraSimulator]:
    with SoraSimulator(SimulatorConfig(gemini_key=KEY, **KNOBS), host="127.0.0.1", port=0) as running:
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


def account(base: str, key: str = KEY, **options: str) -> ProviderAccount:
    return ProviderAccount(name="gemini-test", kind="gemini", base_url=base, api_key=key, options=options)


@pytest.fixture
def provider(sim: SoraSimulator) -> Iterator[GeminiProvider]:
    adapter = GeminiProvider(account(f"{sim.url}/v1beta"))
    yield adapter
    adapter.close()


def veo(prompt: str, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": FAST,
        "prompt": prompt,
        "seconds": 4,
        "size": "1280x720",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    return VideoRequest(**{**fields, **changes})


def wait_until_finished(
    provider: GeminiProvider, video_id: str, timeout: float = 15.0
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


def sent_requests(provider: GeminiProvider) -> list[requests.PreparedRequest]:
    """Every request the adapter's session sends, as sent (a response hook sees its request)."""
    sent: list[requests.PreparedRequest] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.request)

    provider._session.hooks["response"].append(record)
    return sent


def raw_create(sim: SoraSimulator, body: Any, model: str = FAST, key: str | None = KEY) -> requests.Response:
    headers = {} if key is None else {"x-goog-api-key": key}
    return requests.post(
        f"{sim.url}/v1beta/models/{model}:predictLongRunning", json=body, headers=headers, timeout=10
    )


# -- a scripted stand-in for answers the simulator never gives -----------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


def google_error(status: int, rpc: str, message: str, **extra: Any) -> Answer:
    body = json.dumps({"error": {"code": status, "message": message, "status": rpc, **extra}}).encode()
    return Answer(status, body, {"Content-Type": "application/json"})


def json_answer(body: Any) -> Answer:
    return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


@contextlib.contextmanager
def scripted(routes: dict[str, Callable[[], Answer]]) -> Iterator[tuple[str, list[Seen]]]:
    """A loopback server answering `routes` (by path, query left off) and recording every request;
    a declared Content-Length longer than the body cuts the stream short, as a dropped one is."""
    seen: list[Seen] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append(Seen(self.command, self.path, dict(self.headers)))
            route = routes.get(self.path.partition("?")[0])
            answer = route() if route is not None else Answer(404, b"no such route")
            self.send_response(answer.status)
            headers = {"Content-Length": str(len(answer.body)), **answer.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", seen
        finally:
            server.shutdown()


OPERATION = "models/veo-3.0-fast-generate-001/operations/abc123def456"


def finished_operation(uri: str) -> Callable[[], Answer]:
    samples = [{"video": {"uri": uri}}]
    body = {
        "name": OPERATION,
        "done": True,
        "response": {"generateVideoResponse": {"generatedSamples": samples}},
    }
    return lambda: json_answer(body)


# -- the happy path --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "seconds", "aspect_ratio", "resolution", "pixels"),
    [
        (FAST, 4, "16:9", "720p", (1280, 720)),
        ("veo-3.0-generate-001", 8, "9:16", "1080p", (1080, 1920)),
        ("veo-2.0-generate-001", 6, "16:9", "720p", (1280, 720)),
    ],
)
def test_create_poll_and_download_a_real_mp4(
    sim: SoraSimulator,
    provider: GeminiProvider,
    model: str,
    seconds: int,
    aspect_ratio: str,
    resolution: str,
    pixels: tuple[int, int],
) -> None:
    tag = marker()
    request = veo(
        f"a lighthouse at dusk {tag}",
        model=model,
        seconds=seconds,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        size=f"{pixels[0]}x{pixels[1]}",
    )
    created = provider.create(request)

    assert created.status == "queued"
    assert created.progress is None
    assert created.id.startswith(f"models/{model}/operations/")  # the operation name, slashes and all
    assert (created.prompt, created.model, created.seconds) == (request.prompt, model, str(seconds))
    assert jobs_created(sim, tag) == 1

    seen = wait_until_finished(provider, created.id)
    assert seen[-1].status == "completed", seen[-1]
    assert {video.status for video in seen[:-1]} <= {"in_progress"}
    assert all(video.progress is None for video in seen[:-1]), "Veo reports no progress"

    data = download(provider, created.id)
    assert boxes(data)[0][0] == "ftyp"
    assert duration_seconds(data) == pytest.approx(seconds, abs=0.5)
    assert video_dimensions(data) == pixels


def test_image_to_video(sim: SoraSimulator, provider: GeminiProvider) -> None:
    assert provider.capabilities.image_input
    created = provider.create(
        veo(f"from a frame {marker()}", reference=ReferenceFile("f.png", png_bytes(64, 36), "image/png"))
    )
    assert wait_until_finished(provider, created.id)[-1].status == "completed"
    assert duration_seconds(download(provider, created.id)) == pytest.approx(4, abs=0.5)


def test_capabilities_and_what_cannot_be_done(provider: GeminiProvider) -> None:
    capabilities = provider.capabilities
    assert capabilities.image_input
    assert not capabilities.remix
    assert not capabilities.delete
    assert not capabilities.find_recent  # so a lost create answer is ambiguous
    assert not capabilities.thumbnail
    calls: list[Callable[[], object]] = [
        lambda: provider.delete(OPERATION),
        lambda: provider.remix(OPERATION, "again"),
        provider.recent,
    ]
    for call in calls:
        with pytest.raises(UpstreamRejectedError):
            call()


# -- the body on the wire --------------------------------------------------------------------


def test_text_body_is_exactly_the_documented_shape(sim: SoraSimulator, provider: GeminiProvider) -> None:
    sent = sent_requests(provider)
    prompt = f"waves {marker()}"
    provider.create(veo(prompt, seconds=6, aspect_ratio="9:16", size="720x1280"))

    create = sent[0]
    assert create.method == "POST"
    assert create.url == f"{sim.url}/v1beta/models/{FAST}:predictLongRunning"
    assert create.headers["x-goog-api-key"] == KEY
    assert "Authorization" not in create.headers
    assert isinstance(create.body, bytes)
    assert json.loads(create.body) == {
        "instances": [{"prompt": prompt}],
        "parameters": {
            "aspectRatio": "9:16",
            "resolution": "720p",
            "durationSeconds": 6,
            "personGeneration": "allow_all",
        },
    }


def test_image_body_and_options(sim: SoraSimulator) -> None:
    adapter = GeminiProvider(
        account(f"{sim.url}/v1beta", negative_prompt="blurry, text", enhance_prompt="false")
    )
    sent = sent_requests(adapter)
    image = ReferenceFile("frame.png", png_bytes(32, 18), "image/png")
    adapter.create(veo(f"moving frame {marker()}", reference=image))
    adapter.close()

    assert isinstance(sent[0].body, bytes)
    body = json.loads(sent[0].body)
    (instance,) = body["instances"]
    assert instance["image"] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(image.content).decode()}
    }
    assert body["parameters"]["personGeneration"] == "allow_adult"  # allow_all is for text alone
    assert body["parameters"]["negativePrompt"] == "blurry, text"
    assert body["parameters"]["enhancePrompt"] is False


def test_person_generation_option_is_sent(sim: SoraSimulator) -> None:
    adapter = GeminiProvider(account(f"{sim.url}/v1beta", person_generation="allow_adult"))
    sent = sent_requests(adapter)
    adapter.create(veo(f"persons {marker()}"))
    adapter.close()
    assert isinstance(sent[0].body, bytes)
    assert json.loads(sent[0].body)["parameters"]["personGeneration"] == "allow_adult"


def test_bad_enhance_prompt_option_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="enhance_prompt"):
        GeminiProvider(account("http://127.0.0.1:9/v1beta", enhance_prompt="maybe"))


# -- per-request options (gateway.video_options) ---------------------------------------------


def test_the_protocol_carries_negative_prompt_and_person_generation_not_audio() -> None:
    # Veo 3.x always makes sound on the Gemini API, and the SDK refuses generate_audio there.
    carried = video_options(account("http://127.0.0.1:9/v1beta"), FAST)
    assert carried == {"negative_prompt", "person_generation"}


def test_request_options_reach_the_simulator_as_native_parameters(
    sim: SoraSimulator, provider: GeminiProvider
) -> None:
    tag = marker()
    options: dict[str, str | bool] = {"negative_prompt": "captions", "person_generation": "allow_adult"}
    provider.create(veo(f"a market {tag}", options=options))
    assert options_created(sim, tag) == [{"negativePrompt": "captions", "personGeneration": "allow_adult"}]


def test_a_request_option_beats_the_account_option(sim: SoraSimulator) -> None:
    adapter = GeminiProvider(
        account(f"{sim.url}/v1beta", person_generation="allow_adult", negative_prompt="account words")
    )
    tag = marker()
    try:
        asked: dict[str, str | bool] = {"person_generation": "allow_all", "negative_prompt": "request words"}
        adapter.create(veo(f"asked {tag}", options=asked))
        adapter.create(veo(f"not asked {tag}"))  # the account's values are the defaults
    finally:
        adapter.close()
    assert options_created(sim, tag) == [
        {"negativePrompt": "request words", "personGeneration": "allow_all"},
        {"negativePrompt": "account words", "personGeneration": "allow_adult"},
    ]


@pytest.mark.parametrize("account_persons", [None, "allow_all"])
def test_an_image_without_a_request_value_sends_allow_adult(
    sim: SoraSimulator, account_persons: str | None
) -> None:
    # allow_all (the text default, or the account's) is documented for text alone.
    options = {} if account_persons is None else {"person_generation": account_persons}
    adapter = GeminiProvider(account(f"{sim.url}/v1beta", **options))
    tag = marker()
    try:
        adapter.create(
            veo(f"a frame {tag}", reference=ReferenceFile("f.png", png_bytes(32, 18), "image/png"))
        )
    finally:
        adapter.close()
    assert options_created(sim, tag) == [{"personGeneration": "allow_adult"}]


def test_a_requested_allow_all_with_an_image_is_sent_as_asked(
    sim: SoraSimulator, provider: GeminiProvider
) -> None:
    # Intake refuses this pair; should one get past it, the adapter does not quietly change what
    # was asked for, and the provider's refusal says why.
    tag = marker()
    image = ReferenceFile("f.png", png_bytes(32, 18), "image/png")
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(veo(f"a frame {tag}", reference=image, options={"person_generation": "allow_all"}))
    assert (caught.value.code, caught.value.status) == ("invalid_argument", 400)
    assert "personGeneration" in caught.value.message
    assert jobs_created(sim, tag) == 0


# -- refusals at create ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-9-nope"])
def test_retired_or_unknown_model_is_model_not_found(
    sim: SoraSimulator, provider: GeminiProvider, model: str
) -> None:
    tag = marker()
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(veo(f"old model {tag}", model=model))
    assert (caught.value.code, caught.value.status) == ("model_not_found", 404)
    assert f"models/{model}" in caught.value.message
    if "3.1" in model:
        assert "no longer available" in caught.value.message
    assert jobs_created(sim, tag) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seconds": 5}, "durationSeconds"),
        ({"resolution": "1080p", "size": "1920x1080"}, "8"),  # 1080p needs 8 s
        ({"aspect_ratio": "1:1", "size": "720x720"}, "aspectRatio"),
    ],
)
def test_invalid_argument_is_rejected_with_its_code(
    sim: SoraSimulator, provider: GeminiProvider, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(veo(f"bad shape {marker()}", **changes))
    assert (caught.value.code, caught.value.status) == ("invalid_argument", 400)
    assert field in caught.value.message


def test_reference_that_is_not_an_image_is_invalid(sim: SoraSimulator, provider: GeminiProvider) -> None:
    tag = marker()
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.create(
            veo(f"not pixels {tag}", reference=ReferenceFile("x.png", b"plain text", "image/png"))
        )
    assert caught.value.code == "invalid_argument"
    assert jobs_created(sim, tag) == 0


def test_simulator_takes_both_image_encodings_and_string_seconds(sim: SoraSimulator) -> None:
    data = base64.b64encode(png_bytes(16, 9)).decode()
    for image in (
        {"inlineData": {"mimeType": "image/png", "data": data}},
        {"bytesBase64Encoded": data, "mimeType": "image/png"},
    ):
        body = {
            "instances": [{"prompt": f"encodings {marker()}", "image": image}],
            "parameters": {"durationSeconds": "8", "personGeneration": "allow_adult", "resolution": "1080p"},
        }
        response = raw_create(sim, body)
        assert response.status_code == 200, response.text
        assert response.json()["name"].startswith(f"models/{FAST}/operations/")


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [{"prompt": "p", "image": {"url": "https://example.invalid/x.png"}}]},
        {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": True}},
        {"instances": [{"prompt": "p"}], "parameters": {"sampleCount": 2}},
        {"instances": [{"prompt": "p"}], "parameters": {"fps": 24}},
        {"instances": [{"prompt": "p", "referenceImages": []}]},
        {
            "instances": [
                {
                    "prompt": "p",
                    "image": {
                        "bytesBase64Encoded": base64.b64encode(png_bytes(4, 4)).decode(),
                        "mimeType": "image/png",
                    },
                }
            ],
            "parameters": {"personGeneration": "allow_all"},
        },
        {"instances": []},
    ],
)
def test_simulator_refuses_what_the_docs_do_not_allow(sim: SoraSimulator, body: dict[str, Any]) -> None:
    response = raw_create(sim, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")


# -- finished without a video ----------------------------------------------------------------


def test_blocked_video_fails_for_the_content_policy(sim: SoraSimulator, provider: GeminiProvider) -> None:
    created = provider.create(veo(f"something #sim:blocked {marker()}"))
    assert created.status == "queued"  # filters judge the result, not the request
    final = wait_until_finished(provider, created.id)[-1]
    assert (final.status, final.error_code) == ("failed", "content_policy_violation")
    assert "safety" in (final.error_message or "")
    with pytest.raises(UpstreamRejectedError) as caught:
        download(provider, created.id)
    assert caught.value.code == "video_not_ready"


def test_job_failing_part_way_is_failed(sim: SoraSimulator, provider: GeminiProvider) -> None:
    created = provider.create(veo(f"doomed #sim:fail {marker()}"))
    final = wait_until_finished(provider, created.id)[-1]
    assert (final.status, final.error_code) == ("failed", "video_generation_failed")
    assert (final.error_message or "").startswith("INTERNAL")
    with pytest.raises(UpstreamRejectedError) as caught:
        download(provider, created.id)
    assert caught.value.code == "video_not_ready"


@pytest.mark.parametrize(
    ("operation", "status", "code", "message"),
    [
        ({"done": False}, "in_progress", None, None),
        ({"done": True, "error": {"code": 3, "message": "bad frame"}}, "failed", "video_generation_failed", "INVALID_ARGUMENT: bad frame"),
        ({"done": True, "response": {"generateVideoResponse": {"raiMediaFilteredCount": 2, "raiMediaFilteredReasons": ["audio", "faces"]}}}, "failed", "content_policy_violation", "audio; faces"),
        ({"done": True, "response": {"generateVideoResponse": {}}}, "failed", "video_generation_failed", "The operation finished without a video."),
    ],
)  # fmt: skip
def test_operation_states_map_without_the_simulator(
    operation: dict[str, Any], status: str, code: str | None, message: str | None
) -> None:
    routes = {f"/v1beta/{OPERATION}": lambda: json_answer({"name": OPERATION, **operation})}
    with scripted(routes) as (base, _):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        video = adapter.get(OPERATION)
        adapter.close()
    assert (video.id, video.status, video.progress) == (OPERATION, status, None)
    assert (video.error_code, video.error_message) == (code, message)


def test_unknown_operation_is_not_found(sim: SoraSimulator, provider: GeminiProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.get(f"models/{FAST}/operations/nosuchop1234")
    assert (caught.value.code, caught.value.status) == ("not_found", 404)


def test_operation_name_that_is_not_one_never_reaches_a_url(provider: GeminiProvider) -> None:
    sent = sent_requests(provider)
    with pytest.raises(UpstreamRejectedError) as caught:
        provider.get("models/../../files/x")
    assert caught.value.status == 404
    assert sent == []


# -- access ----------------------------------------------------------------------------------


def test_wrong_key_is_access_denied_and_never_told(sim: SoraSimulator) -> None:
    wrong = "wrong-key-" + uuid.uuid4().hex
    adapter = build(account(f"{sim.url}/v1beta", key=wrong))
    calls: list[Callable[[], object]] = [
        lambda: adapter.create(veo(f"wrong key {marker()}")),
        lambda: adapter.get(f"models/{FAST}/operations/whatever1234"),
    ]
    for call in calls:
        with pytest.raises(UpstreamRejectedError) as caught:
            call()
        error = caught.value
        assert (error.code, error.status) == ("upstream_access_denied", 401)  # Google says 400
        assert wrong not in f"{error} {error.message} {error!r} {error.args}"
    assert wrong not in repr(account(sim.url, key=wrong))
    assert wrong not in repr(adapter)
    adapter.close()


def test_missing_key_answer_is_permission_denied(sim: SoraSimulator) -> None:
    response = raw_create(sim, {"instances": [{"prompt": "no key"}]}, key=None)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(("status", "rpc"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_401_and_403_are_the_gateways_access(status: int, rpc: str) -> None:
    routes = {f"/v1beta/models/{FAST}:predictLongRunning": lambda: google_error(status, rpc, "no access")}
    with scripted(routes) as (base, _):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        with pytest.raises(UpstreamRejectedError) as caught:
            adapter.create(veo("access"))
        adapter.close()
    assert (caught.value.code, caught.value.status) == ("upstream_access_denied", status)


# -- throttling, faults, lost answers --------------------------------------------------------


def test_creation_quota_throttles_with_the_retry_info_delay(
    sim: SoraSimulator, provider: GeminiProvider
) -> None:
    sim.update_config(creates_per_minute=1)
    tag = marker()
    provider.create(veo(f"first {tag}"))
    with pytest.raises(UpstreamThrottled) as caught:
        provider.create(veo(f"second {tag}"))
    assert caught.value.status == 429
    assert (caught.value.retry_after or 0) >= 1  # from RetryInfo: the simulator sends no header
    assert jobs_created(sim, tag) == 1


def test_throttling_fault_carries_retry_after(sim: SoraSimulator, provider: GeminiProvider) -> None:
    created = provider.create(veo(f"throttled poll {marker()}"))
    sim.update_config(fault_rate=1.0, fault_kinds="429")
    with pytest.raises(UpstreamThrottled) as caught:
        provider.get(created.id)
    assert caught.value.retry_after in (1.0, 2.0)
    with pytest.raises(UpstreamThrottled):
        provider.create(veo(f"throttled create {marker()}"))  # refused, so not ambiguous


def test_429_without_any_delay_has_none() -> None:
    routes = {
        f"/v1beta/models/{FAST}:predictLongRunning": lambda: google_error(429, "RESOURCE_EXHAUSTED", "quota")
    }
    with scripted(routes) as (base, _):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        with pytest.raises(UpstreamThrottled) as caught:
            adapter.create(veo("no delay"))
        adapter.close()
    assert caught.value.retry_after is None


@pytest.mark.parametrize("kind", ["500", "503", "dropped"])
def test_faults_on_polls_are_transient(sim: SoraSimulator, provider: GeminiProvider, kind: str) -> None:
    created = provider.create(veo(f"flaky polls {marker()}"))
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamTransientError) as caught:
        provider.get(created.id)
    assert not isinstance(caught.value, UpstreamThrottled)
    sim.update_config(fault_rate=0.0)
    assert provider.get(created.id).id == created.id  # safe to ask again


@pytest.mark.parametrize("kind", ["dropped", "500", "503"])
def test_create_whose_answer_is_lost_is_ambiguous(
    sim: SoraSimulator, provider: GeminiProvider, kind: str
) -> None:
    assert not provider.capabilities.find_recent  # nothing to adopt from: it must not be retried
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamAmbiguousError):
        provider.create(veo(f"lost answer {marker()}"))


def test_create_that_never_connected_is_transient() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = GeminiProvider(account(f"http://127.0.0.1:{port}/v1beta"))
    with pytest.raises(UpstreamTransientError) as caught:
        adapter.create(veo("never sent"))
    assert not isinstance(caught.value, UpstreamAmbiguousError)
    adapter.close()


def test_create_that_times_out_reading_is_ambiguous() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        adapter = GeminiProvider(
            account(f"http://127.0.0.1:{server.getsockname()[1]}/v1beta"), timeout=(2.0, 0.5)
        )
        with pytest.raises(UpstreamAmbiguousError):
            adapter.create(veo("silent upstream"))
        adapter.close()
        thread.join(5)
        for connection in accepted:
            connection.close()


# -- the download ----------------------------------------------------------------------------


def test_download_sends_the_key_and_follows_the_redirect(
    sim: SoraSimulator, provider: GeminiProvider
) -> None:
    created = provider.create(veo(f"redirected {marker()}"))
    wait_until_finished(provider, created.id)
    sent = sent_requests(provider)
    download(provider, created.id)

    files = [request for request in sent if ":download" in (request.url or "")]
    media = [request for request in sent if "/_media/gemini/" in (request.url or "")]
    assert len(files) == 1
    assert files[0].headers["x-goog-api-key"] == KEY
    assert (files[0].url or "").endswith(":download?alt=media")
    assert len(media) == 1  # the simulator's 302 was followed
    # The file needs the key; the place it redirects to does not.
    assert requests.get(files[0].url or "", timeout=10, allow_redirects=False).status_code == 403
    assert requests.get(media[0].url or "", timeout=10).status_code == 200


def test_result_uri_is_fetched_from_the_configured_base() -> None:
    """The uri names Google's host; the file id is asked of our base, so nothing leaves loopback."""
    google = "https://generativelanguage.googleapis.com/v1beta/files/f1le:download?alt=media"
    routes = {
        f"/v1beta/{OPERATION}": finished_operation(google),
        "/v1beta/files/f1le:download": lambda: Answer(200, b"mp4-bytes", {"Content-Type": "video/mp4"}),
    }
    with scripted(routes) as (base, seen):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        assert download(adapter, OPERATION) == b"mp4-bytes"
        adapter.close()
    assert [request.path for request in seen] == [
        f"/v1beta/{OPERATION}",
        "/v1beta/files/f1le:download?alt=media",
    ]
    assert seen[1].headers.get("x-goog-api-key") == KEY


def test_redirect_to_another_origin_goes_without_the_key() -> None:
    with scripted({"/signed/video.mp4": lambda: Answer(200, b"from storage")}) as (storage, stored):
        routes = {
            f"/v1beta/{OPERATION}": finished_operation(
                "https://x.invalid/v1beta/files/f1le:download?alt=media"
            ),
            "/v1beta/files/f1le:download": lambda: Answer(
                302, headers={"Location": f"{storage}/signed/video.mp4"}
            ),
        }
        with scripted(routes) as (base, seen):
            adapter = GeminiProvider(account(f"{base}/v1beta"))
            assert download(adapter, OPERATION) == b"from storage"
            adapter.close()
    assert seen[-1].headers.get("x-goog-api-key") == KEY
    assert len(stored) == 1
    assert "x-goog-api-key" not in {name.lower() for name in stored[0].headers}
    assert KEY not in json.dumps(stored[0].headers)


def test_dropped_stream_during_download_is_transient() -> None:
    cut = Answer(200, b"\x00" * 1000, {"Content-Length": "100000", "Content-Type": "video/mp4"})
    routes = {
        f"/v1beta/{OPERATION}": finished_operation("x/files/f1le:download"),
        "/v1beta/files/f1le:download": lambda: cut,
    }
    with scripted(routes) as (base, _):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        with pytest.raises(UpstreamTransientError):
            download(adapter, OPERATION)
        adapter.close()


@pytest.mark.parametrize(("status", "error"), [(503, UpstreamTransientError), (404, UpstreamRejectedError)])
def test_download_errors(status: int, error: type[Exception]) -> None:
    routes = {
        f"/v1beta/{OPERATION}": finished_operation("x/files/f1le:download"),
        "/v1beta/files/f1le:download": lambda: google_error(status, "X", "file trouble"),
    }
    with scripted(routes) as (base, _):
        adapter = GeminiProvider(account(f"{base}/v1beta"))
        with pytest.raises(error) as caught:
            download(adapter, OPERATION)
        adapter.close()
    if isinstance(caught.value, UpstreamRejectedError):
        assert caught.value.code == "video_unavailable"
