"""fal's queue API (queue.fal.run) on the simulator, at the server's root as on fal's own host.

What is simulated, after fal's JS client and fal's queue, cancel and error docs:

- `POST /fal-ai/{app}[/{subpath}]` submits the model input (JSON) with `Authorization: Key <key>`
  and answers `{request_id, response_url, status_url, cancel_url, queue_position}` at once; the
  queue never looks at the prompt. Known model ids are those of `MODELS`; an unknown app is 404
  `{"detail": "Application '<app>' not found"}`, an unknown path under a known app 404 too.
- Status, result and cancel are addressed by owner and app only, never by the subpath:
  `GET /fal-ai/{app}/requests/{id}/status` answers 202 `IN_QUEUE` (with `queue_position`: how
  many of this protocol's earlier requests are still waiting, so it falls as they start), 202
  `IN_PROGRESS` (with `logs`) and 200 `COMPLETED` (with `logs` and `metrics.inference_time`).
- `GET /fal-ai/{app}/requests/{id}` is the output, `{"video": {"url", "content_type",
  "file_name"}}`, or the model's error status and body for a request that failed.
- `PUT /fal-ai/{app}/requests/{id}/cancel`: 202 `CANCELLATION_REQUESTED` for a waiting or running
  request, 400 `ALREADY_COMPLETED` for a finished one, 404 `NOT_FOUND` (those two status codes are
  not documented: the simulator's choice). A waiting request is removed from the queue; a running
  one only gets the signal, which the simulated model ignores (fal says it may still complete).
- Input validation as fal's pydantic models do it: 422 `{"detail": [{"loc", "msg", "type",
  "input"}]}`; unknown fields are ignored. Veo: `duration` "4s" | "6s" | "8s", `aspect_ratio`
  "16:9" | "9:16" ("auto" too with an image), `resolution` "720p" | "1080p" | "4k"; Kling:
  `duration` "5" | "10" (resolution fixed by the tier). Image-to-video models require
  `image_url`: an http(s) URL (on trust, nothing is fetched) or a base64 data URI of a JPEG, PNG
  or WebP image (checked).
- Per-request options: Veo 3.1 inputs take `negative_prompt` (string) and `generate_audio`
  (boolean), Kling v2.x inputs `negative_prompt` (fal's model schemas); a wrong type is 422 with
  pydantic's `string_type`, `bool_type` or `bool_parsing`. A boolean is read as pydantic's lax
  mode reads one ("true", "off", 1, ...) [assumed: fal's inputs are pydantic models in the
  default lax mode]; a field the model lacks (`generate_audio` for Kling) is ignored like any
  unknown field. `/_sim/created` records both fields as each accepted submit sent them.
- The video is on a key-less CDN-like path of this server, `/_cdn/fal/<token>.mp4`; like the other
  simulated CDNs it refuses a request carrying `Authorization` (403), so a leaked key shows.

Simulator choices (fal documents none of these):

- `#sim:blocked`: the request completes when it would have started, and its result is 422 with a
  `content_policy_violation` detail and `X-Fal-Retryable: false`. `#sim:fail`: the request fails
  part-way (the shared lifecycle) and its result is 500 `{"detail", "error_type":
  "internal_error"}` with `X-Fal-Error-Type` and `X-Fal-Retryable: false`.
- A request cancelled while waiting shows `COMPLETED`, and its result is 400 `{"detail",
  "error_type": "request_cancelled"}`; a result asked for before completion is 400.
- The creation quota (`creates_per_minute`) answers 429 without Retry-After; injected faults
  (`fault_rate`, `fault_kinds`) answer 429 with Retry-After, 500 `internal_error`, 503
  `runner_scheduling_failure` (with `X-Fal-Retryable: true`) or a dropped connection, on the API
  paths only, never on the CDN.
- The key is the config's `fal_key` (`SORA_SIM_FAL_KEY`; a simulator-only key).

Jobs are the shared `SimulatorState` jobs (quota, counters, `/_sim/created`, timing), so they
also show in the Azure protocol's job list.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sorasim.errors import ApiError
from sorasim.faults import Fault, FaultKind
from sorasim.gate import guarded, same_secret
from sorasim.images import ImageError, image_info
from sorasim.jobs import Job, VideoSpec
from sorasim.lifecycle import QUEUED_SHARE
from sorasim.media import MediaError, pad_video
from sorasim.params import BLOCK_MARKER
from sorasim.state import SimulatorState
from sorasim.videos import stream_video

OWNER = "fal-ai"
CDN_PREFIX = "/_cdn/fal/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Model:
    dialect: str  # "veo" or "kling": which input fields the model takes
    image: bool  # image-to-video: `image_url` is required
    resolution: str = "720p"  # Kling's, fixed by the model's tier


MODELS: dict[str, Model] = {
    "fal-ai/veo3.1": Model("veo", image=False),
    "fal-ai/veo3.1/fast": Model("veo", image=False),
    "fal-ai/veo3.1/image-to-video": Model("veo", image=True),
    "fal-ai/veo3.1/fast/image-to-video": Model("veo", image=True),
    "fal-ai/kling-video/v2.1/standard/image-to-video": Model("kling", image=True, resolution="720p"),
    "fal-ai/kling-video/v2.1/pro/image-to-video": Model("kling", image=True, resolution="1080p"),
    "fal-ai/kling-video/v2.1/master/image-to-video": Model("kling", image=True, resolution="1080p"),
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": Model("kling", image=False, resolution="1080p"),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": Model("kling", image=True, resolution="1080p"),
}
APPS = frozenset(model_id.split("/")[1] for model_id in MODELS)

VEO_DURATIONS = ("4s", "6s", "8s")
VEO_RESOLUTIONS = ("720p", "1080p", "4k")
KLING_DURATIONS = ("5", "10")
ASPECT_RATIOS = ("16:9", "9:16")
KLING_ASPECT_RATIOS = ("16:9", "9:16", "1:1")
# Height of each resolution; width follows from the aspect ratio.
HEIGHTS = {"720p": 720, "1080p": 1080, "4k": 2160}
WIDE = {720: 1280, 1080: 1920, 2160: 3840}
# The per-request option fields each dialect's input declares (gateway.video_options names).
DIALECT_OPTIONS = {"veo": ("negative_prompt", "generate_audio"), "kling": ("negative_prompt",)}
# What the /_sim/created record keeps of a submit, whether its model takes the field or not.
OPTION_FIELDS = ("negative_prompt", "generate_audio")
# The strings and numbers pydantic's lax mode reads as a boolean.
LAX_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
LAX_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class FalError(Exception):
    """An answer in fal's error shape: `{"detail": ...}` plus any fields and headers."""

    def __init__(
        self,
        status: int,
        detail: object,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"detail": self.detail, **self.extra}
        return web.json_response(body, status=self.status, headers=self.headers)


