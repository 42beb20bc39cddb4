"""Adapter for Google's Veo models through the Gemini API (generativelanguage.googleapis.com).

The wire facts relied on (Google's docs page on video generation, the python-genai SDK, the
generativelanguage client types; see tests/providers/test_gemini.py for their sources):

- Base `https://generativelanguage.googleapis.com/v1beta`, key in the `x-goog-api-key` header.
- Create is `POST models/{model}:predictLongRunning` with JSON
  `{"instances": [{"prompt", "image"?}], "parameters": {...}}`. Parameters: `aspectRatio`
  16:9 | 9:16, `resolution` 720p | 1080p, `durationSeconds` (the SDK sends an int),
  `personGeneration` (`allow_all` for text alone, `allow_adult` when an image is given),
  `negativePrompt`, `enhancePrompt`. An image is `{"inlineData": {"mimeType", "data": <base64>}}`
  as the docs' REST examples write it.
- The answer is a long-running operation `{"name": "models/<model>/operations/<id>"}`, read back
  with `GET {base}/{name}`: `done` (absent while running), then either `error {code, message}` or
  `response.generateVideoResponse` with `generatedSamples[0].video.uri`, or no samples and
  `raiMediaFilteredCount` / `raiMediaFilteredReasons` when safety filters removed the video.
  There is no progress and no queue position.
- The uri is `.../files/{id}:download?alt=media`, fetched WITH the key, following redirects.
- Errors are `{"error": {"code", "message", "status", "details"}}` with the google.rpc statuses
  (400 INVALID_ARGUMENT, 403 PERMISSION_DENIED, 404 NOT_FOUND - a retired model id says "is no
  longer available" -, 429 RESOURCE_EXHAUSTED, 500, 503 UNAVAILABLE).
- No cancel, delete, listing, thumbnail, remix or idempotency key is documented.

Decisions:

- Per-request options (VideoRequest.options, declared in the catalog): `negative_prompt` as
  `negativePrompt`, `person_generation` as `personGeneration`, sent as asked (intake refuses
  `allow_all` with an image; the API would too). Not `generate_audio`: Veo 3.x
  always makes sound here, and the SDK refuses `generate_audio` in Gemini-API mode.
- Account options, the defaults where a request sends none: `negative_prompt`, `enhance_prompt`
  ("true" | "false", sent as the bool `enhancePrompt`), `person_generation` (an image request
  never sends an account's `allow_all`, which the docs give for text alone, and falls back to
  `allow_adult`). Other options are ignored.
- `ProviderVideo.id` is the operation name exactly as given (it contains slashes).
- Status: right after create `queued`; `done` absent or false `in_progress`; done with a video
  `completed`; done with an error `failed` with `video_generation_failed` (the rpc status name
  leads the message); done with filtered samples `failed` with `content_policy_violation`.
- The key is sent only to the configured base's origin. The result uri's file id is rebuilt on
  the base URL, as the SDK does, and redirects are followed by hand: a hop to another origin
  goes without the key (requests would keep `x-goog-api-key` across hosts); API calls themselves
  never follow redirects.
- Codes of `UpstreamRejectedError`: 401/403 (or a 400 whose details say API_KEY_INVALID) are
  `upstream_access_denied` with status 401/403, so the gateway reads them as its own access
  problem; 404 at create `model_not_found` (retired or unknown model), 404 elsewhere `not_found`;
  other refusals the google.rpc status lower-cased (`invalid_argument`, `failed_precondition`).
- 429 / RESOURCE_EXHAUSTED is UpstreamThrottled, waiting for `Retry-After` or else the
  `google.rpc.RetryInfo` delay in the details (neither is documented for this API: both read
  when present). Nothing lists operations and no idempotency key exists, so a create whose
  answer is lost (connection dropped after sending, read timeout, 5xx, unreadable 2xx) is
  UpstreamAmbiguousError; one that provably never connected is UpstreamTransientError.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

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
from gateway.providers.port import Capabilities, ProviderAccount, ProviderVideo, VideoProvider, VideoRequest
from gateway.providers.transport import (
    TRANSIENT_STATUSES,
    chunks,
    keyless_download,
    never_sent,
    read_answer,
    retry_after,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
TIMEOUT = (5.0, 30.0)
KEY_HEADER = "x-goog-api-key"
MAX_REDIRECTS = 5

CAPABILITIES = Capabilities(image_input=True, remix=False, delete=False, find_recent=False, thumbnail=False)

TEXT_PERSONS = "allow_all"
IMAGE_PERSONS = "allow_adult"
# The per-request options this protocol carries. Not generate_audio: Veo 3.x on the Gemini API
# always makes sound, and the SDK refuses the option outside Vertex AI.
VIDEO_OPTIONS = frozenset({"negative_prompt", "person_generation"})
BOOLEANS = {"true": True, "false": False}

# google.rpc.Code numbers, as an operation's `error.code` carries them, for readable messages.
RPC_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}
ACCESS_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
TRANSIENT_RPC_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})
# An operation name as the API gives it; anything else (say `..`) never reaches a URL.
OPERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
FILE_URI = re.compile(r"/files/([A-Za-z0-9][A-Za-z0-9_-]*):download")
DELAY = re.compile(r"(\d+(?:\.\d+)?)s")


def video_options(account: ProviderAccount, provider_model: str) -> frozenset[str]:
    """The per-request options it sends (gateway.video_options), for any Veo model."""
    return VIDEO_OPTIONS


class GeminiProvider(KeyedProvider):
    """One Gemini API key. Not thread-safe beyond what `requests.Session` is."""

    KIND = "gemini"
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    CAPABILITIES = CAPABILITIES

    def __init__(self, account: ProviderAccount, *, timeout: tuple[float, float] = TIMEOUT) -> None:
        super().__init__(account, timeout=timeout)
        self._option("enhance_prompt", BOOLEANS)
        self._origin = _origin(self._base)

    # -- the port ------------------------------------------------------------------------------

    def create(self, request: VideoRequest) -> ProviderVideo:
        # The catalog may name a model as the API lists it, `models/<id>`, or by its bare id.
        path = f"models/{request.model.removeprefix('models/')}:predictLongRunning"
        response = self._api(
            "POST", path, creating=True, not_found="model_not_found", json=self.body(request)
        )

        def created(answer: Any) -> ProviderVideo:
            video = self._video(answer)
            # An operation just made is not running yet as far as anyone can tell.
            status = "queued" if video.status == "in_progress" else video.status
            return ProviderVideo(
                id=video.id,
                status=status,
                error_code=video.error_code,
                error_message=video.error_message,
                prompt=request.prompt,
                model=request.model,
                seconds=str(request.seconds),
            )

        return read_answer(response, created, f"POST {path}", creating=True)

    def get(self, video_id: str) -> ProviderVideo:
        return self._video(self._operation(video_id))

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        if variant != "video":
            raise UpstreamRejectedError(f"The Gemini API has no {variant!r} asset", code="invalid_variant")
        operation = self._operation(video_id)
        video = self._video(operation)
        if video.status != "completed":
            raise UpstreamRejectedError(
                f"Gemini operation {video_id} is {video.status}; it has no video",
                code="video_not_ready",
                status=409,
            )
        uri = _video_uri(operation) or ""
        with self._download(uri) as stream:
            yield stream

    def delete(self, video_id: str) -> bool:
        raise UpstreamRejectedError(
            "The Gemini API cannot delete or cancel a video", code="unsupported_operation"
        )

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        raise UpstreamRejectedError("The Gemini API cannot remix a video", code="remix_not_supported")

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        raise UpstreamRejectedError(
            "The Gemini API lists no operations (capabilities.find_recent is False)",
            code="unsupported_operation",
        )

    # -- requests ------------------------------------------------------------------------------

    def body(self, request: VideoRequest) -> dict[str, Any]:
        """The predictLongRunning body for `request`: its own options first, then the account's."""
        instance: dict[str, Any] = {"prompt": request.prompt}
        asked = request.options.get("person_generation")
        persons = str(asked) if asked else self._options.get("person_generation") or TEXT_PERSONS
        if request.reference is not None:
            data = base64.b64encode(request.reference.content).decode("ascii")
            instance["image"] = {"inlineData": {"mimeType": request.reference.content_type, "data": data}}
            # allow_all is documented for text alone (intake refuses it with an image when asked).
            persons = IMAGE_PERSONS if persons == TEXT_PERSONS and not asked else persons
        parameters: dict[str, Any] = {
            "aspectRatio": request.aspect_ratio,
            "resolution": request.resolution,
            "durationSeconds": request.seconds,
            "personGeneration": persons,
        }
        negative = request.options.get("negative_prompt") or self._options.get("negative_prompt")
        if negative:
            parameters["negativePrompt"] = negative
        enhance = self._options.get("enhance_prompt")
        if enhance is not None:
            parameters["enhancePrompt"] = BOOLEANS[enhance.lower()]
        return {"instances": [instance], "parameters": parameters}

    def _operation(self, name: str) -> dict[str, Any]:
        if OPERATION_NAME.fullmatch(name) is None:
            raise UpstreamRejectedError(
                f"{name!r} is not a Gemini operation name", code="not_found", status=404
            )
        response = self._api("GET", name, creating=False, not_found="not_found")
        body = read_answer(response, lambda answer: answer, f"GET {name}")
        if not isinstance(body, dict):
            raise UpstreamTransientError(f"GET {name}: answer is not an object")
        return body

    def _api(
        self, method: str, path: str, *, creating: bool, not_found: str, **kwargs: Any
    ) -> requests.Response:
        try:
            response = self._session.request(
                method,
                f"{self._base}/{path}",
                headers={KEY_HEADER: self._key, "accept": "application/json"},
                timeout=self._timeout,
                # A redirect would carry x-goog-api-key to wherever it points: never followed.
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as error:
            raise _transport_error(f"{method} {path}", error, creating) from error
        if response.status_code < 300:
            return response
        try:
            raise self._answer_error(response, f"{method} {path}", creating=creating, not_found=not_found)
        finally:
            response.close()

    # -- the download --------------------------------------------------------------------------

    @contextmanager
    def _download(self, uri: str) -> Iterator[Iterator[bytes]]:
        """The video behind `uri`: with the key on the API's origin, without it anywhere else."""
        match = FILE_URI.search(urlsplit(uri).path)
        if match is not None:
            # Rebuilt on the configured base, as the SDK does, so the key goes nowhere else.
            found = self._follow(f"{self._base}/files/{match.group(1)}:download?alt=media")
        elif uri.startswith(("https://", "http://")):
            found = uri
        else:
            raise UpstreamRejectedError(
                "The finished Gemini operation has no video uri", code="video_unavailable", status=404
            )
        if isinstance(found, str):
            with self._keyless(found) as stream:
                yield stream
            return
        try:
            yield chunks(found, "Gemini video download")
        finally:
            found.close()

    def _follow(self, url: str) -> requests.Response | str:
        """GET `url` with the key, following redirects by hand while they stay on the API's
        origin; the answer, or the URL on another origin to fetch without the key."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._session.get(
                    url,
                    headers={KEY_HEADER: self._key},
                    stream=True,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                raise UpstreamTransientError(f"Gemini video download: {type(error).__name__}") from error
            location = response.headers.get("Location")
            if response.is_redirect and location:
                response.close()
                url = urljoin(url, location)
                if _origin(url) != self._origin:
                    return url
                continue
            if response.status_code < 300:
                return response
            try:
                raise self._answer_error(response, "GET video", creating=False, not_found="video_unavailable")
            finally:
                response.close()
        raise UpstreamTransientError(f"Gemini video download: more than {MAX_REDIRECTS} redirects")

    @contextmanager
    def _keyless(self, url: str) -> Iterator[Iterator[bytes]]:
        # Another origin (a storage host, say) gets no key; requests follows its redirects.
        with keyless_download(
            self._session,
            url,
            self._timeout,
            what="Gemini video download",
            unavailable_code="video_unavailable",
        ) as stream:
            yield stream

    # -- answers -------------------------------------------------------------------------------

    def _video(self, body: Mapping[str, Any]) -> ProviderVideo:
        name = body["name"]
        if not isinstance(name, str) or not name:
            raise TypeError("operation name is not a string")
        if not body.get("done"):
            return ProviderVideo(id=name, status="in_progress")
        error = body.get("error")
        if isinstance(error, dict):
            return ProviderVideo(
                id=name,
                status="failed",
                error_code=VIDEO_GENERATION_FAILED,
                error_message=self._scrub(_operation_error(error)),
            )
        if _video_uri(body):
            return ProviderVideo(id=name, status="completed")
        result = _generated(body)
        filtered = result.get("raiMediaFilteredCount")
        if isinstance(filtered, int) and filtered > 0:
            reasons = result.get("raiMediaFilteredReasons")
            words = "; ".join(str(reason) for reason in reasons) if isinstance(reasons, list) else ""
            return ProviderVideo(
                id=name,
                status="failed",
                error_code=CONTENT_POLICY_VIOLATION,
                error_message=self._scrub(words or "The safety filters removed the video."),
            )
        return ProviderVideo(
            id=name,
            status="failed",
            error_code=VIDEO_GENERATION_FAILED,
            error_message="The operation finished without a video.",
        )

    def _answer_error(
        self, response: requests.Response, where: str, *, creating: bool, not_found: str
    ) -> UpstreamError:
        status = response.status_code
        rpc, message, details = _error_fields(response)
        message = self._scrub(message)
        log.warning("gemini %s answered %s (%s)", where, status, rpc)
        if status in (401, 403) or rpc in ACCESS_STATUSES or _reason(details) == "API_KEY_INVALID":
            return UpstreamRejectedError(
                f"The Gemini API refused the key ({rpc}): {message}",
                code=UPSTREAM_ACCESS_DENIED,
                status=status if status in (401, 403) else 401,
            )
        if status == 429 or rpc == "RESOURCE_EXHAUSTED":
            wait = retry_after(response)
            return UpstreamThrottled(
                f"{where}: {rpc}: {message}",
                status=status,
                retry_after=wait if wait is not None else _retry_delay(details),
            )
        if status in TRANSIENT_STATUSES or status >= 500 or rpc in TRANSIENT_RPC_STATUSES:
            if creating:
                return UpstreamAmbiguousError(
                    f"{where}: {status} {rpc}: {message}; the operation may or may not exist", status=status
                )
            return UpstreamTransientError(
                f"{where}: {status} {rpc}: {message}", status=status, retry_after=retry_after(response)
            )
        if status == 404:
            return UpstreamRejectedError(message, code=not_found, status=status)
        return UpstreamRejectedError(message, code=rpc.lower() or f"upstream_{status}", status=status)

    def _scrub(self, text: str) -> str:
        """Whatever Google says, the key is never repeated in a message."""
        return text.replace(self._key, "***")


def build(account: ProviderAccount) -> VideoProvider:
    return GeminiProvider(account)


# -- helpers -------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _generated(body: Mapping[str, Any]) -> Mapping[str, Any]:
    response = body.get("response")
    result = response.get("generateVideoResponse") if isinstance(response, dict) else None
    return result if isinstance(result, dict) else {}


def _video_uri(body: Mapping[str, Any]) -> str | None:
    samples = _generated(body).get("generatedSamples")
    if not isinstance(samples, list) or not samples or not isinstance(samples[0], dict):
        return None
    video = samples[0].get("video")
    uri = video.get("uri") if isinstance(video, dict) else None
    return uri if isinstance(uri, str) and uri else None


def _operation_error(error: Mapping[str, Any]) -> str:
    code = error.get("code")
    name = RPC_NAMES.get(code, f"code {code}") if isinstance(code, int) else "UNKNOWN"
    message = error.get("message")
    return f"{name}: {message}" if isinstance(message, str) and message else name


def _error_fields(response: requests.Response) -> tuple[str, str, list[Any]]:
    """(rpc status, message, details) of `{"error": {...}}`; the HTTP reason when unreadable."""
    fallback = response.reason or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "", fallback, []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", fallback, []
    status = error.get("status")
    message = error.get("message")
    details = error.get("details")
    return (
        status if isinstance(status, str) else "",
        message if isinstance(message, str) and message else fallback,
        details if isinstance(details, list) else [],
    )


def _reason(details: list[Any]) -> str | None:
    """The `reason` of a google.rpc.ErrorInfo detail (API_KEY_INVALID, ...), if any."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason")
            return reason if isinstance(reason, str) else None
    return None


def _retry_delay(details: list[Any]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "27s"`), if any."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match is not None:
                return float(match.group(1))
    return None


def _transport_error(where: str, error: requests.RequestException, creating: bool) -> UpstreamError:
    what = f"{where}: {type(error).__name__}"
    if creating and not never_sent(error):
        return UpstreamAmbiguousError(f"{what}; the operation may or may not exist")
    return UpstreamTransientError(what)
