"""Conformance of the fal adapter (gateway.providers.fal) against the simulator's fal queue protocol
(sorasim.fal), over real HTTP on loopback.

Wire facts relied on, in our words, with their sources: fal's JS client (fal-ai/fal-js,
libs/client/src/: [F1] queue.ts, [F2] types/common.ts, [F3] response.ts, [F4] retry.ts,
request.ts, headers.ts, utils.ts, [F5] types/endpoints.ts) and [F6] fal's docs (queue, inference
API and its cancel page, errors and request errors, webhooks, data retention, reliability):

- submit is a POST of the model's input JSON to the queue host at the model id, which may carry a
  subpath (`fal-ai/veo3.1/image-to-video`); the key goes as `Authorization: Key <key>` [F1, F4, F6];
- the submit answer carries `request_id`, `status_url`, `response_url`, `cancel_url` and maybe
  `queue_position` [F2, F6];
- status, result and cancel are addressed by owner and app only, without the subpath [F1, F6];
- status answers 202 while `IN_QUEUE` (with `queue_position`) or `IN_PROGRESS` (with `logs`), 200
  once `COMPLETED` (with `metrics`); there is no percent progress [F2, F6];
- the result is the model output, `{"video": {"url", ...}}` for video models; a failed model
  answers its error status and body there [F1, F3, F5];
- cancel is a PUT answering `{"status"}`: `CANCELLATION_REQUESTED` (202; a running request only
  gets a signal and may still finish), `ALREADY_COMPLETED` or `NOT_FOUND` [F1, F6];
- Veo 3.1 input: `prompt`, `aspect_ratio` "16:9" | "9:16", `duration` "4s" | "6s" | "8s",
  `resolution` "720p" | "1080p" | "4k"; image-to-video adds a required `image_url` (URL or data
  URI). Kling v2.x image-to-video: `prompt`, `image_url`, `duration` "5" | "10" [F5, F6];
- errors are `{"detail": [{"loc", "msg", "type", ...}]}` or, for infrastructure, `{"detail":
  "<text>", "error_type"}` with `X-Fal-Error-Type`; `X-Fal-Retryable` tells whether asking again can
  help; content policy is 422 with type `content_policy_violation`; a bad key is 401 [F3, F6];
- 429, 502, 503 and 504 are worth retrying [F1, F4, F6]; media sits on a public CDN, fetched
  without the key [F6].

Not documented, so the simulator's choices (and the adapter's assumptions): the HTTP codes of
`ALREADY_COMPLETED` (400) and `NOT_FOUND` (404); Retry-After on 429 (the quota's 429 has none,
an injected one has it); what a request cancelled while waiting shows afterwards (here
`COMPLETED`, its result a 400 `request_cancelled`); the `internal_error` 500 for a model failing
part-way. Variants the simulator does not make (5xx with `X-Fal-Retryable: false`, 502/504,
unreadable answers, a CDN stream that breaks off) come from a scripted loopback server.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
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
from gateway.providers import fal
from gateway.providers.fal import FalProvider
from gateway.providers.port import ProviderAccount, ProviderVideo, ReferenceFile, VideoRequest
from sorasim import SimulatorConfig, SoraSimulator
from tests import mp4
from tests.mp4 import video_dimensions
from tests.providers.support import download, jobs_created, options_created
from tests.simulator.support import png_bytes

KEY = "sim-fal-key-" + "k" * 24
BASELINE_KNOBS: dict[str, Any] = {
    "job_seconds": 1.0,
    "fault_rate": 0.0,
    "fault_kinds": "429,500,503,dropped",
    "creates_per_minute": 0,
    "video_bytes": 0,
}
VEO = "fal-ai/veo3.1"
VEO_I2V = "fal-ai/veo3.1/image-to-video"
KLING_I2V = "fal-ai/kling-video/v2.1/standard/image-to-video"


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[SoraSimulator]:
    config = SimulatorConfig(fal_key=KEY, **BASELINE_KNOBS)
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
def provider(sim: SoraSimulator, sent: list[requests.PreparedRequest]) -> Iterator[FalProvider]:
    session = requests.Session()
    session.trust_env = False
    session.hooks["response"].append(lambda response, *args, **kwargs: sent.append(response.request))
    with session:
        adapter = FalProvider(account(sim.url), session=session)
        yield adapter
        adapter.close()


def account(base_url: str, key: str = KEY, **options: str) -> ProviderAccount:
    return ProviderAccount(name="fal-test", kind="fal", base_url=base_url, api_key=key, options=options)


def video_request(prompt: str, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": VEO,
        "prompt": prompt,
        "seconds": 4,
        "size": "1280x720",
        "aspect_ratio": "16:9",
        "resolution": "720p",
    }
    fields.update(changes)
    return VideoRequest(**fields)


def reference(width: int = 1280, height: int = 720) -> ReferenceFile:
    return ReferenceFile("start.png", png_bytes(width, height), "image/png")


def wait_until_finished(provider: FalProvider, video: ProviderVideo, timeout: float = 15.0) -> list[str]:
    """Poll until the job ends; the statuses seen, in order, the last one final."""
    seen = [video.status]
    deadline = time.monotonic() + timeout
    while not video.finished:
        assert time.monotonic() < deadline, f"{video.id} still {video.status} after {timeout}s"
        time.sleep(0.05)
        video = provider.get(video.id)
        assert video.progress is None  # fal reports no percent progress
        if video.status != "queued":
            assert video.queue_position is None
        if video.status != seen[-1]:
            seen.append(video.status)
    return seen


def body_of(request: requests.PreparedRequest) -> dict[str, Any]:
    raw = request.body
    data = raw.encode() if isinstance(raw, str) else raw or b"{}"
    parsed = json.loads(data)
    assert isinstance(parsed, dict)
    return parsed


# -- the happy path ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "seconds", "pixels"),
    [(VEO, "16:9", 4, (1280, 720)), ("fal-ai/veo3.1/fast", "9:16", 6, (720, 1280))],
)
def test_submit_poll_result_and_keyless_download(
    sim: SoraSimulator,
    provider: FalProvider,
    sent: list[requests.PreparedRequest],
    model: str,
    aspect_ratio: str,
    seconds: int,
    pixels: tuple[int, int],
) -> None:
    request = video_request(
        "a lighthouse at dusk #fal-happy", model=model, aspect_ratio=aspect_ratio, seconds=seconds
    )
    video = provider.create(request)

    # The id names owner, app and request: all a later get() has to go on.
    owner, app, request_id = video.id.split("/")
    assert (owner, app) == ("fal-ai", "veo3.1")
    assert video.status == "queued"
    assert video.queue_position == 0
    assert wait_until_finished(provider, video) == ["queued", "in_progress", "completed"]
    assert jobs_created(sim, "#fal-happy") == 1

    data = download(provider, video.id)
    assert mp4.boxes(data)[0][0] == "ftyp"
    assert abs(mp4.duration_seconds(data) - seconds) < 0.5
    assert video_dimensions(data) == pixels
    assert sim.stats()["downloads"] == 1

    submit = sent[0]
    assert (submit.method, submit.url) == ("POST", f"{sim.url}/{model}")
    assert body_of(submit) == {
        "prompt": request.prompt,
        "aspect_ratio": aspect_ratio,
        "duration": f"{seconds}s",
        "resolution": "720p",
    }
    queue = f"{sim.url}/fal-ai/veo3.1/requests/{request_id}"
    later = [(each.method, each.url) for each in sent[1:] if "/_cdn/" not in (each.url or "")]
    assert ("GET", f"{queue}/status") in later
    assert ("GET", queue) in later
    # Status and result never carry the subpath, whatever the model id had.
    assert all(url is not None and url.startswith(queue) for _, url in later)
    api = [each for each in sent if "/_cdn/" not in (each.url or "")]
    cdn = [each for each in sent if "/_cdn/fal/" in (each.url or "")]
    assert all(each.headers["Authorization"] == f"Key {KEY}" for each in api)
    assert len(cdn) == 1
    assert "Authorization" not in cdn[0].headers
    assert all(KEY not in str(value) for value in cdn[0].headers.values())
    # The simulated CDN refuses credentials, so a leaking adapter could not download at all.
    leaked = requests.get(cdn[0].url or "", headers={"Authorization": f"Key {KEY}"}, timeout=10)
    assert leaked.status_code == 403


def test_queue_position_falls_as_earlier_requests_start(sim: SoraSimulator, provider: FalProvider) -> None:
    # The first request waits 0.6 s (15% of 4 s), the second 6 s: it sees the first leave the queue.
    sim.update_config(job_seconds=4.0)
    first = provider.create(video_request("first in line #fal-queue"))
    sim.update_config(job_seconds=40.0)
    second = provider.create(video_request("second in line #fal-queue"))
    assert first.queue_position == 0
    assert second.queue_position == 1

    positions = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = provider.get(second.id)
        assert seen.status == "queued"
        positions.append(seen.queue_position)
        if seen.queue_position == 0:
            break
        time.sleep(0.05)
    assert positions[-1] == 0
    assert positions == sorted(positions, key=lambda value: -(value or 0))
    assert provider.get(first.id).status == "in_progress"
    assert provider.delete(second.id) is True


@pytest.mark.parametrize(
    ("model", "seconds", "pixels", "expected_duration"),
    [(VEO_I2V, 4, (720, 1280), "4s"), (KLING_I2V, 5, (1280, 720), "5")],
)
def test_image_to_video_sends_the_image_as_a_data_uri(
    sim: SoraSimulator,
    provider: FalProvider,
    sent: list[requests.PreparedRequest],
    model: str,
    seconds: int,
    pixels: tuple[int, int],
    expected_duration: str,
) -> None:
    width, height = pixels
    aspect = "9:16" if height > width else "16:9"
    request = video_request(
        "from a picture",
        model=model,
        seconds=seconds,
        aspect_ratio=aspect,
        reference=reference(width, height),
    )
    video = provider.create(request)
    assert video.id.split("/")[:2] == model.split("/")[:2]
    assert wait_until_finished(provider, video)[-1] == "completed"
    data = download(provider, video.id)
    assert abs(mp4.duration_seconds(data) - seconds) < 0.5
    assert video_dimensions(data) == pixels

    body = body_of(sent[0])
    assert body["duration"] == expected_duration
    assert body["image_url"] == "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()
    if model == KLING_I2V:
        # Kling takes neither resolution nor aspect ratio with an image: the image sets the shape.
        assert set(body) == {"prompt", "duration", "image_url"}
    status_urls = [each.url for each in sent if (each.url or "").endswith("/status")]
    assert status_urls
    assert all("image-to-video" not in (url or "") for url in status_urls)


def test_an_image_for_a_text_model_is_refused_before_sending(
    sim: SoraSimulator, provider: FalProvider, sent: list[requests.PreparedRequest]
) -> None:
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(video_request("picture for text", reference=reference()))
    assert raised.value.code == "image_not_supported"
    assert sent == []


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_while_queued_ends_the_request_cancelled(sim: SoraSimulator, provider: FalProvider) -> None:
    assert provider.capabilities.delete is True
    sim.update_config(job_seconds=60.0)
    video = provider.create(video_request("never mind #fal-cancel"))
    assert provider.get(video.id).status == "queued"
    assert provider.delete(video.id) is True

    cancelled = provider.get(video.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished
    with pytest.raises(UpstreamRejectedError) as raised, provider.open_asset(video.id):
        pass
    assert raised.value.code == "video_not_ready"
    # Cancelled already: nothing left to stop.
    assert provider.delete(video.id) is False


def test_cancel_while_running_is_only_a_signal(sim: SoraSimulator, provider: FalProvider) -> None:
    sim.update_config(job_seconds=2.0)
    video = provider.create(video_request("running on"))
    while (current := provider.get(video.id)).status == "queued":
        time.sleep(0.05)
    assert current.status == "in_progress"
    assert provider.delete(video.id) is True
    assert wait_until_finished(provider, current)[-1] == "completed"


def test_cancel_after_completion_or_of_an_unknown_request_is_false(
    sim: SoraSimulator, provider: FalProvider
) -> None:
    video = provider.create(video_request("done already"))
    wait_until_finished(provider, video)
    assert provider.delete(video.id) is False
    assert provider.delete("fal-ai/veo3.1/0b5c8a52-4d7e-4f0e-9a57-7f4f3c9f2d11") is False


# -- failures the request reports --------------------------------------------------------------


def test_a_refused_prompt_fails_with_content_policy_violation(
    sim: SoraSimulator, provider: FalProvider
) -> None:
    video = provider.create(video_request("something not allowed #sim:blocked"))
    assert video.status == "queued"  # the queue takes it; the model refuses it
    assert wait_until_finished(provider, video)[-1] == "failed"
    failed = provider.get(video.id)
    assert failed.error_code == "content_policy_violation"
    assert failed.error_message
    assert "prompt" in failed.error_message
    with pytest.raises(UpstreamRejectedError) as raised, provider.open_asset(video.id):
        pass
    assert raised.value.code == "video_not_ready"


def test_a_model_failing_part_way_fails_with_a_plain_word_code(
    sim: SoraSimulator, provider: FalProvider
) -> None:
    video = provider.create(video_request("will break #sim:fail"))
    assert wait_until_finished(provider, video) == ["queued", "in_progress", "failed"]
    failed = provider.get(video.id)
    assert failed.error_code == "internal_error"
    assert failed.error_message
    assert "#sim:fail" in failed.error_message


# -- refusals at submit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"seconds": 5}, "literal_error", "duration"),  # Veo takes 4s, 6s or 8s
        ({"resolution": "480p"}, "literal_error", "resolution"),
        ({"aspect_ratio": "1:1"}, "literal_error", "aspect_ratio"),
        ({"model": KLING_I2V, "seconds": 6, "reference": reference()}, "literal_error", "duration"),
        ({"model": VEO_I2V}, "missing", "image_url"),  # image-to-video without the image
        ({"options": {"negative_prompt": True}}, "string_type", "negative_prompt"),
        ({"options": {"generate_audio": "maybe"}}, "bool_parsing", "generate_audio"),
    ],
)
def test_invalid_input_is_a_422_with_the_detail_type_as_code(
    sim: SoraSimulator, provider: FalProvider, changes: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(video_request("a shape the model lacks #fal-invalid", **changes))
    assert raised.value.status == 422
    assert raised.value.code == code
    assert raised.value.message.startswith(f"{field}: ")
    assert jobs_created(sim, "#fal-invalid") == 0


# -- per-request options (gateway.video_options) -----------------------------------------------


def test_each_dialect_carries_its_own_options() -> None:
    base = "http://127.0.0.1:9"
    assert fal.video_options(account(base), VEO) == {"negative_prompt", "generate_audio"}
    assert fal.video_options(account(base), KLING_I2V) == {"negative_prompt"}
    # A model id of neither family takes the account's dialect, or carries nothing.
    other = "fal-ai/other/text-to-video"
    assert fal.video_options(account(base, dialect="kling"), other) == {"negative_prompt"}
    assert fal.video_options(account(base), other) == frozenset()


def test_veo_options_are_sent_under_their_own_names(
    sim: SoraSimulator, provider: FalProvider, sent: list[requests.PreparedRequest]
) -> None:
    options: dict[str, str | bool] = {"negative_prompt": "captions, logos", "generate_audio": False}
    provider.create(video_request("a quiet harbour #fal-options", options=options))
    body = body_of(sent[0])
    assert {name: body[name] for name in options} == options
    assert options_created(sim, "#fal-options") == [options]


def test_kling_sends_negative_prompt_and_refuses_generate_audio_before_sending(
    sim: SoraSimulator, provider: FalProvider, sent: list[requests.PreparedRequest]
) -> None:
    kling = {"model": KLING_I2V, "seconds": 5, "reference": reference()}
    provider.create(video_request("a kite #fal-kling-options", options={"negative_prompt": "rain"}, **kling))
    assert options_created(sim, "#fal-kling-options") == [{"negative_prompt": "rain"}]

    sent.clear()
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(video_request("a kite #fal-kling-audio", options={"generate_audio": True}, **kling))
    # Kling's input has no generate_audio; fal would ignore it, so it is never sent.
    assert raised.value.code == "unsupported_option"
    assert sent == []
    assert jobs_created(sim, "#fal-kling-audio") == 0


def test_an_unknown_app_is_not_found(sim: SoraSimulator, provider: FalProvider) -> None:
    with pytest.raises(UpstreamRejectedError) as raised:
        provider.create(video_request("nowhere", model="fal-ai/veo9"))
    assert raised.value.status == 404
    assert raised.value.code == "model_not_found"
    assert "veo9" in raised.value.message
    with pytest.raises(UpstreamRejectedError) as unknown:
        provider.get("fal-ai/veo3.1/0b5c8a52-4d7e-4f0e-9a57-7f4f3c9f2d11")
    assert unknown.value.status == 404
    assert unknown.value.code == "not_found"


def test_model_ids_without_a_known_dialect_are_refused_unless_the_account_names_one(
    sim: SoraSimulator,
) -> None:
    plain = FalProvider(account(sim.url))
    chosen = FalProvider(account(sim.url, dialect="kling"))
    try:
        with pytest.raises(UpstreamRejectedError) as raised:
            plain.create(
                video_request("other model", model="fal-ai/minimax/hailuo-02/standard/text-to-video")
            )
        assert raised.value.code == "unsupported_model"
        body = chosen.model_input(video_request("p", model="fal-ai/other/text-to-video", seconds=10))
        assert body == {"prompt": "p", "duration": "10", "aspect_ratio": "16:9"}
        for bad in ("veo3.1", "fal-ai/../x", "fal-ai/veo3.1?x=1"):
            with pytest.raises(UpstreamRejectedError):
                plain.create(video_request("bad id", model=bad))
    finally:
        plain.close()
        chosen.close()
    with pytest.raises(ValueError, match="dialect"):
        FalProvider(account(sim.url, dialect="sora"))


# -- throttling and transient faults -----------------------------------------------------------


def test_the_submission_quota_throttles_without_retry_after(
    sim: SoraSimulator, provider: FalProvider
) -> None:
    sim.update_config(creates_per_minute=1)
    provider.create(video_request("quota one #fal-quota"))
    with pytest.raises(UpstreamThrottled) as raised:
        provider.create(video_request("quota two #fal-quota"))
    assert raised.value.status == 429
    assert raised.value.retry_after is None
    assert jobs_created(sim, "#fal-quota") == 1


def test_a_throttled_request_with_retry_after_says_when(sim: SoraSimulator, provider: FalProvider) -> None:
    sim.update_config(fault_rate=1.0, fault_kinds="429")
    with pytest.raises(UpstreamThrottled) as raised:
        provider.create(video_request("throttled"))
    assert raised.value.status == 429
    assert raised.value.retry_after in (1.0, 2.0)


@pytest.mark.parametrize(
    ("kind", "error_class", "status"),
    [
        ("500", UpstreamTransientError, 500),
        ("503", UpstreamTransientError, 503),
        ("dropped", UpstreamTransientError, None),
        ("429", UpstreamThrottled, 429),
    ],
)
def test_faults_on_reads_are_retryable(
    sim: SoraSimulator, provider: FalProvider, kind: str, error_class: type[UpstreamError], status: int | None
) -> None:
    video = provider.create(video_request("polled through faults"))
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    for call in (lambda: provider.get(video.id), lambda: provider.delete(video.id)):
        with pytest.raises(error_class) as raised:
            call()
        assert not isinstance(raised.value, UpstreamAmbiguousError)
        assert raised.value.status == status
    sim.update_config(fault_rate=0.0)
    assert wait_until_finished(provider, provider.get(video.id))[-1] == "completed"


@pytest.mark.parametrize("kind", ["dropped", "500", "503"])
def test_a_submit_whose_answer_is_lost_is_ambiguous(
    sim: SoraSimulator, provider: FalProvider, kind: str
) -> None:
    sim.update_config(fault_rate=1.0, fault_kinds=kind)
    with pytest.raises(UpstreamAmbiguousError) as raised:
        provider.create(video_request("lost answer"))
    # Never retried blindly: fal can neither list requests nor take an idempotency key.
    assert not isinstance(raised.value, UpstreamTransientError)
    assert sim.stats()[f"faults_{kind}"] == 1


def test_a_submit_that_could_not_connect_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    adapter = FalProvider(account(f"http://127.0.0.1:{closed_port}"))
    try:
        with pytest.raises(UpstreamTransientError) as raised:
            adapter.create(video_request("never sent"))
        assert not isinstance(raised.value, UpstreamAmbiguousError)
    finally:
        adapter.close()


# -- credentials -------------------------------------------------------------------------------


def test_a_wrong_key_is_access_denied_and_never_repeated(sim: SoraSimulator) -> None:
    wrong = "wrong-fal-key-" + "w" * 20
    adapter = FalProvider(account(sim.url, key=wrong))
    some_id = "fal-ai/veo3.1/0b5c8a52-4d7e-4f0e-9a57-7f4f3c9f2d11"
    try:
        calls: list[Callable[[], object]] = [
            lambda: adapter.create(video_request("wrong key")),
            lambda: adapter.get(some_id),
            lambda: adapter.delete(some_id),
        ]
        for call in calls:
            with pytest.raises(UpstreamRejectedError) as raised:
                call()
            assert raised.value.status == 401
            assert raised.value.code == "upstream_access_denied"
            assert wrong not in str(raised.value)
            assert wrong not in repr(raised.value.args)
    finally:
        adapter.close()
    assert sim.stats()["unauthorized"] == 3
    assert wrong not in repr(account(sim.url, key=wrong))
    assert wrong not in repr(adapter)


def test_capabilities_and_unsupported_calls(sim: SoraSimulator, provider: FalProvider) -> None:
    capabilities = provider.capabilities
    assert (capabilities.image_input, capabilities.delete) == (True, True)
    assert (capabilities.remix, capabilities.find_recent, capabilities.thumbnail) == (False, False, False)
    with pytest.raises(UpstreamRejectedError), provider.open_asset("fal-ai/veo3.1/abc", "thumbnail"):
        pass
    with pytest.raises(UpstreamRejectedError):
        provider.remix("fal-ai/veo3.1/abc", "again")
    with pytest.raises(UpstreamRejectedError):
        provider.recent()
    for bad in ("abc", "fal-ai/veo3.1/requests/abc", "fal-ai/../abc", "fal-ai/veo3.1/a%2Fb"):
        with pytest.raises(UpstreamRejectedError) as raised:
            provider.get(bad)
        assert raised.value.status == 404


def test_the_module_builds_a_provider_for_an_account(sim: SoraSimulator) -> None:
    built = fal.build(account(sim.url))
    try:
        assert built.name == "fal-test"
        video = built.create(video_request("built by the factory"))
        assert video.status == "queued"
        assert isinstance(built, FalProvider)
        assert wait_until_finished(built, video)[-1] == "completed"
    finally:
        built.close()
    default = fal.build(ProviderAccount(name="fal", kind="fal", base_url="", api_key=KEY))
    assert getattr(default, "_base") == "https://queue.fal.run"  # noqa: B009
    default.close()


# -- the simulator's half of the protocol ------------------------------------------------------


def test_the_simulator_routes_stay_under_fal_ai(sim: SoraSimulator) -> None:
    headers = {"Authorization": f"Key {KEY}"}
    unknown_path = requests.post(
        f"{sim.url}/fal-ai/veo3.1/slow", json={"prompt": "p"}, headers=headers, timeout=10
    )
    assert unknown_path.status_code == 404
    no_key = requests.post(f"{sim.url}/fal-ai/veo3.1", json={"prompt": "p"}, timeout=10)
    assert no_key.status_code == 401
    assert isinstance(no_key.json()["detail"], str)
    submitted = requests.post(
        f"{sim.url}/fal-ai/veo3.1/fast", json={"prompt": "p"}, headers=headers, timeout=10
    )
    assert submitted.status_code == 200
    answer = submitted.json()
    assert set(answer) == {"request_id", "response_url", "status_url", "cancel_url", "queue_position"}
    assert answer["status_url"] == f"{sim.url}/fal-ai/veo3.1/requests/{answer['request_id']}/status"
    # The subpath form of the status URL is not where the request lives.
    subpath = requests.get(
        f"{sim.url}/fal-ai/veo3.1/fast/requests/{answer['request_id']}/status", headers=headers, timeout=10
    )
    assert subpath.status_code >= 400
    # Another app's URL does not find it either.
    other = requests.get(
        f"{sim.url}/fal-ai/kling-video/requests/{answer['request_id']}/status", headers=headers, timeout=10
    )
    assert other.status_code == 404
    status = requests.get(answer["status_url"], headers=headers, timeout=10)
    assert status.status_code == 202
    assert status.json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    not_json = requests.post(f"{sim.url}/fal-ai/veo3.1", data=b"{", headers=headers, timeout=10)
    assert not_json.status_code == 422
    assert not_json.json()["detail"][0]["type"] == "json_invalid"
    # The other protocols on the same server are not shadowed.
    assert requests.get(f"{sim.url}/_sim/health", timeout=10).status_code == 200
    assert requests.post(f"{sim.url}/v2/video/generations", json={}, timeout=10).status_code == 401
    assert requests.get(f"{sim.url}/_cdn/fal/nothing.mp4", timeout=10).status_code == 404


# -- documented variants the simulator does not produce, from a scripted loopback server -------


Answer = tuple[int, Any, dict[str, str]]


class ScriptedServer:
    """A loopback server answering each request with the next scripted (status, body, headers);
    a body of `TRUNCATED` announces more bytes than it sends, then closes the connection."""

    TRUNCATED = object()

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, str | None]] = []
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                script.requests.append((self.command, self.path, self.headers.get("Authorization")))
                status, body, headers = script.answers.pop(0)
                if body is ScriptedServer.TRUNCATED:
                    self.send_response(status)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"\x00\x00\x00\x18ftypmp42")
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer
            do_PUT = _answer

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


FINAL = {"X-Fal-Retryable": "false"}
VIDEO_ID = "fal-ai/veo3.1/req-1"


def infra(detail: str, error_type: str) -> dict[str, str]:
    return {"detail": detail, "error_type": error_type}


@pytest.mark.parametrize(
    ("answer", "error_class", "code"),
    [
        (
            (503, infra("no runner", "runner_scheduling_failure"), FINAL),
            UpstreamRejectedError,
            "runner_scheduling_failure",
        ),
        ((502, b"<html>bad gateway</html>", {}), UpstreamAmbiguousError, None),
        ((504, infra("timed out", "request_timeout"), {}), UpstreamAmbiguousError, None),
        ((200, b"not json", {}), UpstreamAmbiguousError, None),
        ((200, {"request_id": "../escape"}, {}), UpstreamAmbiguousError, None),  # not a URL-safe id
        ((400, {"detail": "bad input"}, {}), UpstreamRejectedError, "invalid_request"),
        ((403, {"detail": "locked"}, {}), UpstreamRejectedError, "upstream_access_denied"),
    ],
)
def test_submit_answers_are_classified(
    answer: Answer, error_class: type[UpstreamError], code: str | None
) -> None:
    with ScriptedServer([answer]) as server:
        adapter = FalProvider(account(server.url))
        try:
            with pytest.raises(error_class) as raised:
                adapter.create(video_request("classified"))
        finally:
            adapter.close()
    if code is not None:
        assert isinstance(raised.value, UpstreamRejectedError)
        assert raised.value.code == code
    if error_class is UpstreamAmbiguousError:
        assert not isinstance(raised.value, UpstreamTransientError)


COMPLETED: Answer = (200, {"status": "COMPLETED", "request_id": "req-1"}, {})


@pytest.mark.parametrize(
    ("answers", "status", "code"),
    [
        # A final infrastructure error in the result is the job's failure, its type the code.
        ([COMPLETED, (504, infra("took too long", "request_timeout"), FINAL)], "failed", "request_timeout"),
        # A 422 of another type than content policy: the model's own word.
        (
            [
                COMPLETED,
                (422, {"detail": [{"loc": ["body"], "msg": "no", "type": "no_media_generated"}]}, {}),
            ],
            "failed",
            "no_media_generated",
        ),
        (
            [COMPLETED, (422, {"detail": [{"msg": "x", "type": "content_policy_violation"}]}, FINAL)],
            "failed",
            "content_policy_violation",
        ),
        ([COMPLETED, (200, {"video": {}}, {})], "failed", "video_generation_failed"),
        ([(202, {"status": "IN_QUEUE", "queue_position": 7}, {})], "queued", None),
        ([(202, {"status": "SOMETHING_NEW"}, {})], "in_progress", None),
    ],
)
def test_result_answers_are_classified(answers: list[Answer], status: str, code: str | None) -> None:
    with ScriptedServer(answers) as server:
        adapter = FalProvider(account(server.url))
        try:
            video = adapter.get(VIDEO_ID)
        finally:
            adapter.close()
    assert (video.status, video.error_code) == (status, code)
    if status == "queued":
        assert video.queue_position == 7
    assert server.requests[0][1] == "/fal-ai/veo3.1/requests/req-1/status"


@pytest.mark.parametrize(
    ("answers", "error_class", "status"),
    [
        ([COMPLETED, (502, b"bad gateway", {})], UpstreamTransientError, 502),  # not final: ask again
        (
            [COMPLETED, (503, infra("busy", "runner_scheduling_failure"), {"Retry-After": "3"})],
            UpstreamTransientError,
            503,
        ),
        ([(500, infra("broken", "internal_error"), FINAL)], UpstreamRejectedError, 500),  # final, on status
        ([(200, b"[]", {})], UpstreamTransientError, 200),
    ],
)
def test_read_failures_are_classified(
    answers: list[Answer], error_class: type[UpstreamError], status: int
) -> None:
    with ScriptedServer(answers) as server:
        adapter = FalProvider(account(server.url))
        try:
            with pytest.raises(error_class) as raised:
                adapter.get(VIDEO_ID)
        finally:
            adapter.close()
    assert raised.value.status == status
    if status == 503:
        assert isinstance(raised.value, UpstreamTransientError)
        assert raised.value.retry_after == 3.0


def test_a_cdn_stream_that_breaks_off_is_transient() -> None:
    with ScriptedServer([]) as server:
        server.answers = [
            COMPLETED,
            (200, {"video": {"url": f"{server.url}/files/out.mp4"}}, {}),
            (200, ScriptedServer.TRUNCATED, {}),
        ]
        adapter = FalProvider(account(server.url))
        try:
            with pytest.raises(UpstreamTransientError), adapter.open_asset(VIDEO_ID) as chunks:
                b"".join(chunks)
        finally:
            adapter.close()
    assert [auth for _, path, auth in server.requests if path == "/files/out.mp4"] == [None]
    assert [auth for _, path, auth in server.requests if path != "/files/out.mp4"] == [f"Key {KEY}"] * 2


def test_errors_never_repeat_the_key() -> None:
    echoed = {"detail": [{"loc": ["header"], "msg": f"bad key {KEY}", "type": "invalid"}]}
    with ScriptedServer([(422, echoed, {})]) as server:
        adapter = FalProvider(account(server.url))
        try:
            with pytest.raises(UpstreamRejectedError) as raised:
                adapter.create(video_request("echo"))
        finally:
            adapter.close()
    assert KEY not in str(raised.value)
    assert "***" in raised.value.message
