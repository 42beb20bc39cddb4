"""The AI/ML API video protocol (api.aimlapi.com) on the simulator, next to the Azure one.

What is simulated, after the provider's public docs (AI/ML API docs: video-models schemas,
universal-video-fetch, errors-and-messages):

- `POST /v2/video/generations` with a JSON body `{model, prompt, duration, aspect_ratio,
  resolution, image_url}` (fields per model, see `MODELS`) and `Authorization: Bearer <key>`;
  the answer is the same object a poll returns, normally `status: "queued"`.
- `GET /v2/video/generations?generation_id=<id>` answers `{id, status, video, error, meta}` with
  `status` one of `queued`, `generating`, `completed`, `error`; there is no progress field.
  Ids look like the provider's, `<hex>:<model>`, so they contain `:` and `/`.
- Errors are `{message, path, requestId, statusCode, timestamp}`: 400 "Body validation error!"
  (followed by a detail line), 401 for a missing or wrong key, 404, 429 "Too Many Requests" (sent
  without Retry-After, as a third-party probe saw), 500 and 503.
- A refused prompt (`#sim:blocked`) is accepted, then ends in `status: "error"` with
  `error: {name: "content_policy_violation", message}`: the docs say refusals arrive as failed
  generations, not as create errors (the name itself is the simulator's choice; none is documented).
  `#sim:fail` ends in `error` with the name `video_generation_failed`, at the same point as on Azure.
- The finished video is `video.url` on a CDN-like path of this server, `/_cdn/aimlapi/<token>.mp4`,
  fetched without credentials. This CDN refuses any request that carries an `Authorization`
  header (403), so a client leaking its API key to the CDN host is caught by tests; the real CDN's
  behaviour there is not documented.
- The Veo 3.1 schemas' per-request options: `negative_prompt` (string) and `generate_audio`
  (boolean, default true); a wrong type is 400 "Body validation error!" naming the field and the
  type received. `/_sim/created` records both fields as each accepted create sent them. The other
  optional fields (and these on other models) are accepted and ignored, as before.
- `image_url` (image-to-video models) may be an http(s) URL, taken on trust (the simulator never
  fetches anything), or a base64 `data:` URL of a JPEG, PNG or WebP image, which is checked.

Jobs are the shared `SimulatorState` jobs (quota, counting, `/_sim/created`, timing and markers
as for Azure), faults come from the same knobs (`fault_rate`, `fault_kinds`) and are drawn for
every `/v2/` request; the CDN path is never faulted. Shared, so also visible elsewhere: these
jobs appear in the Azure protocol's job list, `/v2/` requests count in the `requests` counter, and
`aimlapi_key` shows in `/_sim/config` (a simulator-only key, not masked there).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sorasim.errors import ApiError
from sorasim.faults import Fault, FaultKind
from sorasim.gate import answer_fault, same_secret
from sorasim.images import ImageError, image_info
from sorasim.jobs import Job, VideoSpec
from sorasim.lifecycle import QUEUED_SHARE
from sorasim.media import MediaError, pad_video
from sorasim.params import BLOCK_MARKER
from sorasim.state import SimulatorState
from sorasim.videos import stream_video

GENERATIONS_PATH = "/v2/video/generations"
CDN_PREFIX = "/_cdn/aimlapi/"
JOB_ID_PREFIX = "video_"

BODY_VALIDATION_ERROR = "Body validation error!"
INVALID_KEY_MESSAGE = (
    "This request requires a valid API key. You can create a new API key on the Billing page: "
    "https://aimlapi.com/app/keys"
)


@dataclass(frozen=True)
class ModelRules:
    durations: tuple[int, ...]
    default_duration: int
    resolutions: tuple[str, ...]
    default_resolution: str
    image: bool  # image-to-video: `image_url` is required (and only then allowed)
    aspect_ratios: tuple[str, ...] = ("16:9", "9:16")
    default_aspect_ratio: str = "16:9"
    # The typed per-request options its schema declares (name -> JSON type).
    options: tuple[tuple[str, str], ...] = ()


VEO_OPTIONS = (("negative_prompt", "string"), ("generate_audio", "boolean"))


# From the provider's per-model schemas (Veo 3.1 t2v/i2v, Sora 2 t2v/i2v).
MODELS: dict[str, ModelRules] = {
    "google/veo-3.1-t2v": ModelRules(
        (4, 6, 8), 8, ("720p", "1080p"), "1080p", image=False, options=VEO_OPTIONS
    ),
    "google/veo-3.1-t2v-fast": ModelRules(
        (4, 6, 8), 8, ("720p", "1080p"), "1080p", image=False, options=VEO_OPTIONS
    ),
    "google/veo-3.1-i2v": ModelRules(
        (4, 6, 8), 8, ("720p", "1080p"), "1080p", image=True, options=VEO_OPTIONS
    ),
    "openai/sora-2-t2v": ModelRules((4, 8, 12), 4, ("720p",), "720p", image=False),
    "openai/sora-2-i2v": ModelRules((4, 8, 12), 4, ("720p",), "720p", image=True),
}

# Fields any video model may carry besides its shape; accepted and ignored by the simulator.
OPTIONAL_FIELDS = frozenset(
    {"generate_audio", "seed", "auto_fix", "negative_prompt", "enhance_prompt", "provider"}
)
SHAPE_FIELDS = frozenset({"model", "prompt", "duration", "aspect_ratio", "resolution", "image_url"})
# What the /_sim/created record keeps of a create (gateway.video_options names).
OPTION_FIELDS = ("negative_prompt", "generate_audio")
# The JSON type names the validator's messages use.
JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)

PIXELS: dict[tuple[str, str], str] = {
    ("16:9", "720p"): "1280x720",
    ("9:16", "720p"): "720x1280",
    ("16:9", "1080p"): "1920x1080",
    ("9:16", "1080p"): "1080x1920",
}

CREDITS_PER_SECOND = {"720p": 210_000, "1080p": 393_750}


class AimlApiError(Exception):
    """An error answered in the AI/ML API shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _validation_error(detail: str) -> AimlApiError:
    return AimlApiError(400, f"{BODY_VALIDATION_ERROR}\n{detail}")


