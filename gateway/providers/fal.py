"""Adapter for fal's queue API (queue.fal.run), behind the provider port.

Wire facts relied on (fal's JS client and fal's queue, errors and cancel docs; the conformance
test, tests/providers/test_fal.py, lists them with their sources):

- Submit is `POST {base}/{model_id}` (the model id may have a subpath, `fal-ai/veo3.1/fast`) with
  the model's input as the JSON body and `Authorization: Key <key>`. The answer carries
  `request_id`, `status_url`, `response_url`, `cancel_url` and maybe `queue_position`.
- Status, result and cancel live under the owner and app only, never under the subpath:
  `{base}/{owner}/{app}/requests/{id}/status` (202 `IN_QUEUE` with `queue_position`, 202
  `IN_PROGRESS`, 200 `COMPLETED`; no percent progress), `GET .../requests/{id}` (the output, e.g.
  `{"video": {"url"}}`, or the model's error status and body) and `PUT .../requests/{id}/cancel`
  (`CANCELLATION_REQUESTED`, `ALREADY_COMPLETED` or `NOT_FOUND` as `{"status"}`).
- Errors: `{"detail": [{"loc", "msg", "type"}]}` (validation and model errors; content policy is
  422 with type `content_policy_violation`) or `{"detail": "<text>", "error_type"}` (infrastructure),
  with an `X-Fal-Retryable` header; 401 for a bad key.
- The output's video URL is on fal's CDN, public: it is fetched without the key.
- Per-request options (VideoRequest.options), under the same names in the input JSON (fal's
  model schemas): Veo 3.1 (Veo31Input) takes `negative_prompt` and `generate_audio`, Kling v2.x
  `negative_prompt`. fal ignores input fields a model lacks, so an option the dialect lacks is
  refused before sending (`unsupported_option`), never dropped.

Choices made here (not documented by fal):

- The gateway keeps only the id, and `get(video_id)` must find the owner/app URLs from it alone,
  so the id is `<owner>/<app>/<request_id>`: the exact path prefix of those URLs, made of
  URL-safe segments (checked on the way in and out). The URLs of the submit answer are not used:
  they name fal's own host, and the key goes only to the account's base URL.
- The input dialect: `kling` for `fal-ai/kling-video/...` models (duration "5" | "10", no
  resolution field, aspect_ratio only without an image), `veo` for `fal-ai/veo...` models
  (duration "4s" | "6s" | "8s", aspect_ratio, resolution). The account option `dialect` ("veo" or
  "kling") decides for any other model id; without it such a model is refused before sending.
- A reference image goes inline as a base64 `data:` URI in `image_url`, and only to models whose
  id says `image-to-video` (a text model would ignore or refuse it).
- `COMPLETED` says the queue is done, not that the model succeeded: `get` then reads the result.
  An error answer there is the job's failure: 422 `content_policy_violation` becomes failed with
  that code, an error type mentioning cancellation becomes `cancelled`, any other model error is
  failed with the error's type as a plain word (`video_generation_failed` when there is none).
  A 5xx there is the failure only when `X-Fal-Retryable: false` says asking again cannot help;
  otherwise it is a transient failure of the read.
- Codes of `UpstreamRejectedError`: 401/403 -> `upstream_access_denied`; 400/422 -> the first
  detail's `type` as a plain word (`invalid_request` when there is none); 404 at submit ->
  `model_not_found`, elsewhere `not_found`; other 4xx -> `upstream_<status>`; a 5xx with
  `X-Fal-Retryable: false` -> its `error_type` or `upstream_<status>`.
- fal neither lists requests nor takes an idempotency key, so a submit whose answer is lost
  (dropped after connecting, read timeout, a 5xx fal did not mark as final, an unreadable 2xx)
  raises `UpstreamAmbiguousError`; only a connection never made is `UpstreamTransientError`.
  Reads are always safe to repeat: their failures are transient.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
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

DEFAULT_BASE_URL = "https://queue.fal.run"
TIMEOUT = (5.0, 30.0)
CAPABILITIES = Capabilities(image_input=True, remix=False, delete=True, find_recent=False, thumbnail=False)

DIALECTS = ("veo", "kling")
DIALECT_PREFIXES = (("fal-ai/kling-video/", "kling"), ("fal-ai/veo", "veo"))
# The per-request options each dialect's input carries, under the same names (Veo31Input has
# negative_prompt and generate_audio; Kling v2.x inputs have negative_prompt).
DIALECT_OPTIONS = {
    "veo": frozenset({"negative_prompt", "generate_audio"}),
    "kling": frozenset({"negative_prompt"}),
}
IMAGE_MODEL_MARKER = "image-to-video"

# One path segment of a model or video id: nothing that could change the URL's meaning.
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PLAIN_WORD = re.compile(r"[^a-z0-9]+")

QUEUE_STATUSES = {"IN_QUEUE": "queued", "IN_PROGRESS": "in_progress"}
CANCEL_ACCEPTED = "CANCELLATION_REQUESTED"
CANCEL_REFUSED = frozenset({"ALREADY_COMPLETED", "NOT_FOUND"})


@dataclass(frozen=True)
class RequestRef:
    """Where one queued request lives: the owner/app URL prefix, and its id."""

    owner: str
    app: str
    request_id: str

    @property
    def video_id(self) -> str:
        return f"{self.owner}/{self.app}/{self.request_id}"

    @property
    def path(self) -> str:
        return f"{self.owner}/{self.app}/requests/{self.request_id}"


@dataclass(frozen=True)
class FalFailure:
    """A fal error answer, read once: what the job or the caller is told."""

    code: str
    message: str
    final: bool  # X-Fal-Retryable: false


def dialect_of(model: str, account_dialect: str | None) -> str | None:
    """`veo` or `kling` from the model id, else the account's `dialect` option, else None."""
    for prefix, dialect in DIALECT_PREFIXES:
        if model.startswith(prefix):
            return dialect
    return account_dialect.lower() if account_dialect else None


