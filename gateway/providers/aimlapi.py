"""Adapter for the AI/ML API (api.aimlapi.com) video generations, behind the provider port.

Documented facts relied on (AI/ML API docs: video-models schemas, universal-video-fetch,
errors-and-messages):

- Create is `POST {base}/v2/video/generations` with a JSON body `{model, prompt, duration (int),
  aspect_ratio ("16:9" | "9:16"), resolution ("720p" | "1080p")}`, plus `image_url` for the
  image-to-video models; auth is `Authorization: Bearer <key>`.
- The create answer is the same object as a poll, usually `status: "queued"`. Its id is `id`
  (older examples: `generation_id`); ids are opaque and contain `:` and `/`, so they go in the
  query string URL-encoded.
- Poll is `GET {base}/v2/video/generations?generation_id=<id>`, answering `{id, status, video:
  {url} | null, error: {name, message} | null, meta}` with `status` in `queued`, `generating`,
  `completed`, `error` (some models say `succeeded`/`failed`). There is no progress field, so
  `ProviderVideo.progress` is always None; any other status counts as running.
- The video is `video.url` on the provider's CDN, linked without a key: it is fetched with no
  credentials at all (the key only ever goes to the API's own requests, never to the CDN host).
- Errors are `{message, path, requestId, statusCode, timestamp}`: 400 "Body validation error!",
  401 missing or bad key, 403 out of credits, 404, 429 "Too Many Requests" (maybe without
  Retry-After), 500/502/503/504 server-side. Content refusals are not create errors: the
  generation ends later in `status: "error"`; no refusal code is documented.
- No cancel, delete, list or idempotency-key endpoints exist for these generations.
- Per-request options (VideoRequest.options): the google/veo-3.1 schemas take
  `negative_prompt` (string) and `generate_audio` (boolean, default true) at the body's top
  level, under those names. They are declared (`video_options`) for `google/veo*` models only
  and sent as the request gives them.

Choices made here (not documented by the provider):

- A reference image is sent inline as a base64 `data:` URL in `image_url` (the gateway holds
  the bytes, not a public URL). The docs say Sora i2v takes a URL or base64; that Veo i2v takes
  a `data:` URL is unverified.
- Codes of `UpstreamRejectedError`: 401 and 403 → `upstream_access_denied` (the gateway's own
  key or credit, never the caller's fault), 400 → `invalid_request`, 404 → `not_found`, other
  4xx → `upstream_<status>`. A generation in `status: "error"` becomes `failed` with
  `error.name` as its code, or `video_generation_failed` when there is none.
- Because the provider can neither list jobs nor take an idempotency key, a create whose answer
  was lost (connection dropped or reset after connecting, read timeout, any 5xx, an unreadable
  200) raises `UpstreamAmbiguousError`: it may have made a job. Only failures that prove the
  request never got there are `UpstreamTransientError`: a connect timeout, a refused or
  unresolvable connection; a 429 is `UpstreamThrottled`. No 5xx is documented as "not accepted",
  so none is treated as one. Polls and downloads are read-only, so all such failures are
  transient there.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests

from gateway.errors import (
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.providers.keyed import KeyedProvider
from gateway.providers.port import (
    Capabilities,
    PlainAsset,
    ProviderAccount,
    ProviderVideo,
    VideoProvider,
    VideoRequest,
)
from gateway.providers.transport import keyless_asset, keyless_download, never_sent, read_answer, retry_after

GENERATIONS_PATH = "/v2/video/generations"
CAPABILITIES = Capabilities(image_input=True, remix=False, delete=False, find_recent=False, thumbnail=False)
ACCESS_DENIED = "upstream_access_denied"
GENERATION_FAILED = "video_generation_failed"
DONE_STATUSES = frozenset({"completed", "succeeded"})
FAILED_STATUSES = frozenset({"error", "failed"})
QUEUED_STATUSES = frozenset({"queued", "waiting"})

# The per-request options its Veo schemas take, under the same names (google/veo-3.1-t2v:
# negative_prompt, generate_audio). Other model families' schemas differ; none is declared.
VEO_PREFIX = "google/veo"
VEO_OPTIONS = frozenset({"negative_prompt", "generate_audio"})

log = logging.getLogger(__name__)


def video_options(account: ProviderAccount, provider_model: str) -> frozenset[str]:
    """The per-request options it sends (gateway.video_options) for that model."""
    return VEO_OPTIONS if provider_model.startswith(VEO_PREFIX) else frozenset()


class AimlApiProvider(KeyedProvider):
    """One AI/ML API account: its base URL and API key, with one HTTP session."""

    KIND = "aimlapi"
    CAPABILITIES = CAPABILITIES

    # -- the port ----------------------------------------------------------------------------

    def create(self, request: VideoRequest) -> ProviderVideo:
        body: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "duration": request.seconds,
            "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution,
        }
        if request.reference is not None:
            encoded = base64.b64encode(request.reference.content).decode("ascii")
            body["image_url"] = f"data:{request.reference.content_type};base64,{encoded}"
        body.update(request.options)  # the same names; the catalog let through only VEO_OPTIONS
        response = self._create_request(body)
        return read_answer(response, self._video, f"POST {GENERATIONS_PATH}", creating=True)

    def get(self, video_id: str) -> ProviderVideo:
        response = self._read_request(GENERATIONS_PATH, params={"generation_id": video_id})
        return read_answer(response, self._video, f"GET {GENERATIONS_PATH}")

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        """The finished MP4 from the provider's CDN, in chunks; only the "video" variant exists."""
        url = self._asset_url(video_id, variant)
        with keyless_download(
            self._session, url, self._timeout, what="video download", unavailable_code="video_unavailable"
        ) as stream:
            yield stream

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """The MP4's CDN link: it takes no key, so storage can fetch it itself."""
        url = self._asset_url(video_id, variant)
        return keyless_asset(
            self._session, url, self._timeout, what="video download", unavailable_code="video_unavailable"
        )

    def _asset_url(self, video_id: str, variant: str) -> str:
        if variant != "video":
            raise ValueError(f"aimlapi serves no {variant!r} asset (see capabilities.thumbnail)")
        return self._video_url(video_id)

    def delete(self, video_id: str) -> bool:
        raise NotImplementedError("aimlapi cannot delete or cancel generations (capabilities.delete)")

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        raise NotImplementedError("aimlapi has no remix (capabilities.remix)")

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        raise NotImplementedError("aimlapi cannot list generations (capabilities.find_recent)")

    # -- HTTP --------------------------------------------------------------------------------

    def _create_request(self, body: Mapping[str, Any]) -> requests.Response:
        where = f"POST {GENERATIONS_PATH}"
        try:
            response = self._session.post(
                self._base + GENERATIONS_PATH, json=body, headers=self._auth(), timeout=self._timeout
            )
        except requests.RequestException as error:
            if never_sent(error):
                raise UpstreamTransientError(
                    f"{where}: could not connect ({type(error).__name__})"
                ) from error
            # Connection lost or read timeout after sending: the job may exist.
            raise UpstreamAmbiguousError(f"{where}: {type(error).__name__} before the answer") from error
        if response.status_code < 400:
            return response
        try:
            message = self._message(response)
            status = response.status_code
            log.warning("aimlapi %s answered %s", where, status)
            if status >= 500:
                raise UpstreamAmbiguousError(f"{where}: {status} {message}", status=status)
            self._raise_for(response, where, message)
        finally:
            response.close()
        raise AssertionError("unreachable")  # _raise_for always raises

    def _read_request(self, path: str, *, params: Mapping[str, str]) -> requests.Response:
        where = f"GET {path}"
        try:
            response = self._session.get(
                self._base + path, params=params, headers=self._auth(), timeout=self._timeout
            )
        except requests.RequestException as error:
            raise UpstreamTransientError(f"{where}: {type(error).__name__}") from error
        if response.status_code < 400:
            return response
        try:
            message = self._message(response)
            log.warning("aimlapi %s answered %s", where, response.status_code)
            if response.status_code >= 500:
                raise UpstreamTransientError(
                    f"{where}: {response.status_code} {message}",
                    status=response.status_code,
                    retry_after=retry_after(response),
                )
            self._raise_for(response, where, message)
        finally:
            response.close()
        raise AssertionError("unreachable")

    def _raise_for(self, response: requests.Response, where: str, message: str) -> None:
        status = response.status_code
        if status == 429:
            raise UpstreamThrottled(f"{where}: {message}", status=status, retry_after=retry_after(response))
        if status in (401, 403):
            raise UpstreamRejectedError(message, code=ACCESS_DENIED, status=status)
        code = {400: "invalid_request", 404: "not_found"}.get(status, f"upstream_{status}")
        raise UpstreamRejectedError(message, code=code, status=status)

    def _message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        text = str(message) if message else (response.reason or f"HTTP {response.status_code}")
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """Whatever the provider says, the key is not repeated in a message."""
        return text.replace(self._key, "***")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def _video(self, body: Mapping[str, Any]) -> ProviderVideo:
        raw_id = body.get("id") or body.get("generation_id")
        if not raw_id:
            raise KeyError("id")
        raw_status = str(body.get("status") or "queued").lower()
        if raw_status in DONE_STATUSES:
            status = "completed"
        elif raw_status in FAILED_STATUSES:
            status = "failed"
        elif raw_status in QUEUED_STATUSES:
            status = "queued"
        else:
            status = "in_progress"
        error_code = error_message = None
        if status == "failed":
            error = body.get("error")
            error = error if isinstance(error, dict) else {}
            error_code = str(error.get("name") or GENERATION_FAILED)
            error_message = self._scrub(str(error.get("message") or "The video generation failed."))
        return ProviderVideo(
            id=str(raw_id),
            status=status,
            progress=None,
            error_code=error_code,
            error_message=error_message,
        )

    def _video_url(self, video_id: str) -> str:
        response = self._read_request(GENERATIONS_PATH, params={"generation_id": video_id})

        def video_and_url(body: Any) -> tuple[ProviderVideo, Any]:
            video = self._video(body)
            return video, (body.get("video") or {}).get("url") if video.status == "completed" else None

        video, url = read_answer(response, video_and_url, f"GET {GENERATIONS_PATH}")
        if video.status != "completed":
            raise UpstreamRejectedError(
                f"Generation is {video.status}, it has no video yet.", code="video_not_ready"
            )
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise UpstreamRejectedError(
                "The completed generation has no video URL.", code="video_unavailable"
            )
        return url


def build(account: ProviderAccount) -> VideoProvider:
    return AimlApiProvider(account)
