"""The OpenAI Videos wire protocol (`POST /videos`, `GET /videos/{id}`, `.../content`, remix,
list, delete), shared by every adapter whose service speaks it: Azure OpenAI's v1 API and any
OpenAI-compatible service. Only the base path and the authentication differ between them.

It tells transient failures (worth retrying later) from permanent refusals (which carry the
provider's own code and message to the job), so callers never read status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests

from gateway.errors import UpstreamRejectedError, UpstreamThrottled, UpstreamTransientError
from gateway.providers.port import Capabilities, PlainAsset, ProviderVideo, VideoRequest
from gateway.providers.transport import TRANSIENT_STATUSES, chunks, pooled_session, retry_after

log = logging.getLogger(__name__)

AuthHeaders = Callable[[], dict[str, str]]


def video_from_json(body: Mapping[str, Any]) -> ProviderVideo:
    """The OpenAI Video object in the port's terms (its statuses are the port's already)."""
    error = body.get("error") or {}
    progress = body.get("progress")
    return ProviderVideo(
        id=str(body["id"]),
        status=str(body.get("status", "queued")),
        progress=None if progress is None else int(progress),
        created_at=body.get("created_at"),
        error_code=error.get("code"),
        error_message=error.get("message"),
        prompt=body.get("prompt"),
        model=body.get("model"),
        seconds=None if body.get("seconds") is None else str(body["seconds"]),
        size=body.get("size"),
        remixed_from_video_id=body.get("remixed_from_video_id"),
    )


class OpenAIVideosWire:
    """A `VideoProvider` for one account of a service speaking the OpenAI Videos API at `base_url`
    (the path that `/videos` is appended to), authenticated by `auth` (called per request, so a
    token credential can refresh)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        auth: AuthHeaders,
        *,
        capabilities: Capabilities,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self._name = name
        self._base = base_url.rstrip("/")
        self._auth = auth
        self._capabilities = capabilities
        self._session = session or pooled_session()
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def create(self, request: VideoRequest) -> ProviderVideo:
        fields = {
            "model": request.model,
            "prompt": request.prompt,
            "seconds": str(request.seconds),
            "size": request.size,
        }
        reference = request.reference
        if reference is None:
            response = self._request("POST", "/videos", json=fields)
        else:
            files = {"input_reference": (reference.filename, reference.content, reference.content_type)}
            response = self._request("POST", "/videos", data=fields, files=files)
        return video_from_json(response.json())

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        response = self._request("POST", f"/videos/{video_id}/remix", json={"prompt": prompt})
        return video_from_json(response.json())

    def get(self, video_id: str) -> ProviderVideo:
        return video_from_json(self._request("GET", f"/videos/{video_id}").json())

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        body = self._request("GET", "/videos", params={"limit": limit, "order": "desc"}).json()
        return [video_from_json(item) for item in body.get("data", [])]

    def delete(self, video_id: str) -> bool:
        try:
            self._request("DELETE", f"/videos/{video_id}")
        except UpstreamRejectedError as error:
            if error.status == 404:
                return False
            raise
        return True

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        response = self._request(
            "GET", f"/videos/{video_id}/content", params={"variant": variant}, stream=True
        )
        try:
            yield chunks(response, f"{variant} of {video_id}")
        finally:
            response.close()

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """None: the content endpoint wants the account's key, so only `open_asset` can read it."""
        return None

    def close(self) -> None:
        self._session.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(
                method, self._base + path, headers=self._auth(), timeout=self._timeout, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise UpstreamTransientError(f"{method} {path}: {type(error).__name__}") from error
        if response.status_code < 400:
            return response
        try:
            raise_for(response, method, path)
        finally:
            response.close()
        raise AssertionError("unreachable")  # raise_for always raises


def raise_for(response: requests.Response, method: str, path: str) -> None:
    """Raise the port's error for an error answer (never with a credential in it)."""
    code, message = _error_fields(response)
    status = response.status_code
    log.warning("upstream %s %s answered %s (%s)", method, path, status, code)
    if status == 429:
        raise UpstreamThrottled(
            f"{method} {path}: {message}", status=status, retry_after=retry_after(response)
        )
    if status in TRANSIENT_STATUSES and code != "content_policy_violation":
        raise UpstreamTransientError(
            f"{method} {path}: {status} {message}", status=status, retry_after=retry_after(response)
        )
    raise UpstreamRejectedError(message, code=code, status=status)


def _error_fields(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or f"upstream_{response.status_code}")
    message = str(error.get("message") or response.reason or "upstream error")
    return code, message
