"""GeminiGen's video API (`/uapi/v1/*`) on the simulator, next to the Azure protocol.

It shares the simulator's state: the creation quota and counters (`SimulatorState.admit`, so
`/_sim/created?prompt_contains=` counts these jobs too), the job lifecycle (`#sim:fail` fails a
job part-way, timing from `job_seconds`), the media library (real MP4s and JPEGs of the asked
pixels and duration) and the fault knobs (`fault_rate`, `fault_kinds`).

What it models, and on what grounds (GeminiGen's docs were mostly unavailable; [weak] = one
third-party client or inference):

- `x-api-key` auth against `SimulatorConfig.geminigen_key`; a missing key is 401
  API_KEY_REQUIRED, a wrong one 404 API_KEY_NOT_FOUND (the status one client's test double
  uses [weak]).
- `POST /uapi/v1/video-gen/sora` and `/video-gen/veo`, multipart/form-data, with each family's
  fields and values (the docs' Sora page; Veo from clients). Images: Sora takes `files` parts or
  `file_urls` strings, Veo repeated `ref_images` (file or URL) with `mode_image` frame (1-2) or
  ingredient (1-3), or the older `files`/`file_urls`. Uploads must be JPEG, PNG or WebP; URLs
  are never fetched. Extra fields are ignored, as FastAPI does.
- Invalid values: FastAPI's 422 `{"detail": [{"type", "loc", "msg", "input"}]}` (the
  `{"detail": ...}` envelope is FastAPI's; the 422 list is inferred [weak]). Other errors:
  `{"detail": {"error_code", "error_message"}}`.
- The create answer and `GET /uapi/v1/history/{uuid}`: id (int), uuid, user_id, model_name,
  input_text, type, status (1 processing - also while queued, as the documented create answers
  show status 1 at 1% -, 2 completed, 3 failed), status_desc, status_percentage, error_code,
  error_message, estimated_credit, used_credit, media_type, created_at (ISO 8601 UTC, like the
  docs' example), updated_at, expired_at, delay_seconds; once completed, `generated_video[0]`
  with `video_url` and `thumbnail_url` on an unauthenticated CDN-like path
  `/_cdn/geminigen/<token>.mp4|.jpg` of the request's host.
- `#sim:blocked` in a prompt: 400 GEMINI_RAI_MEDIA_FILTERED at creation (the only source lists
  the code among HTTP error answers); `#sim:fail`: status 3 with error_code SYSTEM_ERROR.
- The creation quota (`creates_per_minute`): 429 RATE_LIMIT_ERROR with `retry-after` (one test
  double). Faults: 429 RATE_LIMIT_ERROR, 500 and 503 SYSTEM_ERROR, or a dropped connection, on
  `/uapi/v1/*` only (the CDN is another host upstream, and is never faulted).
- `GET /uapi/v1/histories?filter_by=all&items_per_page=10&page=1` -> `{"result": [...]}`, newest
  first (one client [weak]).
- No cancel, delete or idempotency: none is documented.

GeminiGen jobs live in the shared job store under the simulator's own ids; only their uuid is
ever shown on this protocol.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from sorasim.errors import ApiError
from sorasim.faults import Fault, FaultKind
from sorasim.gate import guarded, same_secret
from sorasim.images import ImageError, image_info
from sorasim.jobs import Job, VideoSpec
from sorasim.media import MediaError
from sorasim.params import BLOCK_MARKER
from sorasim.state import SimulatorState

PREFIX = "/uapi/v1"
CDN_PREFIX = "/_cdn/geminigen"
EXPIRY_SECONDS = 30 * 24 * 3600
"""The docs' example answer shows `expired_at` a month after `created_at`."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Family:
    name: str
    models: tuple[str, ...]
    durations: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    resolutions: tuple[str, ...]
    defaults: dict[str, str]
    sizes: dict[tuple[str, str], str]
    """(aspect_ratio, resolution) -> WIDTHxHEIGHT"""
    image_fields: tuple[str, ...]
    credits_per_second: int


