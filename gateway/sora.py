"""Client for the Azure OpenAI v1 videos API (Sora), built from an endpoint and a credential.

It tells transient failures (worth retrying later) from permanent refusals (which carry the
upstream's own code and message to the job) so callers never have to read status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from azure.core.credentials import TokenCredential

from gateway.errors import UpstreamRejectedError, UpstreamThrottled, UpstreamTransientError

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})  # 429 has its own class
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamVideo:
    """The part of the upstream's Video object the gateway acts on."""

    id: str
    status: str
    progress: int
    created_at: int | None
    error_code: str | None
    error_message: str | None
    prompt: str | None = None
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    remixed_from_video_id: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> UpstreamVideo:
        error = body.get("error") or {}
        return cls(
            id=str(body["id"]),
            status=str(body.get("status", "queued")),
            progress=int(body.get("progress") or 0),
            created_at=body.get("created_at"),
            error_code=error.get("code"),
            error_message=error.get("message"),
            prompt=body.get("prompt"),
            model=body.get("model"),
            seconds=None if body.get("seconds") is None else str(body["seconds"]),
            size=body.get("size"),
            remixed_from_video_id=body.get("remixed_from_video_id"),
        )


@dataclass(frozen=True)
class ReferenceFile:
    filename: str
    content: bytes
    content_type: str


class SoraClient:
    def __init__(
        self,
        endpoint: str,
        *,
        credential: TokenCredential | None = None,
        api_key: str | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        if credential is None and api_key is None:
            raise ValueError("SoraClient needs a credential or an api key")
        self._base = endpoint.rstrip("/") + "/openai/v1"
        self._credential = credential
        self._api_key = api_key
        self._session = session or requests.Session()
        self._timeout = timeout

    def create_video(
        self,
        *,
        model: str,
        prompt: str,
        seconds: str,
        size: str,
        input_reference: ReferenceFile | None = None,
    ) -> UpstreamVideo:
        fields = {"model": model, "prompt": prompt, "seconds": seconds, "size": size}
        if input_reference is None:
            response = self._request("POST", "/videos", json=fields)
        else:
            files = {
                "input_reference": (
                    input_reference.filename,
                    input_reference.content,
                    input_reference.content_type,
                )
            }
            response = self._request("POST", "/videos", data=fields, files=files)
        return UpstreamVideo.from_json(response.json())

    def remix_video(self, video_id: str, *, prompt: str) -> UpstreamVideo:
        response = self._request("POST", f"/videos/{video_id}/remix", json={"prompt": prompt})
        return UpstreamVideo.from_json(response.json())

    def get_video(self, video_id: str) -> UpstreamVideo:
        return UpstreamVideo.from_json(self._request("GET", f"/videos/{video_id}").json())

    def list_videos(self, *, limit: int = 100) -> list[UpstreamVideo]:
        """The newest upstream jobs, newest first (one page)."""
        body = self._request("GET", "/videos", params={"limit": limit, "order": "desc"}).json()
        return [UpstreamVideo.from_json(item) for item in body.get("data", [])]

    def delete_video(self, video_id: str) -> bool:
        """Delete an upstream job; False when it was already gone."""
        try:
            self._request("DELETE", f"/videos/{video_id}")
        except UpstreamRejectedError as error:
            if error.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self._session.close()

    @contextmanager
    def stream_content(self, video_id: str, variant: str = "video") -> Iterator[requests.Response]:
        """An open streaming response for the asset; the caller reads it in chunks."""
        response = self._request(
            "GET", f"/videos/{video_id}/content", params={"variant": variant}, stream=True
        )
        # Undo any transfer compression so `response.raw` yields the asset's own bytes.
        response.raw.decode_content = True
        try:
            yield response
        finally:
            response.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(
                method, self._base + path, headers=self._auth_headers(), timeout=self._timeout, **kwargs
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise UpstreamTransientError(f"{method} {path}: {type(error).__name__}") from error
        if response.status_code < 400:
            return response
        try:
            self._raise_for(response, method, path)
        finally:
            response.close()
        raise AssertionError("unreachable")  # _raise_for always raises

    def _auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"api-key": self._api_key}
        assert self._credential is not None
        # The credential caches the token and refreshes it before it expires.
        return {"Authorization": f"Bearer {self._credential.get_token(COGNITIVE_SERVICES_SCOPE).token}"}

    @staticmethod
    def _raise_for(response: requests.Response, method: str, path: str) -> None:
        code, message = _error_fields(response)
        status = response.status_code
        log.warning("upstream %s %s answered %s (%s)", method, path, status, code)
        if status == 429:
            raise UpstreamThrottled(
                f"{method} {path}: {message}", status=status, retry_after=_retry_after(response)
            )
        if status in TRANSIENT_STATUSES and code != "content_policy_violation":
            raise UpstreamTransientError(
                f"{method} {path}: {status} {message}",
                status=status,
                retry_after=_retry_after(response),
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


def _retry_after(response: requests.Response) -> float | None:
    for header in ("retry-after-ms", "Retry-After"):
        raw = response.headers.get(header)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        return value / 1000.0 if header == "retry-after-ms" else value
    return None