def error_response(request: web.Request, status: int, message: str) -> web.Response:
    body = {
        "message": message,
        "path": request.path,
        "requestId": str(uuid.uuid4()),
        "statusCode": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return web.json_response(body, status=status)


def generation_id(job: Job) -> str:
    """The provider-style id of a job: `<hex>:<model>` (opaque to clients, with `:` and `/`)."""
    return f"{job.id.removeprefix(JOB_ID_PREFIX)}:{job.spec.model}"


def job_id_of(generation: str) -> str | None:
    token, separator, _model = generation.partition(":")
    if not separator or not token:
        return None
    return JOB_ID_PREFIX + token


class AimlApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(GENERATIONS_PATH, self.create)
        app.router.add_get(GENERATIONS_PATH, self.retrieve)
        app.router.add_get(CDN_PREFIX + "{token}.mp4", self.cdn, allow_head=False)

    # -- the API -----------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.StreamResponse:
        rejected = self._gate(request)
        if rejected is not None:
            return rejected
        try:
            spec, options = await _parse_create(request)
            try:
                job = self._state.admit(spec, options=options)
            except ApiError as error:
                if error.status == 429:
                    raise AimlApiError(429, "Too Many Requests") from None
                raise
        except AimlApiError as error:
            return self._error(request, error)
        return web.json_response(self._generation(request, job))

    async def retrieve(self, request: web.Request) -> web.StreamResponse:
        rejected = self._gate(request)
        if rejected is not None:
            return rejected
        generation = request.query.get("generation_id", "")
        try:
            if not generation:
                raise _validation_error("generation_id: Required")
            job_id = job_id_of(generation)
            job = None if job_id is None else self._state.jobs.get(job_id)
            if job is None or generation_id(job) != generation:
                raise AimlApiError(404, f"Generation {generation!r} not found.")
        except AimlApiError as error:
            return self._error(request, error)
        return web.json_response(self._generation(request, job))

    # -- the CDN -----------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            # The simulated CDN takes no credentials, and tells a client that sends some.
            return web.Response(status=403, text="Credentials are not accepted by the CDN.\n")
        job = self._state.jobs.get(JOB_ID_PREFIX + request.match_info["token"])
        now = self._state.clock()
        if job is None or _status(job, now) != "completed":
            return web.Response(status=404, text="Not Found\n")
        expires_at = job.expires_at(now)
        if expires_at is not None and now >= expires_at:
            return web.Response(status=404, text="Not Found\n")
        try:
            path = await asyncio.to_thread(self._state.media.video, job.spec.size, int(job.spec.seconds))
        except MediaError as error:
            return web.Response(status=500, text=f"Could not render the video: {error}\n")
        self._state.stats.increment("downloads")
        return await stream_video(request, pad_video(path, self._state.config.video_bytes))

    # -- shared ------------------------------------------------------------------------------

    def _gate(self, request: web.Request) -> web.StreamResponse | None:
        """Faults first (a faulted request has no side effect), then the bearer key."""
        state = self._state
        state.stats.increment("requests")
        config = state.config
        fault = state.faults.draw(config.fault_rate, config.fault_kind_list)
        if fault is not None:
            return self._fault(request, fault)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(key.strip(), config.aimlapi_key):
            return self._error(request, AimlApiError(401, INVALID_KEY_MESSAGE))
        return None

    def _fault(self, request: web.Request, fault: Fault) -> web.Response:
        return answer_fault(request, fault, self._state, lambda drawn: _fault_body(request, drawn))

    def _error(self, request: web.Request, error: AimlApiError) -> web.Response:
        if error.status == 401:
            self._state.stats.increment("unauthorized")
        elif 400 <= error.status < 500 and error.status != 429:
            self._state.stats.increment("client_errors")
        return error_response(request, error.status, error.message)

    def _generation(self, request: web.Request, job: Job) -> dict[str, Any]:
        now = self._state.clock()
        status = _status(job, now)
        video = None
        if status == "completed":
            video = {
                "url": f"{request.scheme}://{request.host}{CDN_PREFIX}{job.id.removeprefix(JOB_ID_PREFIX)}.mp4"
            }
        error = None
        if status == "error":
            if BLOCK_MARKER in job.spec.prompt:
                error = {
                    "name": "content_policy_violation",
                    "message": "The prompt was refused by the content policy "
                    "(simulated by the #sim:blocked prompt marker).",
                }
            else:
                error = {
                    "name": "video_generation_failed",
                    "message": "Video generation failed part-way (simulated by the #sim:fail prompt marker).",
                }
        resolution = _resolution_of(job.spec.size)
        credits = CREDITS_PER_SECOND[resolution] * int(job.spec.seconds)
        return {
            "id": generation_id(job),
            "status": status,
            "video": video,
            "error": error,
            "meta": {"usage": {"credits_used": credits}},
        }


def _status(job: Job, now: float) -> str:
    """The provider's status: a refused prompt errors when rendering would start."""
    elapsed = now - job.created_at
    if BLOCK_MARKER in job.spec.prompt:
        return "queued" if elapsed < QUEUED_SHARE * job.job_seconds else "error"
    phase = job.phase(now)
    return {"queued": "queued", "in_progress": "generating", "completed": "completed"}.get(
        phase.status, "error"
    )


def _resolution_of(size: str) -> str:
    return next(resolution for (_, resolution), pixels in PIXELS.items() if pixels == size)


async def _parse_create(request: web.Request) -> tuple[VideoSpec, dict[str, Any]]:
    """The job a create asks for, and the option fields it carried."""
    try:
        body = await request.json()
    except ValueError:
        raise _validation_error("Expected a JSON object, received invalid JSON") from None
    if not isinstance(body, dict):
        raise _validation_error("Expected object, received " + type(body).__name__)
    model = body.get("model")
    if not isinstance(model, str) or model not in MODELS:
        expected = " | ".join(f"'{name}'" for name in MODELS)
        raise _validation_error(f"model: Invalid enum value. Expected {expected}, received {model!r}")
    rules = MODELS[model]
    unknown = sorted(set(body) - SHAPE_FIELDS - OPTIONAL_FIELDS)
    if unknown:
        raise _validation_error(f"Unrecognized key(s) in object: {', '.join(map(repr, unknown))}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _validation_error(f"prompt: Expected string, received {type(prompt).__name__}")
    duration = body.get("duration", rules.default_duration)
    if isinstance(duration, bool) or not isinstance(duration, int) or duration not in rules.durations:
        expected = " | ".join(str(value) for value in rules.durations)
        raise _validation_error(f"duration: Invalid enum value. Expected {expected}, received {duration!r}")
    aspect_ratio = _choice(body, "aspect_ratio", rules.aspect_ratios, rules.default_aspect_ratio)
    resolution = _choice(body, "resolution", rules.resolutions, rules.default_resolution)
    image_url = body.get("image_url")
    if rules.image:
        _check_image_url(image_url)
    elif image_url is not None:
        raise _validation_error(f"Unrecognized key(s) in object: 'image_url' (model {model} takes no image)")
    _check_options(body, rules)
    size = PIXELS[(aspect_ratio, resolution)]
    options = {name: body[name] for name in OPTION_FIELDS if name in body}
    return VideoSpec(prompt=prompt, model=model, seconds=str(duration), size=size), options


def _check_options(body: dict[str, Any], rules: ModelRules) -> None:
    for name, expected in rules.options:
        if name in body and _json_type(body[name]) != expected:
            raise _validation_error(f"{name}: Expected {expected}, received {_json_type(body[name])}")


def _json_type(value: Any) -> str:
    return next((name for kind, name in JSON_TYPES if isinstance(value, kind)), "null")


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        expected = " | ".join(f"'{option}'" for option in allowed)
        raise _validation_error(f"{name}: Invalid enum value. Expected {expected}, received {value!r}")
    return value


def _check_image_url(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise _validation_error(f"image_url: Required, received {value!r}")
    if value.startswith(("https://", "http://")):
        return  # taken on trust: the simulator fetches nothing
    if not value.startswith("data:"):
        raise _validation_error("image_url: Invalid url")
    header, _, payload = value.partition(",")
    if not header.endswith(";base64"):
        raise _validation_error("image_url: data URLs must be base64-encoded")
    try:
        image_info(base64.b64decode(payload, validate=True))
    except (binascii.Error, ImageError):
        raise _validation_error("image_url: not a JPEG, PNG or WebP image") from None


def _fault_body(request: web.Request, fault: Fault) -> web.Response:
    """A simulated fault in AI/ML API's error shape (429 without Retry-After, as observed)."""
    if fault.kind is FaultKind.TOO_MANY_REQUESTS:
        return error_response(request, 429, "Too Many Requests")
    if fault.kind is FaultKind.SERVICE_UNAVAILABLE:
        return error_response(request, 503, "Service unavailable")
    return error_response(request, 500, "Internal server error")
