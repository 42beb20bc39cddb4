"""A small HTTP client for the gateway: keys go in headers only, errors become ApiError."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

TIMEOUT = 60.0
CHUNK = 1 << 16


class ApiError(Exception):
    """An answer the caller should see as `error: <message> (<code>)`."""

    def __init__(self, message: str, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def error_from(response: requests.Response) -> ApiError:
    """The API's own error (OpenAI shape), or a plain one naming the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or f"HTTP {response.status_code}")
        code = str(error.get("code") or error.get("type") or f"http_{response.status_code}")
        return ApiError(message, code, response.status_code)
    reason = response.reason or "error"
    return ApiError(
        f"HTTP {response.status_code} {reason}", f"http_{response.status_code}", response.status_code
    )


class Client:
    """One gateway at `base_url` (ending in /api), with an app key and/or an admin key."""

    def __init__(self, base_url: str, key: str | None = None, admin_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.admin_key = admin_key
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies from the environment see the keys

    def _url(self, path: str) -> str:
        return f"{self.base_url}/v1/{path.lstrip('/')}"

    def _app_headers(self) -> dict[str, str]:
        if not self.key:
            raise ApiError("no app key: pass --key or set VGW_API_KEY", "missing_api_key")
        return {"Authorization": f"Bearer {self.key}"}

    def _admin_headers(self) -> dict[str, str]:
        if not self.admin_key:
            raise ApiError("no admin key: pass --admin-key or set VGW_ADMIN_KEY", "missing_admin_key")
        return {"x-admin-key": self.admin_key}

    def _send(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(
                f"cannot reach the gateway at {self.base_url}: {type(exc).__name__}", "connection_error"
            ) from None

    def request(
        self, method: str, path: str, *, admin: bool = False, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> requests.Response:
        headers = self._admin_headers() if admin else self._app_headers()
        response = self._send(method, self._url(path), headers, allow_redirects=False, **kwargs)
        if response.status_code not in ok:
            raise error_from(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise ApiError(
                f"the gateway answered HTTP {response.status_code} without JSON", "invalid_response"
            ) from None
        if not isinstance(body, dict):
            raise ApiError("the gateway answered JSON that is not an object", "invalid_response")
        return body

    def download(self, video_id: str, destination: Path, variant: str | None = None) -> int:
        """Fetch a finished video's file to `destination`; the 302's SAS URL gets no key."""
        params = {"variant": variant} if variant else None
        response = self.request(
            "GET", f"videos/{video_id}/content", ok=(200, 301, 302, 303, 307, 308), params=params
        )
        if response.is_redirect:
            location = urljoin(response.url, response.headers.get("Location", ""))
            try:
                response = self.session.get(location, timeout=TIMEOUT, stream=True)
            except requests.RequestException as exc:
                raise ApiError(f"cannot download the file: {type(exc).__name__}", "download_failed") from None
            if response.status_code != 200:
                raise ApiError(
                    f"the file's storage answered HTTP {response.status_code}",
                    "download_failed",
                    response.status_code,
                )
        written = 0
        partial = destination.with_name(destination.name + ".part")
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise ApiError(f"the download was cut off: {type(exc).__name__}", "download_failed") from None
        partial.replace(destination)
        return written
