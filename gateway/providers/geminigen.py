"""Adapter for GeminiGen (geminigen.ai), an aggregator serving Sora 2 and Veo behind one key.

GeminiGen's own reference (docs.geminigen.ai) was mostly not available when this was written; the
facts relied on, and how well each is sourced:

- Base URL `https://api.geminigen.ai/uapi/v1`, header `x-api-key: <key>` (the docs' Sora page,
  several third-party clients).
- Create is `POST` multipart/form-data at `video-gen/sora` (prompt, model `sora-2` |
  `sora-2-pro` | `sora-2-pro-hd`, duration `10` | `15`, aspect_ratio `landscape` | `portrait`,
  resolution `small` (720p) | `large` (1080p), image as a `files` part) or `video-gen/veo` (model
  `veo-3.1` | `veo-3.1-fast` | `veo-3.1-lite` | `veo-2`, resolution `720p` | `1080p`,
  aspect_ratio `16:9` | `9:16`, duration `4` | `6` | `8`, images as repeated `ref_images` parts
  with `mode_image` `frame` | `ingredient`). Sora page: the docs; Veo fields: two clients.
- The create answer and `GET history/{uuid}` carry `uuid`, `status` (1 processing, 2 completed,
  3 failed; one client treats 0 as queued), `status_percentage` (0-100), `error_code`,
  `error_message`, `created_at` (ISO 8601, with or without a zone: UTC assumed), and once done
  `generated_video[0].video_url` (some clients fall back to `generate_result`) and
  `thumbnail_url` (clients, [weak]).
- Results live on GeminiGen's CDN and are fetched WITHOUT the key (clients) - the key is never
  sent anywhere but the API's own base URL, whose redirects are not followed (a 3xx is refused).
- Errors: HTTP 4xx with `{"detail": {"error_code", "error_message" | "message"}}`; codes
  API_KEY_REQUIRED, API_KEY_NOT_FOUND (404 in one test double), NOT_ENOUGH_CREDIT (402),
  GEMINI_RATE_LIMIT, GEMINI_RAI_MEDIA_FILTERED (content safety), SYSTEM_ERROR, RATE_LIMIT_ERROR
  (429 with `retry-after`) (an integration note and one test double, [weak]). The `detail`
  envelope is FastAPI's, so a validation failure may come as FastAPI's 422 list: handled too.
- No cancel, delete, remix or idempotency key is documented.

Decisions:

- The family path comes from the model name (`sora-*` -> `video-gen/sora`, `veo-*` ->
  `video-gen/veo`); the account option `family` ("sora" or "veo") overrides it for a model name
  that says neither.
- `find_recent` is False: the only listing (`GET histories?filter_by=all&items_per_page=..&page=..`
  -> `{"result": [...]}`) comes from one client that does not show its order or fields. So a
  create whose answer is lost after the request may have gone out (dropped connection, read
  timeout, a 5xx or SYSTEM_ERROR answer, an unreadable 2xx body) raises UpstreamAmbiguousError;
  a create proven never to have arrived (connect error, connect timeout) or refused (429) raises
  UpstreamTransientError / UpstreamThrottled. Polls and downloads are always safe to retry.
- Access problems (any API_KEY_* code, 401, 403) are UpstreamRejectedError with the gateway's
  `upstream_access_denied` code and status 401 whatever the status was (API_KEY_NOT_FOUND may
  come as 404, which must not read as "job not found"); GEMINI_RAI_MEDIA_FILTERED, at creation or
  on a failed job, becomes `content_policy_violation`. Other refusals keep GeminiGen's code; a
  job failed with any other code is `video_generation_failed`, GeminiGen's code leading the
  message (its failure codes, e.g. SYSTEM_ERROR, are not documented per job).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests

from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.messages import CONTENT_POLICY_VIOLATION, UPSTREAM_ACCESS_DENIED, VIDEO_GENERATION_FAILED
from gateway.providers.keyed import KeyedProvider
from gateway.providers.port import (
    Capabilities,
    PlainAsset,
    ProviderAccount,
    ProviderVideo,
    VideoProvider,
    VideoRequest,
)
from gateway.providers.transport import (
    TRANSIENT_STATUSES,
    keyless_asset,
    keyless_download,
    never_sent,
    read_answer,
    retry_after,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.geminigen.ai/uapi/v1"
TIMEOUT = (5.0, 30.0)

CAPABILITIES = Capabilities(image_input=True, remix=False, delete=False, find_recent=False, thumbnail=True)

FAMILIES = ("sora", "veo")
SORA_ASPECTS = {"16:9": "landscape", "9:16": "portrait"}
SORA_RESOLUTIONS = {"720p": "small", "1080p": "large"}
STATUSES = {0: "queued", 1: "in_progress", 2: "completed", 3: "failed"}

CONTENT_FILTERED = "GEMINI_RAI_MEDIA_FILTERED"
THROTTLE_CODES = frozenset({"RATE_LIMIT_ERROR", "GEMINI_RATE_LIMIT"})
TRANSIENT_CODES = frozenset({"SYSTEM_ERROR"})


class GeminiGenProvider(KeyedProvider):
    """One GeminiGen account. Not thread-safe beyond what `requests.Session` is."""

    KIND = "geminigen"
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    CAPABILITIES = CAPABILITIES

    def __init__(self, account: ProviderAccount, *, timeout: tuple[float, float] = TIMEOUT) -> None:
        super().__init__(account, timeout=timeout)
        self._family = self._option("family", FAMILIES)

    # -- the port ------------------------------------------------------------------------------

    def create(self, request: VideoRequest) -> ProviderVideo:
        family = self.family_of(request.model)
        fields, files = _sora_form(request) if family == "sora" else _veo_form(request)
        # Every field as a part of its own, so the body is multipart/form-data even without a file.
        parts: list[tuple[str, tuple[str | None, str | bytes, str | None]]] = [
            (name, (None, value, None)) for name, value in fields.items()
        ]
        parts.extend(files)
        response = self._api("POST", f"video-gen/{family}", creating=True, files=parts)
        return read_answer(response, _video, f"POST video-gen/{family}", creating=True)

    def get(self, video_id: str) -> ProviderVideo:
        return _video(self._history(video_id))

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        url = self._asset_url(video_id, variant)
        # The CDN gets no credential: x-api-key goes per request to the API only.
        with keyless_download(
            self._session,
            url,
            self._timeout,
            what=f"GeminiGen {variant}",
            unavailable_code="asset_unavailable",
        ) as stream:
            yield stream

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """The asset's CDN link (video or thumbnail): it takes no key, so storage can fetch it."""
        url = self._asset_url(video_id, variant)
        return keyless_asset(
            self._session,
            url,
            self._timeout,
            what=f"GeminiGen {variant}",
            unavailable_code="asset_unavailable",
        )

    def _asset_url(self, video_id: str, variant: str) -> str:
        if variant not in ("video", "thumbnail"):
            raise UpstreamRejectedError(f"GeminiGen has no {variant!r} asset", code="invalid_variant")
        body = self._history(video_id)
        status = STATUSES.get(_int(body.get("status")) or 0, "queued")
        if status != "completed":
            raise UpstreamRejectedError(
                f"GeminiGen video {video_id} is {status}; it has no content",
                code="video_not_ready",
                status=409,
            )
        url = _video_url(body) if variant == "video" else _text(body.get("thumbnail_url"))
        if not url:
            raise UpstreamRejectedError(
                f"GeminiGen video {video_id} has no {variant} URL", code="asset_missing", status=404
            )
        return url

    def delete(self, video_id: str) -> bool:
        raise UpstreamRejectedError("GeminiGen cannot delete or cancel a job", code="unsupported_operation")

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        raise UpstreamRejectedError("GeminiGen cannot remix a video", code="remix_not_supported")

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        raise UpstreamRejectedError(
            "GeminiGen's job listing is not relied on (capabilities.find_recent is False)",
            code="unsupported_operation",
        )

    # -- helpers -------------------------------------------------------------------------------

    def family_of(self, model: str) -> str:
        """`sora` or `veo`: the create path's last segment, from the model name or the account."""
        for family in FAMILIES:
            if model.lower().startswith(family):
                return family
        if self._family is not None:
            return self._family
        raise UpstreamRejectedError(
            f"GeminiGen model {model!r} is neither a sora-* nor a veo-* model; set the account's "
            "`family` option",
            code="unsupported_model",
            status=400,
        )

    def _history(self, video_id: str) -> dict[str, Any]:
        response = self._api("GET", f"history/{video_id}", creating=False)
        body = read_answer(response, lambda answer: answer, f"GET history/{video_id}")
        if not isinstance(body, dict):
            raise UpstreamTransientError(f"GET history/{video_id}: answer is not an object")
        return body

    def _api(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(
                method,
                f"{self._base}/{path}",
                headers={"x-api-key": self._key, "accept": "application/json"},
                timeout=self._timeout,
                # requests drops only `Authorization` on a redirect to another host: x-api-key
                # would follow it, so the API is never followed anywhere.
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as error:
            raise _transport_error(method, path, error, creating) from error
        if response.status_code < 300:
            return response
        try:
            raise _answer_error(response, method, path, creating)
        finally:
            response.close()


def build(account: ProviderAccount) -> VideoProvider:
    return GeminiGenProvider(account)


# -- requests ------------------------------------------------------------------------------------

Form = tuple[dict[str, str], list[tuple[str, tuple[str | None, str | bytes, str | None]]]]


def _sora_form(request: VideoRequest) -> Form:
    aspect = SORA_ASPECTS.get(request.aspect_ratio) or _aspect_from_size(request.size)
    resolution = SORA_RESOLUTIONS.get(request.resolution, request.resolution)
    fields = {
        "prompt": request.prompt,
        "model": request.model,
        "duration": str(request.seconds),
        "aspect_ratio": aspect,
        "resolution": resolution,
    }
    files: list[tuple[str, tuple[str | None, str | bytes, str | None]]] = []
    if request.reference is not None:
        ref = request.reference
        files.append(("files", (ref.filename, ref.content, ref.content_type)))
    return fields, files


def _veo_form(request: VideoRequest) -> Form:
    fields = {
        "prompt": request.prompt,
        "model": request.model,
        "duration": str(request.seconds),
        "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution,
    }
    files: list[tuple[str, tuple[str | None, str | bytes, str | None]]] = []
    if request.reference is not None:
        ref = request.reference
        # One image as the first frame: what an image-to-video request means elsewhere.
        fields["mode_image"] = "frame"
        files.append(("ref_images", (ref.filename, ref.content, ref.content_type)))
    return fields, files


def _aspect_from_size(size: str) -> str:
    width, _, height = size.partition("x")
    try:
        return "portrait" if int(height) > int(width) else "landscape"
    except ValueError:
        return "landscape"


# -- answers -------------------------------------------------------------------------------------


def _video(body: Mapping[str, Any]) -> ProviderVideo:
    uuid = body["uuid"]
    if not isinstance(uuid, str) or not uuid:
        raise TypeError("uuid is not a string")
    status = STATUSES.get(_int(body.get("status")) or 0, "queued")
    percentage = _int(body.get("status_percentage"))
    if status == "completed":
        percentage = 100
    error_code = error_message = None
    if status == "failed":
        upstream_code = _text(body.get("error_code"))
        error_code = (
            CONTENT_POLICY_VIOLATION if upstream_code == CONTENT_FILTERED else VIDEO_GENERATION_FAILED
        )
        error_message = _text(body.get("error_message")) or "GeminiGen reported the generation failed"
        if upstream_code:
            error_message = f"{upstream_code}: {error_message}"
    duration = body.get("duration")
    return ProviderVideo(
        id=uuid,
        status=status,
        progress=None if percentage is None else max(0, min(100, percentage)),
        created_at=_timestamp(body.get("created_at")),
        error_code=error_code,
        error_message=error_message,
        prompt=_text(body.get("input_text")),
        model=_text(body.get("model_name")),
        seconds=None if duration is None else str(duration),
    )


def _video_url(body: Mapping[str, Any]) -> str | None:
    videos = body.get("generated_video")
    if isinstance(videos, list) and videos and isinstance(videos[0], dict):
        url = _text(videos[0].get("video_url"))
        if url:
            return url
    return _text(body.get("generate_result"))


def _transport_error(
    method: str, path: str, error: requests.RequestException, creating: bool
) -> UpstreamError:
    what = f"{method} {path}: {type(error).__name__}"
    if creating and not never_sent(error):
        return UpstreamAmbiguousError(f"{what}; the job may or may not exist")
    return UpstreamTransientError(what)


def _answer_error(response: requests.Response, method: str, path: str, creating: bool) -> UpstreamError:
    code, message = _error_fields(response)
    status = response.status_code
    log.warning("geminigen %s %s answered %s (%s)", method, path, status, code)
    where = f"{method} {path}"
    if code.startswith("API_KEY_") or status in (401, 403):
        return UpstreamRejectedError(
            f"GeminiGen refused the API key ({code}): {message}",
            code=UPSTREAM_ACCESS_DENIED,
            status=status if status in (401, 403) else 401,
        )
    if status == 429 or code in THROTTLE_CODES:
        return UpstreamThrottled(
            f"{where}: {code}: {message}", status=status, retry_after=retry_after(response)
        )
    if code == CONTENT_FILTERED:
        return UpstreamRejectedError(message, code=CONTENT_POLICY_VIOLATION, status=status)
    if status in TRANSIENT_STATUSES or status >= 500 or code in TRANSIENT_CODES:
        if creating:
            return UpstreamAmbiguousError(
                f"{where}: {status} {code}: {message}; the job may or may not exist", status=status
            )
        return UpstreamTransientError(
            f"{where}: {status} {code}: {message}", status=status, retry_after=retry_after(response)
        )
    return UpstreamRejectedError(message, code=code, status=status)


def _error_fields(response: requests.Response) -> tuple[str, str]:
    """(code, message) from `{"detail": {...}}`, FastAPI's `{"detail": [...]}` or a bare body."""
    code = f"upstream_{response.status_code}"
    message = response.reason or "upstream error"
    try:
        body = response.json()
    except ValueError:
        return code, message
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = _text(detail.get("error_code")) or code
        message = _text(detail.get("error_message")) or _text(detail.get("message")) or message
    elif isinstance(detail, list):
        code = "invalid_request"
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', []))}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        ]
        message = "; ".join(problems) or message
    elif isinstance(detail, str) and detail:
        message = detail
    return code, message


def _timestamp(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
