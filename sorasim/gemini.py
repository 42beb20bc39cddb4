"""Google's Gemini API for Veo (`/v1beta/*`) on the simulator, next to the Azure protocol.

It shares the simulator's state: the creation quota and counters (`SimulatorState.admit`, so
`/_sim/created?prompt_contains=` counts these jobs too), the job lifecycle and timing
(`job_seconds`), the media library (real MP4s of the asked pixels and seconds) and the fault
knobs (`fault_rate`, `fault_kinds`, drawn for every `/v1beta/` request).

What it models (after Google's video-generation docs, the python-genai SDK and the
generativelanguage client types; [assumed] marks what those do not say):

- The key in `x-goog-api-key`, checked against `SimulatorConfig.gemini_key` (`SORA_SIM_GEMINI_KEY`).
  No key: 403 PERMISSION_DENIED; a wrong key: 400 INVALID_ARGUMENT with a google.rpc.ErrorInfo detail of reason API_KEY_INVALID [assumed: what the API is widely seen
  to answer, not in the sources].
- `POST /v1beta/models/{model}:predictLongRunning` with `{"instances": [{...}], "parameters":
  {...}}` (a top-level `webhookConfig` is accepted and ignored). One instance: `prompt`, an
  optional first-frame `image` in either encoding the sources show (`{"inlineData": {"mimeType",
  "data"}}` from the docs' REST examples, `{"bytesBase64Encoded", "mimeType"}` from the SDK),
  which must decode to a JPEG, PNG or WebP; `lastFrame` only with `image`. `referenceImages` and
  `video` belong to the 3.1 models and are refused. Parameters: `aspectRatio` 16:9 | 9:16,
  `durationSeconds` 4 | 6 | 8 (int or string; Veo 2: 5-8), `resolution` 720p | 1080p (Veo 2:
  720p only; 1080p needs 8 s), `personGeneration` (below), `negativePrompt` (a string),
  `enhancePrompt`, `sampleCount` (1; Veo 2 up to 2), `seed`. Any other name is refused, as a
  protobuf-backed API refuses unknown fields [assumed]; `generateAudio` with its own message
  [assumed: Veo 3.x always makes sound there and the SDK refuses `generate_audio` outside Vertex
  AI]. Every refusal is 400 INVALID_ARGUMENT.
- `personGeneration`, after the docs' table: `allow_all` for text alone, `allow_adult` with an
  image; `dont_allow` is Veo 2's only. So Veo 3.x takes allow_all or allow_adult for text (the
  docs' EU/UK/CH/MENA rule, allow_adult only, implies allow_adult is a valid text value) and
  allow_adult alone with an image; Veo 2 adds dont_allow to both [assumed: the simulator does not
  model regions, so allow_all is taken everywhere].
- `/_sim/created` records `negativePrompt` and `personGeneration` as each accepted create sent them.
- Models `veo-3.0-generate-001`, `veo-3.0-fast-generate-001`, `veo-2.0-generate-001`. The 3.1
  preview ids answer 404 NOT_FOUND "models/<id> is no longer available" (reported retired);
  any other id 404 NOT_FOUND as well.
- The answer is `{"name": "models/<model>/operations/<id>"}`; `GET /v1beta/<name>` gives the
  name alone while running (no progress, no `done`), then `done: true` with `response.
  generateVideoResponse.generatedSamples[i].video.uri`, or with `error {code, message}`.
- `#sim:fail` in a prompt: done with error code 13 (INTERNAL) at the point Azure's jobs fail.
  `#sim:blocked`: accepted, then done with no samples, `raiMediaFilteredCount: 1` and a reason,
  at the point the video would have been ready (filters judge the result).
- `GET /v1beta/files/{id}:download?alt=media` needs the key and redirects (302) to a key-less
  media path on this server, `/_media/gemini/<token>.mp4`, so clients must follow redirects.
- The creation quota (`creates_per_minute`): 429 RESOURCE_EXHAUSTED with a google.rpc.RetryInfo
  detail and no Retry-After header [assumed]. Fault 429s carry `Retry-After` instead, so both
  ways of saying when are exercised; 500 INTERNAL, 503 UNAVAILABLE, or a dropped connection.
- No cancel, delete or listing of operations: none is documented.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import string
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sorasim.errors import ApiError
from sorasim.faults import Fault, FaultKind
from sorasim.gate import guarded, same_secret
from sorasim.images import ImageError, image_info
from sorasim.jobs import Job, VideoSpec
from sorasim.media import MediaError, pad_video
from sorasim.params import BLOCK_MARKER
from sorasim.state import SimulatorState
from sorasim.videos import stream_video

PREFIX = "/v1beta"
MEDIA_PREFIX = "/_media/gemini/"
KEY_HEADER = "x-goog-api-key"
ID_ALPHABET = string.ascii_lowercase + string.digits
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
FILTER_REASON = "The video was filtered by the safety system (simulated by the #sim:blocked prompt marker)."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


TEXT_PERSONS = "allow_all"  # the docs give it for text alone
VEO3_PERSONS = ("allow_all", "allow_adult")
VEO2_PERSONS = ("allow_all", "allow_adult", "dont_allow")


@dataclass(frozen=True)
class ModelRules:
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    max_samples: int
    persons: tuple[str, ...] = VEO3_PERSONS  # personGeneration values, allow_all for text alone


MODELS: dict[str, ModelRules] = {
    "veo-3.0-generate-001": ModelRules((4, 6, 8), ("720p", "1080p"), 1),
    "veo-3.0-fast-generate-001": ModelRules((4, 6, 8), ("720p", "1080p"), 1),
    "veo-2.0-generate-001": ModelRules((5, 6, 7, 8), ("720p",), 2, VEO2_PERSONS),
}
RETIRED_MODELS = frozenset(
    {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-3.1-lite-generate-preview"}
)
PIXELS: dict[tuple[str, str], str] = {
    ("16:9", "720p"): "1280x720",
    ("9:16", "720p"): "720x1280",
    ("16:9", "1080p"): "1920x1080",
    ("9:16", "1080p"): "1080x1920",
}
TOP_FIELDS = frozenset({"instances", "parameters", "webhookConfig"})
INSTANCE_FIELDS = frozenset({"prompt", "image", "lastFrame"})
LATER_MODEL_FIELDS = frozenset({"referenceImages", "video"})
PARAMETER_FIELDS = frozenset(
    {
        "aspectRatio",
        "durationSeconds",
        "resolution",
        "personGeneration",
        "negativePrompt",
        "enhancePrompt",
        "sampleCount",
        "seed",
    }
)
# The parameters of gateway.video_options, recorded for /_sim/created as sent.
OPTION_FIELDS = ("negativePrompt", "personGeneration")
AUDIO_FIELD = "generateAudio"
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    """An answer in Google's `{"error": {code, message, status, details}}` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": RPC_STATUS[self.status],
        }
        if self.details:
            error["details"] = self.details
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


def invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


@dataclass(frozen=True)
class Operation:
    """What the Gemini protocol shows of one shared Job."""

    name: str
    job_id: str
    file_id: str
    media_token: str
    samples: int


@dataclass(frozen=True)
class Parsed:
    spec: VideoSpec
    samples: int
    options: dict[str, Any]  # the OPTION_FIELDS the body carried


class GeminiApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._operations: dict[str, Operation] = {}
        self._files: dict[str, str] = {}  # file id -> operation name
        self._media: dict[str, str] = {}  # media token -> operation name

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{PREFIX}/models/{{model}}:predictLongRunning", self._guarded(self.create))
        app.router.add_get(f"{PREFIX}/models/{{model}}/operations/{{op}}", self._guarded(self.operation))
        app.router.add_get(f"{PREFIX}/files/{{file}}:download", self._guarded(self.download))
        app.router.add_get(MEDIA_PREFIX + "{token}.mp4", self.media, allow_head=False)

    # -- handlers ------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        model = _model(request.match_info["model"])
        try:
            body = await request.json()
        except ValueError:
            raise invalid("Invalid JSON payload received.") from None
        parsed = parse_body(body, model)
        job = self._admit(parsed.spec, parsed.options)
        operation = Operation(
            name=f"models/{model}/operations/{_short_id()}",
            job_id=job.id,
            file_id=_short_id(),
            media_token=secrets.token_urlsafe(18),
            samples=parsed.samples,
        )
        with self._lock:
            self._operations[operation.name] = operation
            self._files[operation.file_id] = operation.name
            self._media[operation.media_token] = operation.name
        return web.json_response({"name": operation.name})

    async def operation(self, request: web.Request) -> web.Response:
        name = f"models/{request.match_info['model']}/operations/{request.match_info['op']}"
        found = self._find(name)
        if found is None:
            raise GoogleError(404, f"Operation {name} not found.")
        operation, job = found
        return web.json_response(self._view(operation, job, request))

    async def download(self, request: web.Request) -> web.Response:
        if request.query.get("alt") != "media":
            raise invalid("The simulator serves files only as media: add alt=media.")
        found = self._find(self._name_of(self._files, request.match_info["file"]))
        if found is None or self._outcome(found[1]) != "completed":
            raise GoogleError(404, f"File {request.match_info['file']} not found.")
        operation, _ = found
        raise web.HTTPFound(f"{MEDIA_PREFIX}{operation.media_token}.mp4")

    async def media(self, request: web.Request) -> web.StreamResponse:
        """The video file itself, key-less as a signed storage link would be."""
        found = self._find(self._name_of(self._media, request.match_info["token"]))
        if found is None or self._outcome(found[1]) != "completed":
            return web.Response(status=404, text="Not Found\n")
        job = found[1]
        try:
            path = await asyncio.to_thread(self._state.media.video, job.spec.size, int(job.spec.seconds))
        except MediaError as error:
            return web.Response(status=500, text=f"Could not render the video: {error}\n")
        self._state.stats.increment("downloads")
        return await stream_video(request, pad_video(path, self._state.config.video_bytes))

    # -- jobs ----------------------------------------------------------------------------------

    def _admit(self, spec: VideoSpec, options: dict[str, Any]) -> Job:
        try:
            return self._state.admit(spec, options=options)
        except ApiError as error:
            if error.status != 429:
                raise
            wait = error.headers.get("Retry-After", "1")
            raise GoogleError(
                429,
                "Resource has been exhausted (simulated limit of "
                f"{self._state.config.creates_per_minute} videos per minute).",
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait}s"}],
            ) from None

    def _find(self, name: str | None) -> tuple[Operation, Job] | None:
        with self._lock:
            operation = None if name is None else self._operations.get(name)
        if operation is None:
            return None
        job = self._state.jobs.get(operation.job_id)
        return None if job is None else (operation, job)

    def _name_of(self, index: dict[str, str], key: str) -> str | None:
        with self._lock:
            return index.get(key)

    def _outcome(self, job: Job) -> str:
        """running, completed, failed or filtered, at the current time."""
        status = job.phase(self._state.clock()).status
        if status == "completed" and BLOCK_MARKER in job.spec.prompt:
            return "filtered"
        return {"completed": "completed", "failed": "failed"}.get(status, "running")

    def _view(self, operation: Operation, job: Job, request: web.Request) -> dict[str, Any]:
        outcome = self._outcome(job)
        view: dict[str, Any] = {"name": operation.name}
        if outcome == "running":
            return view
        view["done"] = True
        if outcome == "failed":
            view["error"] = {
                "code": 13,
                "message": "Video generation failed part-way (simulated by the #sim:fail prompt marker).",
            }
            return view
        result: dict[str, Any]
        if outcome == "filtered":
            result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [FILTER_REASON]}
        else:
            uri = f"{request.scheme}://{request.host}{PREFIX}/files/{operation.file_id}:download?alt=media"
            result = {"generatedSamples": [{"video": {"uri": uri}}] * operation.samples}
        view["response"] = {"@type": RESPONSE_TYPE, "generateVideoResponse": result}
        return view

    # -- the gate ------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Errors in Google's shape."""
        return guarded(
            self._state, handler, authorize=self._authorize, render_fault=_fault_body, errors=GoogleError
        )

    def _authorize(self, request: web.Request) -> None:
        sent = request.headers.get(KEY_HEADER, "")
        expected = self._state.config.gemini_key
        if sent and same_secret(sent, expected):
            return
        self._state.stats.increment("unauthorized")
        if not sent:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers. Send an API key in x-goog-api-key.",
            )
        raise GoogleError(
            400,
            "API key not valid. Please pass a valid API key.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        )


# -- the request body ----------------------------------------------------------------------------


def parse_body(body: Any, model: str) -> Parsed:
    """The job a predictLongRunning body asks for, or a GoogleError naming what is wrong."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    _known(body, TOP_FIELDS, "")
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise invalid("instances must hold exactly one instance object.")
    prompt, has_image = _instance(instances[0])
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise invalid("parameters must be an object.")
    if AUDIO_FIELD in parameters:
        raise invalid(f"parameters.{AUDIO_FIELD} is not supported in the Gemini API.")
    _known(parameters, PARAMETER_FIELDS, "parameters.")
    rules = MODELS[model]
    aspect = _choice(parameters, "aspectRatio", ("16:9", "9:16"), "16:9")
    resolution = _choice(parameters, "resolution", rules.resolutions, "720p")
    seconds = _duration(parameters.get("durationSeconds", rules.durations[-1]), rules)
    if resolution == "1080p" and seconds != 8:
        raise invalid("1080p videos must be 8 seconds long: set durationSeconds to 8.")
    _persons(parameters.get("personGeneration"), rules, has_image)
    _typed(parameters, "negativePrompt", str)
    _typed(parameters, "enhancePrompt", bool)
    _typed(parameters, "seed", int)
    samples = _samples(parameters.get("sampleCount", 1), rules)
    spec = VideoSpec(prompt=prompt, model=model, seconds=str(seconds), size=PIXELS[(aspect, resolution)])
    options = {name: parameters[name] for name in OPTION_FIELDS if name in parameters}
    return Parsed(spec, samples, options)


def _instance(instance: dict[str, Any]) -> tuple[str, bool]:
    later = sorted(LATER_MODEL_FIELDS & set(instance))
    if later:
        raise invalid(f"instances[0].{later[0]} is not supported by this model.")
    _known(instance, INSTANCE_FIELDS, "instances[0].")
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("instances[0].prompt is required and must be a non-empty string.")
    has_image = "image" in instance
    if has_image:
        _image(instance["image"], "image")
    if "lastFrame" in instance:
        if not has_image:
            raise invalid("instances[0].lastFrame needs instances[0].image.")
        _image(instance["lastFrame"], "lastFrame")
    return prompt, has_image


def _image(value: Any, name: str) -> None:
    """Either documented encoding of an image, holding a JPEG, PNG or WebP."""
    where = f"instances[0].{name}"
    if isinstance(value, dict) and set(value) == {"inlineData"} and isinstance(value["inlineData"], dict):
        inline = value["inlineData"]
        mime, data = inline.get("mimeType"), inline.get("data")
    elif isinstance(value, dict) and set(value) == {"bytesBase64Encoded", "mimeType"}:
        mime, data = value["mimeType"], value["bytesBase64Encoded"]
    else:
        raise invalid(
            f"{where} must be {{inlineData: {{mimeType, data}}}} or {{bytesBase64Encoded, mimeType}}."
        )
    if not isinstance(mime, str) or not mime.startswith("image/") or not isinstance(data, str):
        raise invalid(f"{where} needs an image/* mimeType and base64 data.")
    try:
        image_info(base64.b64decode(data, validate=True))
    except (binascii.Error, ImageError):
        raise invalid(f"{where} is not a base64 JPEG, PNG or WebP image.") from None


def _known(fields: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise invalid(
            f'Invalid JSON payload received. Unknown name "{where}{unknown[0]}": Cannot find field.'
        )


def _choice(parameters: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = parameters.get(name, default)
    if value not in allowed:
        raise invalid(f"parameters.{name} {value!r} is not supported; use one of {', '.join(allowed)}.")
    return str(value)


def _duration(value: Any, rules: ModelRules) -> int:
    # The docs write strings and the SDK sends integers: both are taken, booleans are not.
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    if seconds not in rules.durations:
        allowed = ", ".join(str(option) for option in rules.durations)
        raise invalid(f"parameters.durationSeconds {value!r} is not supported; use one of {allowed}.")
    return seconds


def _persons(value: Any, rules: ModelRules, has_image: bool) -> None:
    if value is None:
        return
    if value not in rules.persons:
        allowed = " or ".join(rules.persons)
        raise invalid(
            f"parameters.personGeneration {value!r} is not supported for this model; use {allowed}."
        )
    if has_image and value == TEXT_PERSONS:
        raise invalid(
            "parameters.personGeneration allow_all is not supported with an image; use allow_adult."
        )


def _typed(parameters: dict[str, Any], name: str, kind: type) -> None:
    value = parameters.get(name)
    if value is None:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(f"parameters.{name} must be a {kind.__name__}.")


def _samples(value: Any, rules: ModelRules) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= rules.max_samples:
        raise invalid(f"parameters.sampleCount must be from 1 to {rules.max_samples} for this model.")
    return value


def _model(model: str) -> str:
    if model in MODELS:
        return model
    if model in RETIRED_MODELS:
        raise GoogleError(404, f"models/{model} is no longer available.")
    raise GoogleError(
        404,
        f"models/{model} is not found for API version v1beta, or is not supported for predictLongRunning.",
    )


def _short_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(12))


def _fault_body(fault: Fault) -> web.Response:
    """A simulated fault in Google's error shape (429s with Retry-After, see the module doc)."""
    if fault.kind is FaultKind.TOO_MANY_REQUESTS:
        wait = str(fault.retry_after or 1)
        return GoogleError(
            429, "Resource has been exhausted (simulated fault).", headers={"Retry-After": wait}
        ).response()
    if fault.kind is FaultKind.SERVICE_UNAVAILABLE:
        return GoogleError(
            503, "The model is overloaded. Please try again later (simulated fault)."
        ).response()
    return GoogleError(500, "An internal error has occurred (simulated fault).").response()