SORA = Family(
    name="sora",
    models=("sora-2", "sora-2-pro", "sora-2-pro-hd"),
    durations=("10", "15"),
    aspect_ratios=("landscape", "portrait"),
    resolutions=("small", "large"),
    defaults={"model": "sora-2", "duration": "10", "aspect_ratio": "landscape", "resolution": "small"},
    sizes={
        ("landscape", "small"): "1280x720",
        ("portrait", "small"): "720x1280",
        ("landscape", "large"): "1920x1080",
        ("portrait", "large"): "1080x1920",
    },
    image_fields=("files", "file_urls"),
    credits_per_second=5,
)
VEO = Family(
    name="veo",
    # veo-3 and veo-3-fast are what older clients send.
    models=("veo-3.1", "veo-3.1-fast", "veo-3.1-lite", "veo-2", "veo-3", "veo-3-fast"),
    durations=("4", "6", "8"),
    aspect_ratios=("16:9", "9:16"),
    resolutions=("720p", "1080p"),
    defaults={"model": "veo-3.1-fast", "duration": "8", "aspect_ratio": "16:9", "resolution": "720p"},
    sizes={
        ("16:9", "720p"): "1280x720",
        ("9:16", "720p"): "720x1280",
        ("16:9", "1080p"): "1920x1080",
        ("9:16", "1080p"): "1080x1920",
    },
    image_fields=("ref_images", "files", "file_urls"),
    credits_per_second=3,
)
IMAGE_LIMITS = {"frame": 2, "ingredient": 3}
"""How many reference images Veo's `mode_image` takes."""