def invalid(field: str, value: object, message: str, kind: str) -> FalError:
    location = ["body", field] if field else ["body"]
    return FalError(422, [{"loc": location, "msg": message, "type": kind, "input": value}])


def infrastructure(status: int, error_type: str, message: str, *, retryable: bool) -> FalError:
    headers = {"X-Fal-Error-Type": error_type, "X-Fal-Retryable": "true" if retryable else "false"}
    return FalError(status, message, extra={"error_type": error_type}, headers=headers)


@dataclass(frozen=True)
class Record:
    """What fal shows of one request besides the shared Job."""

    request_id: str
    app: str
    job_id: str
    token: str


class FalApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}  # in submission order: the queue's order
        self._tokens: dict[str, str] = {}
        self._cancelled: set[str] = set()

    def add_routes(self, app: web.Application) -> None:
        # Only the `fal-ai` owner, so no other protocol's root-level path is ever shadowed.
        base = f"/{OWNER}/{{app}}/requests/{{request_id}}"
        app.router.add_get(f"{base}/status", self._guarded(self.status))
        app.router.add_get(base, self._guarded(self.result))
        app.router.add_put(f"{base}/cancel", self._guarded(self.cancel))
        app.router.add_post(f"/{OWNER}/{{path:.+}}", self._guarded(self.submit))
        app.router.add_get(CDN_PREFIX + "{token}.mp4", self.cdn, allow_head=False)

    # -- the queue -----------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.StreamResponse:
        model_id = f"{OWNER}/{request.match_info['path'].rstrip('/')}"
        model = MODELS.get(model_id)
        if model is None:
            app = model_id.split("/")[1]
            raise FalError(404, f"Application '{app}' not found" if app not in APPS else "Not Found")
        body = await _input(request)
        spec = _spec(model_id, model, body)
        options = {name: body[name] for name in OPTION_FIELDS if name in body}
        try:
            job = self._state.admit(spec, options=options)
        except ApiError as error:
            if error.status != 429:
                raise
            raise FalError(429, "Too many requests: the simulated submission limit is reached.") from None
        record = Record(str(uuid.uuid4()), model_id.split("/")[1], job.id, secrets.token_urlsafe(18))
        with self._lock:
            self._records[record.request_id] = record
            self._tokens[record.token] = record.request_id
        body = {**self._urls(request, record), "queue_position": self._position(record)}
        return web.json_response(body, headers={"x-fal-request-id": record.request_id})

    async def status(self, request: web.Request) -> web.StreamResponse:
        record, job = self._find(request)
        now = self._state.clock()
        state = self._queue_state(record, job, now)
        body: dict[str, Any] = {**self._urls(request, record), "status": state}
        if state == "IN_QUEUE":
            body["queue_position"] = self._position(record)
        else:
            body["logs"] = _logs(job, now, state)
        if state == "COMPLETED":
            body["metrics"] = {"inference_time": round(_finished_after(job, now) * (1 - QUEUED_SHARE), 3)}
        return web.json_response(body, status=200 if state == "COMPLETED" else 202)

    async def result(self, request: web.Request) -> web.StreamResponse:
        record, job = self._find(request)
        now = self._state.clock()
        if self._queue_state(record, job, now) != "COMPLETED":
            raise FalError(400, "Request is still in progress")
        failure = self._failure(record, job, now)
        if failure is not None:
            raise failure
        url = f"{request.scheme}://{request.host}{CDN_PREFIX}{record.token}.mp4"
        video = {"url": url, "content_type": "video/mp4", "file_name": "output.mp4"}
        return web.json_response({"video": video}, headers={"x-fal-request-id": record.request_id})

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        try:
            record, job = self._find(request)
        except FalError:
            return web.json_response({"status": "NOT_FOUND"}, status=404)
        now = self._state.clock()
        state = self._queue_state(record, job, now)
        if state == "COMPLETED":
            return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
        if state == "IN_QUEUE":
            with self._lock:
                self._cancelled.add(record.request_id)
            # The shared counters have no "cancelled": removing a waiting job is a deletion.
            self._state.stats.increment("jobs_deleted")
        # A running request only gets the signal: the simulated model finishes anyway.
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    # -- the CDN -------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            return web.Response(status=403, text="Credentials are not accepted by the CDN.\n")
        with self._lock:
            request_id = self._tokens.get(request.match_info["token"])
            record = None if request_id is None else self._records.get(request_id)
        job = None if record is None else self._state.jobs.get(record.job_id)
        now = self._state.clock()
        if record is None or job is None or self._queue_state(record, job, now) != "COMPLETED":
            return web.Response(status=404, text="Not Found\n")
        if self._failure(record, job, now) is not None:
            return web.Response(status=404, text="Not Found\n")
        try:
            path = await asyncio.to_thread(self._state.media.video, job.spec.size, int(job.spec.seconds))
        except MediaError as error:
            return web.Response(status=500, text=f"Could not render the video: {error}\n")
        self._state.stats.increment("downloads")
        return await stream_video(request, pad_video(path, self._state.config.video_bytes))

    # -- views ---------------------------------------------------------------------------------

    def _find(self, request: web.Request) -> tuple[Record, Job]:
        with self._lock:
            record = self._records.get(request.match_info["request_id"])
        job = None if record is None else self._state.jobs.get(record.job_id)
        if record is None or job is None or record.app != request.match_info["app"]:
            raise FalError(404, "Request not found")
        return record, job

    def _queue_state(self, record: Record, job: Job, now: float) -> str:
        with self._lock:
            cancelled = record.request_id in self._cancelled
        if cancelled:
            return "COMPLETED"
        if BLOCK_MARKER in job.spec.prompt:
            # The model refuses as soon as it looks at the request.
            waiting = now - job.created_at < QUEUED_SHARE * job.job_seconds
            return "IN_QUEUE" if waiting else "COMPLETED"
        phase = job.phase(now).status
        return {"queued": "IN_QUEUE", "in_progress": "IN_PROGRESS"}.get(phase, "COMPLETED")

    def _position(self, record: Record) -> int:
        """How many earlier requests of this queue still wait: 0 is next in line."""
        now = self._state.clock()
        with self._lock:
            earlier = list(self._records.values())
        ahead = 0
        for other in earlier:
            if other.request_id == record.request_id:
                break
            job = self._state.jobs.get(other.job_id)
            if job is not None and self._queue_state(other, job, now) == "IN_QUEUE":
                ahead += 1
        return ahead

    def _failure(self, record: Record, job: Job, now: float) -> FalError | None:
        """The result's error answer for a request that did not produce a video."""
        with self._lock:
            cancelled = record.request_id in self._cancelled
        if cancelled:
            return infrastructure(
                400, "request_cancelled", "The request was cancelled while in queue", retryable=False
            )
        if BLOCK_MARKER in job.spec.prompt:
            item = {
                "loc": ["body", "prompt"],
                "msg": "The content could not be processed because it contained material flagged by a "
                "content checker (simulated by the #sim:blocked prompt marker).",
                "type": "content_policy_violation",
                "input": job.spec.prompt,
            }
            return FalError(422, [item], headers={"X-Fal-Retryable": "false"})
        if job.phase(now).status == "failed":
            return infrastructure(
                500,
                "internal_error",
                "Video generation failed part-way (simulated by the #sim:fail prompt marker).",
                retryable=False,
            )
        return None

    @staticmethod
    def _urls(request: web.Request, record: Record) -> dict[str, str]:
        base = f"{request.scheme}://{request.host}/{OWNER}/{record.app}/requests/{record.request_id}"
        return {
            "request_id": record.request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    # -- the gate ------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        return guarded(
            self._state, handler, authorize=self._authorize, render_fault=_fault_body, errors=FalError
        )

    def _authorize(self, request: web.Request) -> None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "key" and same_secret(key.strip(), self._state.config.fal_key):
            return
        self._state.stats.increment("unauthorized")
        if not scheme:
            raise FalError(401, "Missing credentials: send the header 'Authorization: Key <FAL_KEY>'.")
        raise FalError(401, "The API key in the Authorization header is not valid.")