def video_options(account: ProviderAccount, provider_model: str) -> frozenset[str]:
    """The per-request options it sends (gateway.video_options) for that model's dialect."""
    dialect = dialect_of(provider_model, account.options.get("dialect"))
    return DIALECT_OPTIONS.get(dialect or "", frozenset())


class FalProvider(KeyedProvider):
    """One fal account: its queue base URL and key, with one HTTP session."""

    KIND = "fal"
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    CAPABILITIES = CAPABILITIES

    def __init__(
        self,
        account: ProviderAccount,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        super().__init__(account, session=session, timeout=timeout)
        self._dialect = self._option("dialect", DIALECTS)

    # -- the port ------------------------------------------------------------------------------

    def create(self, request: VideoRequest) -> ProviderVideo:
        owner, app = _endpoint(request.model)
        body = self.model_input(request)
        where = f"POST {request.model}"
        response = self._send("POST", request.model, creating=True, json=body)

        def queued(answer: Any) -> ProviderVideo:
            ref = RequestRef(owner, app, _segment(answer["request_id"]))
            return ProviderVideo(id=ref.video_id, status="queued", queue_position=_position(answer))

        return read_answer(response, queued, where, creating=True)

    def get(self, video_id: str) -> ProviderVideo:
        ref = _ref(video_id)
        waiting = self._waiting(ref)
        return waiting if waiting is not None else self._outcome(ref)[0]

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        """The finished MP4 from fal's CDN, in chunks; only the "video" variant exists."""
        url = self._asset_url(video_id, variant)
        with keyless_download(
            self._session, url, self._timeout, what="fal video download", unavailable_code="video_unavailable"
        ) as stream:
            yield stream

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """The MP4 on fal's CDN: it takes no key, so storage can fetch it itself."""
        url = self._asset_url(video_id, variant)
        return keyless_asset(
            self._session, url, self._timeout, what="fal video download", unavailable_code="video_unavailable"
        )

    def _asset_url(self, video_id: str, variant: str) -> str:
        if variant != "video":
            raise UpstreamRejectedError(f"fal serves no {variant!r} asset", code="invalid_variant")
        return self._video_url(video_id)

    def delete(self, video_id: str) -> bool:
        """Cancel the request: True when fal took the cancellation, False when the request is
        finished already or unknown (nothing left to stop)."""
        ref = _ref(video_id)
        where = f"PUT {ref.owner}/{ref.app} cancel"
        try:
            response = self._session.put(
                f"{self._base}/{ref.path}/cancel", headers=self._auth(), timeout=self._timeout
            )
        except requests.RequestException as error:
            raise UpstreamTransientError(f"{where}: {type(error).__name__}") from error
        try:
            status = _status_word(response)
            if status == CANCEL_ACCEPTED and response.status_code < 400:
                return True
            if status in CANCEL_REFUSED or response.status_code == 404:
                return False
            if response.status_code < 400:
                raise UpstreamTransientError(f"{where}: unexpected answer {status!r}")
            raise self._error(response, where, creating=False)
        finally:
            response.close()

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        raise UpstreamRejectedError("fal's queue has no remix", code="remix_not_supported")

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        raise UpstreamRejectedError(
            "fal's queue cannot list requests (capabilities.find_recent is False)",
            code="unsupported_operation",
        )

    # -- requests ------------------------------------------------------------------------------

    def dialect_of(self, model: str) -> str:
        """`veo` or `kling`: which input fields the model takes, from its id or the account."""
        dialect = dialect_of(model, self._dialect)
        if dialect is not None:
            return dialect
        raise UpstreamRejectedError(
            f"fal model {model!r} is neither a fal-ai/veo* nor a fal-ai/kling-video model; set the "
            "account's `dialect` option",
            code="unsupported_model",
            status=400,
        )

    def model_input(self, request: VideoRequest) -> dict[str, Any]:
        dialect = self.dialect_of(request.model)
        body: dict[str, Any] = {"prompt": request.prompt}
        if dialect == "veo":
            body.update(
                aspect_ratio=request.aspect_ratio,
                duration=f"{request.seconds}s",
                resolution=request.resolution,
            )
        else:
            body["duration"] = str(request.seconds)
            if request.reference is None:
                body["aspect_ratio"] = request.aspect_ratio  # an image sets the shape itself
        if request.reference is not None:
            if IMAGE_MODEL_MARKER not in request.model:
                raise UpstreamRejectedError(
                    f"fal model {request.model!r} takes no reference image",
                    code="image_not_supported",
                    status=400,
                )
            encoded = base64.b64encode(request.reference.content).decode("ascii")
            body["image_url"] = f"data:{request.reference.content_type};base64,{encoded}"
        for name, value in request.options.items():
            if name not in DIALECT_OPTIONS[dialect]:
                # The catalog is checked against DIALECT_OPTIONS at start-up; never dropped silently.
                raise UpstreamRejectedError(
                    f"fal's {dialect} input has no {name!r}", code="unsupported_option", status=400
                )
            body[name] = value
        return body

    # -- answers -------------------------------------------------------------------------------

    def _outcome(self, ref: RequestRef) -> tuple[ProviderVideo, str | None]:
        """The finished request as the result endpoint tells it, with the video URL if any."""
        where = f"GET {ref.owner}/{ref.app} result"
        try:
            response = self._session.get(
                f"{self._base}/{ref.path}", headers=self._auth(), timeout=self._timeout
            )
        except requests.RequestException as error:
            raise UpstreamTransientError(f"{where}: {type(error).__name__}") from error
        if response.status_code >= 400:
            try:
                return self._failed(ref, response, where), None
            finally:
                response.close()
        body = self._json(response, where)
        video = body.get("video")
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            message = "fal finished the request but its output has no video URL"
            failed = ProviderVideo(
                ref.video_id, "failed", error_code=VIDEO_GENERATION_FAILED, error_message=message
            )
            return failed, None
        return ProviderVideo(id=ref.video_id, status="completed"), url

    def _failed(self, ref: RequestRef, response: requests.Response, where: str) -> ProviderVideo:
        """The job's failure from an error answer of the result endpoint, or a raised error when
        the answer is about the call (key, throttling, a passing outage) rather than the job."""
        status = response.status_code
        failure = self._failure(response)
        access = status in (401, 403)
        passing = status == 429 or ((status in TRANSIENT_STATUSES or status >= 500) and not failure.final)
        if access or passing or status == 404:
            raise self._error(response, where, creating=False, failure=failure)
        log.warning("fal request %s failed (%s %s)", ref.video_id, status, failure.code)
        if "cancel" in failure.code:
            return ProviderVideo(
                ref.video_id, "cancelled", error_code="cancelled", error_message=failure.message
            )
        code = failure.code if failure.code == CONTENT_POLICY_VIOLATION else _job_code(failure.code)
        return ProviderVideo(ref.video_id, "failed", error_code=code, error_message=failure.message)

    def _waiting(self, ref: RequestRef) -> ProviderVideo | None:
        """The request while fal has not finished it (queued or running); None once COMPLETED."""
        where = f"GET {ref.owner}/{ref.app} status"
        body = self._json(self._send("GET", f"{ref.path}/status"), where)
        raw = str(body.get("status") or "")
        if raw == "COMPLETED":
            return None
        if raw not in QUEUE_STATUSES:
            # A status word this adapter does not know: still running, ask again later.
            return ProviderVideo(id=ref.video_id, status="in_progress")
        position = _position(body) if raw == "IN_QUEUE" else None
        return ProviderVideo(id=ref.video_id, status=QUEUE_STATUSES[raw], queue_position=position)

    def _video_url(self, video_id: str) -> str:
        ref = _ref(video_id)
        waiting = self._waiting(ref)
        if waiting is not None:
            raise UpstreamRejectedError(
                f"fal request {ref.request_id} is {waiting.status}; it has no video yet",
                code="video_not_ready",
                status=409,
            )
        video, url = self._outcome(ref)
        if url is None:
            raise UpstreamRejectedError(
                f"fal request {ref.request_id} is {video.status}; it has no video",
                code="video_not_ready",
                status=409,
            )
        return url

    def _json(self, response: requests.Response, where: str) -> Mapping[str, Any]:
        body = read_answer(response, lambda answer: answer, where)
        if not isinstance(body, dict):
            raise UpstreamTransientError(f"{where}: answer is not an object", status=response.status_code)
        return body

    # -- HTTP ----------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, creating: bool = False, **kwargs: Any) -> requests.Response:
        """A request to the queue with the key; an error answer raised in the port's terms."""
        where = f"{method} {path.split('/requests/')[0]}"
        try:
            response = self._session.request(
                method, f"{self._base}/{path}", headers=self._auth(), timeout=self._timeout, **kwargs
            )
        except requests.RequestException as error:
            if creating and not never_sent(error):
                # Lost after sending: fal may have queued it, and cannot be asked.
                raise UpstreamAmbiguousError(f"{where}: {type(error).__name__} before the answer") from error
            raise UpstreamTransientError(f"{where}: {type(error).__name__}") from error
        if response.status_code < 400:
            return response
        try:
            raise self._error(response, where, creating=creating)
        finally:
            response.close()

    def _error(
        self, response: requests.Response, where: str, *, creating: bool, failure: FalFailure | None = None
    ) -> UpstreamError:
        status = response.status_code
        failure = failure or self._failure(response)
        log.warning("fal %s answered %s (%s)", where, status, failure.code)
        text = f"{where}: {status} {failure.message}"
        if status in (401, 403):
            return UpstreamRejectedError(
                f"fal refused the gateway's key: {failure.message}",
                code=UPSTREAM_ACCESS_DENIED,
                status=status,
            )
        if status == 429:
            return UpstreamThrottled(text, status=status, retry_after=retry_after(response))
        if (status in TRANSIENT_STATUSES or status >= 500) and not failure.final:
            if creating:
                return UpstreamAmbiguousError(f"{text}; the request may or may not be queued", status=status)
            return UpstreamTransientError(text, status=status, retry_after=retry_after(response))
        if status == 404:
            return UpstreamRejectedError(
                failure.message, code="model_not_found" if creating else "not_found", status=status
            )
        code = failure.code if status in (400, 422) or status >= 500 else f"upstream_{status}"
        return UpstreamRejectedError(failure.message, code=code, status=status)

    def _failure(self, response: requests.Response) -> FalFailure:
        """Code and message of fal's `{"detail": [...]}` or `{"detail": "...", "error_type"}`."""
        status = response.status_code
        final = response.headers.get("X-Fal-Retryable", "").strip().lower() == "false"
        fallback = "invalid_request" if status in (400, 422) else f"upstream_{status}"
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):
            items = [item for item in detail if isinstance(item, dict)]
            code = _plain(items[0].get("type")) if items else None
            message = "; ".join(_problem(item) for item in items)
        else:
            kind = body.get("error_type") if isinstance(body, dict) else None
            code = _plain(kind or response.headers.get("X-Fal-Error-Type"))
            message = detail if isinstance(detail, str) else ""
        message = message or response.reason or f"HTTP {status}"
        return FalFailure(code=code or fallback, message=self._scrub(message), final=final)

    def _scrub(self, text: str) -> str:
        """Whatever fal says, the key is not repeated in a message."""
        return text.replace(self._key, "***")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._key}"}


