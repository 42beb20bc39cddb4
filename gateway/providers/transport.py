"""HTTP facts every adapter needs the same way: reading Retry-After, streaming an asset in chunks,
telling a request that never left from one whose answer was lost, and downloading a provider's
CDN link without any credential.

Adapters differ in their wire protocols, not in these; keeping them here means a fix (say, a new
way a stream breaks off) reaches every provider at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import NewConnectionError

from gateway.errors import UpstreamAmbiguousError, UpstreamRejectedError, UpstreamTransientError
from gateway.providers.port import PlainAsset

TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})  # 429 has its own class
CHUNK_BYTES = 1024 * 1024


def pooled_session() -> requests.Session:
    """One connection pool per adapter, big enough for the activities that share it from
    several threads at once (requests' default keeps 10 connections per host)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def retry_after(response: requests.Response) -> float | None:
    """Seconds to wait, from `retry-after-ms` (Azure) or `Retry-After`; None when absent or bad."""
    for header, scale in (("retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        raw = response.headers.get(header)
        if raw is None:
            continue
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def read_answer[T](
    response: requests.Response, parse: Callable[[Any], T], what: str, *, creating: bool = False
) -> T:
    """`parse(body)` of a 2xx answer, closing the response. A body that cannot be read or parsed is
    transient for a read (ask again), but ambiguous for a create: the job may exist and its id is
    lost, so asking again could make a second one."""
    try:
        return parse(response.json())
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        failure = UpstreamAmbiguousError if creating else UpstreamTransientError
        raise failure(
            f"{what}: unreadable answer ({type(error).__name__})", status=response.status_code
        ) from error
    finally:
        response.close()


def chunks(response: requests.Response, what: str) -> Iterator[bytes]:
    """The body in chunks. iter_content undoes any transfer compression, so the chunks are the
    asset's own bytes; a stream that breaks off or ends short of its Content-Length is a
    transient failure, in the port's terms."""
    try:
        yield from response.iter_content(CHUNK_BYTES)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        raise UpstreamTransientError(f"{what}: {type(error).__name__}") from error


def never_sent(error: BaseException) -> bool:
    """True when the connection was never made (refused, unresolvable, connect timeout), so the
    request cannot have reached the provider; anything else after sending may have."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError):
            return True
        pending.extend(current.args)
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
    return False


class _NoCredentials(AuthBase):
    """No Authorization header, whatever the session or a .netrc would add."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


def _keyless_get(
    session: requests.Session, url: str, timeout: tuple[float, float], what: str, **headers: str
) -> requests.Response:
    """GET a CDN link with no credential (see keyless_download), the body left unread."""
    try:
        return session.get(url, stream=True, timeout=timeout, auth=_NoCredentials(), headers=headers)
    except requests.RequestException as error:
        raise UpstreamTransientError(f"{what}: {type(error).__name__}") from error


def _refuse_error_answer(response: requests.Response, what: str, unavailable_code: str) -> None:
    """429 and 5xx are transient; another error answer is the link's permanent refusal."""
    status = response.status_code
    if status == 429 or status in TRANSIENT_STATUSES or status >= 500:
        raise UpstreamTransientError(f"{what}: {status}", status=status, retry_after=retry_after(response))
    if status >= 400:
        raise UpstreamRejectedError(
            f"The {what} is not available ({status}).", code=unavailable_code, status=status
        )


@contextmanager
def keyless_download(
    session: requests.Session,
    url: str,
    timeout: tuple[float, float],
    *,
    what: str,
    unavailable_code: str,
) -> Iterator[Iterator[bytes]]:
    """Stream a provider's CDN link in chunks. The link works without a key and the key must never
    travel to it: adapters send their key per request, never on the session, and this strips any
    Authorization header besides. 429 and 5xx are transient; another error answer is permanent."""
    response = _keyless_get(session, url, timeout, what)
    try:
        _refuse_error_answer(response, what, unavailable_code)
        yield chunks(response, what)
    finally:
        response.close()


def keyless_asset(
    session: requests.Session,
    url: str,
    timeout: tuple[float, float],
    *,
    what: str,
    unavailable_code: str,
) -> PlainAsset | None:
    """A CDN link as a PlainAsset, for storage to copy by itself: its size from a one-byte ranged
    GET, whose body is never read (a HEAD would do, but signed CDN links are often valid for GET
    only). A server that ignores the range answers 200 with the whole length, and the connection
    is dropped unread. None when the size cannot be learnt (the caller streams instead); error
    answers as for keyless_download."""
    response = _keyless_get(session, url, timeout, what, Range="bytes=0-0")
    try:
        _refuse_error_answer(response, what, unavailable_code)
        size = _total_size(response)
    finally:
        response.close()
    # After any redirect: storage is given the link that answered.
    return None if size is None else PlainAsset(response.url or url, size)


def _total_size(response: requests.Response) -> int | None:
    """The whole body's length: after the slash of `Content-Range: bytes 0-0/TOTAL` (206), or the
    Content-Length of a 200 that ignored the range; None when neither says (`*`, or absent)."""
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
    elif response.status_code == 200:
        total = response.headers.get("Content-Length", "")
    else:
        return None
    return int(total) if total.isdigit() else None