class GeminiGenError(Exception):
    """An answer in GeminiGen's error shape."""

    def __init__(self, status: int, detail: object, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response({"detail": self.detail}, status=self.status, headers=self.headers)


def coded(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> GeminiGenError:
    return GeminiGenError(status, {"error_code": code, "error_message": message}, headers)


def invalid(field: str, value: object, message: str, kind: str = "enum") -> GeminiGenError:
    return GeminiGenError(422, [{"type": kind, "loc": ["body", field], "msg": message, "input": value}])


@dataclass(frozen=True)
class Record:
    """What GeminiGen shows of one of its jobs besides what the shared Job holds."""

    uuid: str
    number: int
    job_id: str
    family: str
    token: str
    credits: int


class GeminiGenApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._tokens: dict[str, str] = {}
        self._numbers = itertools.count(2588)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{PREFIX}/video-gen/sora", self._guarded(self.create_sora))
        app.router.add_post(f"{PREFIX}/video-gen/veo", self._guarded(self.create_veo))
        app.router.add_get(f"{PREFIX}/history/{{uuid}}", self._guarded(self.history))
        app.router.add_get(f"{PREFIX}/histories", self._guarded(self.histories))
        app.router.add_get(f"{CDN_PREFIX}/{{name}}", self.cdn, allow_head=False)

    # -- handlers ------------------------------------------------------------------------------

    async def create_sora(self, request: web.Request) -> web.Response:
        return await self._create(request, SORA)

    async def create_veo(self, request: web.Request) -> web.Response:
        return await self._create(request, VEO)

    async def history(self, request: web.Request) -> web.Response:
        found = self._find(request.match_info["uuid"])
        if found is None:
            raise coded(404, "HISTORY_NOT_FOUND", "History is not found")
        record, job = found
        return web.json_response(self._item(record, job, request))

    async def histories(self, request: web.Request) -> web.Response:
        per_page = _positive(request.query.get("items_per_page"), "items_per_page", 10)
        page = _positive(request.query.get("page"), "page", 1)
        with self._lock:
            records = list(self._records.values())
        live = [(record, job) for record in reversed(records) if (job := self._state.jobs.get(record.job_id))]
        chosen = live[(page - 1) * per_page : page * per_page]
        return web.json_response(
            {
                "result": [self._item(record, job, request) for record, job in chosen],
                "total": len(live),
                "page": page,
                "items_per_page": per_page,
            }
        )

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        """The finished asset, with no authentication at all, as a CDN would serve it."""
        token, _, extension = request.match_info["name"].partition(".")
        with self._lock:
            video_uuid = self._tokens.get(token)
        found = None if video_uuid is None else self._find(video_uuid)
        if found is None or extension not in ("mp4", "jpg"):
            return web.Response(status=404, text="Not Found")
        _, job = found
        if job.phase(self._state.clock()).status != "completed":
            return web.Response(status=404, text="Not Found")
        media = self._state.media
        try:
            if extension == "mp4":
                path = await asyncio.to_thread(media.video, job.spec.size, int(job.spec.seconds))
            else:
                path = await asyncio.to_thread(media.thumbnail, job.spec.size)
        except MediaError:
            return web.Response(status=502, text="Bad Gateway")
        self._state.stats.increment("downloads")
        content_type = "video/mp4" if extension == "mp4" else "image/jpeg"
        return web.FileResponse(path, headers={"Content-Type": content_type})

    # -- creation ------------------------------------------------------------------------------

    async def _create(self, request: web.Request, family: Family) -> web.Response:
        form = await request.post()
        prompt = _text(form, "prompt")
        if prompt is None or not prompt.strip():
            raise invalid("prompt", prompt, "Field required", "missing")
        model = _choice(form, "model", family.models, family.defaults["model"])
        duration = _choice(form, "duration", family.durations, family.defaults["duration"])
        aspect = _choice(form, "aspect_ratio", family.aspect_ratios, family.defaults["aspect_ratio"])
        resolution = _choice(form, "resolution", family.resolutions, family.defaults["resolution"])
        _check_images(form, family)
        if BLOCK_MARKER in prompt:
            self._state.stats.increment("creates_blocked")
            raise coded(
                400,
                "GEMINI_RAI_MEDIA_FILTERED",
                "Your request was filtered by the Responsible AI safety system "
                "(simulated by the #sim:blocked prompt marker).",
            )
        spec = VideoSpec(
            prompt=prompt, model=model, seconds=duration, size=family.sizes[(aspect, resolution)]
        )
        try:
            job = self._state.admit(spec)
        except ApiError as error:
            if error.status != 429:
                raise
            retry_after = error.headers.get("Retry-After", "1")
            raise coded(
                429,
                "RATE_LIMIT_ERROR",
                f"Too many video requests (simulated limit of {self._state.config.creates_per_minute} "
                f"per minute). Retry after {retry_after} seconds.",
                {"retry-after": retry_after},
            ) from None
        record = Record(
            uuid=str(uuid.uuid4()),
            number=next(self._numbers),
            job_id=job.id,
            family=family.name,
            token=secrets.token_urlsafe(18),
            credits=family.credits_per_second * int(duration),
        )
        with self._lock:
            self._records[record.uuid] = record
            self._tokens[record.token] = record.uuid
        return web.json_response(self._item(record, job, request))

    # -- views ---------------------------------------------------------------------------------

    def _find(self, video_uuid: str) -> tuple[Record, Job] | None:
        with self._lock:
            record = self._records.get(video_uuid)
        if record is None:
            return None
        job = self._state.jobs.get(record.job_id)
        return None if job is None else (record, job)

    def _item(self, record: Record, job: Job, request: web.Request) -> dict[str, Any]:
        now = self._state.clock()
        phase = job.phase(now)
        status = {"queued": 1, "in_progress": 1, "completed": 2, "failed": 3}[phase.status]
        updated = job.created_at + (phase.finished_after if phase.finished_after is not None else 0.0)
        item: dict[str, Any] = {
            "id": record.number,
            "uuid": record.uuid,
            "user_id": 1,
            "model_name": job.spec.model,
            "input_text": job.spec.prompt,
            "type": f"video_generation_{record.family}",
            "status": status,
            "status_desc": {1: "processing", 2: "completed", 3: "failed"}[status],
            "status_percentage": 100 if status == 2 else max(1, phase.progress),
            "error_code": "",
            "error_message": "",
            "estimated_credit": record.credits,
            "used_credit": record.credits if status == 2 else 0,
            "media_type": "video/mp4",
            "created_at": _iso(job.created_at),
            "updated_at": _iso(max(updated, job.created_at)),
            "expired_at": _iso(job.created_at + EXPIRY_SECONDS),
            "delay_seconds": 0,
            "generate_result": None,
            "generated_video": [],
        }
        if status == 3:
            item["error_code"] = "SYSTEM_ERROR"
            item["error_message"] = (
                "Video generation failed part-way (simulated by the #sim:fail prompt marker)."
            )
        if status == 2:
            base = f"{request.scheme}://{request.host}{CDN_PREFIX}/{record.token}"
            width, _, height = job.spec.size.partition("x")
            item["thumbnail_url"] = f"{base}.jpg"
            item["generated_video"] = [
                {
                    "video_url": f"{base}.mp4",
                    "thumbnail_url": f"{base}.jpg",
                    "duration": int(job.spec.seconds),
                    "width": int(width),
                    "height": int(height),
                }
            ]
        return item

    # -- the gate ------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        """Errors in GeminiGen's shape."""
        return guarded(
            self._state, handler, authorize=self._authorize, render_fault=_fault_body, errors=GeminiGenError
        )

    def _authorize(self, request: web.Request) -> None:
        sent = request.headers.get("x-api-key", "")
        expected = self._state.config.geminigen_key
        if sent and same_secret(sent, expected):
            return
        self._state.stats.increment("unauthorized")
        if not sent:
            raise coded(401, "API_KEY_REQUIRED", "Api key is required")
        raise coded(404, "API_KEY_NOT_FOUND", "Api key is not found")


def _text(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _choice(form: MultiDictProxy[Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    if name not in form:
        return default
    value = _text(form, name)
    if value is None or value.strip() not in allowed:
        listing = ", ".join(f"'{option}'" for option in allowed)
        raise invalid(name, value, f"Input should be {listing}")
    return value.strip()


def _check_images(form: MultiDictProxy[Any], family: Family) -> None:
    count = 0
    for name in family.image_fields:
        for value in form.getall(name, []):
            count += 1
            if isinstance(value, web.FileField):
                try:
                    image_info(value.file.read())
                except ImageError as error:
                    raise invalid(
                        name, value.filename, f"Not a JPEG, PNG or WebP image ({error})", "file"
                    ) from None
            elif not (isinstance(value, str) and value.startswith(("https://", "http://"))):
                raise invalid(name, str(value), "Expected an uploaded file or an http(s) URL", "url_parsing")
    if family is VEO:
        mode = _choice(form, "mode_image", tuple(IMAGE_LIMITS), "frame")
        if count > IMAGE_LIMITS[mode]:
            raise invalid(
                "ref_images",
                count,
                f"mode_image '{mode}' takes at most {IMAGE_LIMITS[mode]} images",
                "too_long",
            )


def _positive(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise invalid(name, raw, "Input should be greater than or equal to 1", "greater_than_equal")
    return value


def _iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _fault_body(fault: Fault) -> web.Response:
    """A simulated fault in GeminiGen's error shape."""
    if fault.kind is FaultKind.TOO_MANY_REQUESTS:
        retry_after = str(fault.retry_after or 1)
        return coded(
            429,
            "RATE_LIMIT_ERROR",
            f"Too many requests (simulated fault). Retry after {retry_after} seconds.",
            {"retry-after": retry_after},
        ).response()
    status = 503 if fault.kind is FaultKind.SERVICE_UNAVAILABLE else 500
    return coded(status, "SYSTEM_ERROR", "System error, please try again (simulated fault).").response()