# -- input ---------------------------------------------------------------------------------------


async def _input(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise invalid("", None, "Invalid JSON", "json_invalid") from None
    if not isinstance(body, dict):
        raise invalid("", body, "Input should be a valid dictionary", "model_attributes_type")
    return body


def _spec(model_id: str, model: Model, body: dict[str, Any]) -> VideoSpec:
    prompt = body.get("prompt")
    if prompt is None:
        raise invalid("prompt", None, "Field required", "missing")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt", prompt, "Input should be a non-empty string", "string_type")
    image = _image(body.get("image_url")) if model.image else None
    if model.dialect == "veo":
        ratios = (*ASPECT_RATIOS, "auto") if model.image else ASPECT_RATIOS
        duration = _choice(body, "duration", VEO_DURATIONS, "8s")
        aspect = _choice(body, "aspect_ratio", ratios, "16:9")
        resolution = _choice(body, "resolution", VEO_RESOLUTIONS, "720p")
        seconds = duration.removesuffix("s")
    else:
        seconds = _choice(body, "duration", KLING_DURATIONS, "5")
        aspect = "auto" if model.image else _choice(body, "aspect_ratio", KLING_ASPECT_RATIOS, "16:9")
        resolution = model.resolution
    if aspect == "auto":
        aspect = "9:16" if image is not None and image[1] > image[0] else "16:9"
    _options(body, DIALECT_OPTIONS[model.dialect])
    return VideoSpec(prompt=prompt, model=model_id, seconds=seconds, size=_size(aspect, resolution))


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        expected = " or ".join(f"'{option}'" for option in allowed)
        raise invalid(name, value, f"Input should be {expected}", "literal_error")
    return value


def _options(body: dict[str, Any], declared: tuple[str, ...]) -> None:
    """The option fields the model declares, typed as pydantic checks them."""
    if "negative_prompt" in declared and body.get("negative_prompt") is not None:
        value = body["negative_prompt"]
        if not isinstance(value, str):
            raise invalid("negative_prompt", value, "Input should be a valid string", "string_type")
    if "generate_audio" in declared and "generate_audio" in body:
        _lax_bool("generate_audio", body["generate_audio"])


def _lax_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.lower()
        if word in LAX_TRUE | LAX_FALSE:
            return word in LAX_TRUE
        raise invalid(
            name, value, "Input should be a valid boolean, unable to interpret input", "bool_parsing"
        )
    raise invalid(name, value, "Input should be a valid boolean", "bool_type")


def _image(value: Any) -> tuple[int, int] | None:
    """Width and height of a data-URI image; None for an http(s) URL (taken on trust)."""
    if value is None:
        raise invalid("image_url", None, "Field required", "missing")
    if not isinstance(value, str):
        raise invalid("image_url", value, "Input should be a valid string", "string_type")
    if value.startswith(("https://", "http://")):
        return None
    header, _, payload = value.partition(",")
    if not value.startswith("data:") or not header.endswith(";base64"):
        raise invalid("image_url", value[:64], "Input should be a URL or a base64 data URI", "url_parsing")
    try:
        info = image_info(base64.b64decode(payload, validate=True))
    except (binascii.Error, ImageError):
        raise invalid(
            "image_url", value[:64], "The data URI is not a JPEG, PNG or WebP image", "image_load_error"
        ) from None
    return info.width, info.height


def _size(aspect: str, resolution: str) -> str:
    height = HEIGHTS[resolution]
    if aspect == "1:1":
        return f"{height}x{height}"
    wide = WIDE[height]
    return f"{wide}x{height}" if aspect == "16:9" else f"{height}x{wide}"


def _finished_after(job: Job, now: float) -> float:
    finished = job.phase(now).finished_after
    return finished if finished is not None else max(0.0, now - job.created_at)


def _logs(job: Job, now: float, state: str) -> list[dict[str, str]]:
    stamp = job.created_at + QUEUED_SHARE * job.job_seconds
    logs = [{"message": "Generating video", "level": "INFO", "source": "USER", "timestamp": _iso(stamp)}]
    if state == "COMPLETED":
        logs.append({"message": "Done", "level": "INFO", "source": "USER", "timestamp": _iso(now)})
    return logs


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fault_body(fault: Fault) -> web.Response:
    """A simulated fault in fal's error shapes."""
    if fault.kind is FaultKind.TOO_MANY_REQUESTS:
        retry_after = str(fault.retry_after or 1)
        return FalError(
            429, "Too many requests (simulated fault)", headers={"Retry-After": retry_after}
        ).response()
    if fault.kind is FaultKind.SERVICE_UNAVAILABLE:
        return infrastructure(
            503,
            "runner_scheduling_failure",
            "No runner could take the request (simulated fault)",
            retryable=True,
        ).response()
    return infrastructure(
        500, "internal_error", "Internal server error (simulated fault)", retryable=True
    ).response()