def build(account: ProviderAccount) -> VideoProvider:
    return FalProvider(account)


# -- ids and small readers ---------------------------------------------------------------------


def _endpoint(model: str) -> tuple[str, str]:
    """Owner and app of a model id (`fal-ai/veo3.1/fast` -> `fal-ai`, `veo3.1`)."""
    parts = model.split("/")
    if len(parts) < 2 or not all(SEGMENT.fullmatch(part) and ".." not in part for part in parts):
        raise UpstreamRejectedError(
            f"{model!r} is not a fal model id (owner/app[/path])", code="unsupported_model", status=400
        )
    return parts[0], parts[1]


def _ref(video_id: str) -> RequestRef:
    parts = video_id.split("/")
    if len(parts) != 3 or not all(SEGMENT.fullmatch(part) and ".." not in part for part in parts):
        raise UpstreamRejectedError(
            f"{video_id!r} is not a fal video id (owner/app/request_id)", code="not_found", status=404
        )
    return RequestRef(*parts)


def _segment(value: object) -> str:
    """A request id from an answer, refused (as unreadable) unless it is one URL-safe segment."""
    if not isinstance(value, str) or not SEGMENT.fullmatch(value) or ".." in value:
        raise ValueError("request_id is not a URL-safe id")
    return value


def _position(body: Mapping[str, Any]) -> int | None:
    value = body.get("queue_position")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _status_word(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


def _problem(item: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in item.get("loc") or [] if part != "body")
    message = str(item.get("msg") or item.get("type") or "invalid")
    return f"{where}: {message}" if where else message


def _plain(value: object) -> str | None:
    """A code as a plain lower-case word (`content_policy_violation`), or None."""
    if not isinstance(value, str):
        return None
    word = PLAIN_WORD.sub("_", value.lower()).strip("_")
    return word[:64] or None


def _job_code(code: str) -> str:
    """A job's failure code: fal's own word, unless it is only our fallback for a bare status."""
    return VIDEO_GENERATION_FAILED if code.startswith("upstream_") or code == "invalid_request" else code
