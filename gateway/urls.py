"""Outbound URLs a client hands us (reference images, webhooks), made safe against SSRF.

A URL may only reach public addresses. The host is resolved once, every address is checked, and
the connection goes to a checked address while Host, SNI and certificate checks keep the URL's
name: a DNS answer that changes between check and connect (rebinding) cannot redirect us inside.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from gateway.errors import InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    import requests
    from urllib3.connectionpool import ConnectionPool

# requests and urllib3 are imported where a URL is fetched, not with this module: only requests
# with an image URL or a webhook need them, and a cold worker imports this module to index.

# Called as resolver(host, port) with the URL's own port, None when it names none; only the
# answers' addresses are read. socket.getaddrinfo fits, tests inject fixed answers.
Resolver = Callable[[str, int | None], Sequence[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
# Some hosts (Wikimedia, several CDNs) refuse requests that carry no User-Agent at all.
USER_AGENT = "sora-gateway"
# What local development may reach besides loopback: RFC 1918 and IPv6 unique-local ranges.
_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(network) for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
# "This network": Linux connects 0.0.0.0 to the local host, and the rest of 0/8 is never public.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BASE64_JUNK = re.compile(rb"[\t\n\f\r ]")


@dataclass(frozen=True)
class _Target:
    """Where one request goes: the URL's own name and the checked addresses to connect to."""

    host: str
    netloc: str
    addresses: tuple[str, ...]


def check_public_url(
    url: str, *, param: str, allow_local: bool, resolver: Resolver = socket.getaddrinfo
) -> None:
    """Refuse (400 `invalid_value`) a URL that is not https, or whose host is or resolves to any
    non-public address. `allow_local` (the local stack) also accepts http, loopback and private ranges.
    """
    _resolve_target(url, param=param, allow_local=allow_local, resolver=resolver)


def fetch_limited(
    url: str,
    *,
    param: str,
    allow_local: bool,
    max_bytes: int,
    timeout: float,
    max_redirects: int = 3,
    too_large_code: str = "payload_too_large",
    resolver: Resolver = socket.getaddrinfo,
) -> tuple[bytes, str | None]:
    """GET a client-supplied URL: (body, Content-Type), every redirect hop re-checked.

    `timeout` bounds the whole fetch, redirects, headers and body included: when it passes, a
    watchdog shuts the connection down, so a server trickling bytes (even into its headers)
    cannot hold a worker past it. Larger than `max_bytes` is 413 `too_large_code`, found out
    without reading more than `max_bytes` plus one chunk. Other failures are 400 `url_fetch_failed`.
    """
    deadline = time.monotonic() + timeout
    with _Watchdog(timeout) as watchdog:
        try:
            body, content_type = _fetch(
                url,
                param,
                allow_local,
                max_bytes,
                max_redirects,
                too_large_code,
                resolver,
                deadline,
                watchdog,
            )
        except InvalidRequest:
            if not watchdog.expired:
                raise
        else:
            if not watchdog.expired:
                return body, content_type
    # Time is up. Whatever the cut connection looked like to the reader (a failure, or a body
    # that simply ended), the cause is the time: before any response began, or during one.
    late = "the download took too long" if watchdog.answered else "the server did not answer in time"
    raise _fetch_failed(param, late)


def _fetch(
    url: str,
    param: str,
    allow_local: bool,
    max_bytes: int,
    max_redirects: int,
    too_large_code: str,
    resolver: Resolver,
    deadline: float,
    watchdog: _Watchdog,
) -> tuple[bytes, str | None]:
    for _hop in range(max_redirects + 1):
        with open_public(
            "GET",
            url,
            param=param,
            allow_local=allow_local,
            timeout=deadline - time.monotonic(),
            resolver=resolver,
            headers={"Accept-Encoding": "identity"},
            watchdog=watchdog,
        ) as response:
            watchdog.answered = True
            if response.status_code in REDIRECT_STATUSES:
                url = _redirect_target(url, response, param)
                continue
            if not 200 <= response.status_code < 300:
                raise _fetch_failed(param, f"the server answered HTTP {response.status_code}")
            body = _read_limited(response, param, max_bytes, too_large_code, deadline)
            return body, response.headers.get("Content-Type")
    raise _fetch_failed(param, f"more than {max_redirects} redirects")


class _Watchdog:
    """Shuts down every socket of one fetch once its time is up, waking any read blocked on it.

    Per-read timeouts cannot bound a fetch: a server sending one byte a second never lets a read
    time out. Shutting the socket down from another thread ends whatever read is waiting.
    """

    def __init__(self, seconds: float) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False
        self.answered = False  # a response's headers arrived: what is late now is the body
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # Already closed or never connected: nothing left to wake.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched_connections(connection_class: type[Any], watchdog: _Watchdog) -> type[Any]:
    """`connection_class` whose every new socket is handed to `watchdog` as soon as it exists."""

    class Watched(connection_class):  # type: ignore[misc]
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            watchdog.watch(sock)
            return sock

    return Watched


@contextmanager
def open_public(
    method: str,
    url: str,
    *,
    param: str,
    allow_local: bool,
    timeout: float,
    resolver: Resolver = socket.getaddrinfo,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    ca_bundle: str | None = None,
    watchdog: _Watchdog | None = None,
) -> Iterator[requests.Response]:
    """One request, no redirects followed, connected only to an address `check_public_url` accepts.

    The response body is left unread for the caller, and everything is closed on leaving the block.
    Environment proxies are ignored on purpose: through a proxy, the address we checked would not be
    the one reached. `ca_bundle` replaces the default trusted CAs (a private CA, or a test's).
    """
    import requests

    try:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        prepared = requests.Request(method, url, headers=all_headers, data=data).prepare()
    except (requests.RequestException, ValueError):
        raise _invalid_url(param, "is not a valid URL") from None
    target = _resolve_target(prepared.url or "", param=param, allow_local=allow_local, resolver=resolver)
    prepared.headers["Host"] = target.netloc
    deadline = time.monotonic() + timeout
    last_error: requests.RequestException | None = None
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        adapter = _pinned_adapter()(target.host, address, watchdog)
        try:
            response = adapter.send(
                prepared, stream=True, timeout=(remaining, remaining), verify=ca_bundle or True
            )
        except requests.RequestException as error:
            adapter.close()
            last_error = error
            if isinstance(error, requests.exceptions.ReadTimeout):
                break  # it connected; another address of the same host would not answer faster
            continue
        try:
            with response:
                yield response
        finally:
            adapter.close()
        return
    raise _fetch_failed(param, _describe(last_error))


def decode_data_url(
    url: str, *, param: str, max_bytes: int, too_large_code: str = "payload_too_large"
) -> tuple[bytes, str]:
    """(bytes, media type) of a `data:` URL, base64 or percent-encoded (RFC 2397)."""
    scheme, separator, rest = url.partition(":")
    header, comma, payload = rest.partition(",")
    if scheme.strip().lower() != "data" or not separator or not comma:
        raise _invalid_url(param, "is not a valid data URL")
    parameters = [part.strip() for part in header.split(";")]
    is_base64 = len(parameters) > 1 and parameters[-1].lower() == "base64"
    media_type = parameters[0].lower() or "text/plain"
    # Refuse by the encoded length first, so an oversized URL is never decoded into memory.
    smallest_possible = len(payload) * 3 // 4 if is_base64 else len(payload) // 3
    if smallest_possible > max_bytes + 2:
        raise _too_large(param, max_bytes, too_large_code)
    raw = unquote_to_bytes(payload)
    if is_base64:
        raw = _decode_base64(_BASE64_JUNK.sub(b"", raw), param)
    if len(raw) > max_bytes:
        raise _too_large(param, max_bytes, too_large_code)
    return raw, media_type


@cache
def _pinned_adapter() -> type[Any]:
    """The transport adapter class of `open_public`, built on first use (with requests)."""
    from requests.adapters import HTTPAdapter

    class _PinnedAdapter(HTTPAdapter):
        """Connects to one given address while the request keeps the URL's host name (Host, SNI, cert)."""

        def __init__(self, host: str, address: str, watchdog: _Watchdog | None = None) -> None:
            super().__init__(max_retries=0)
            self._host = host
            self._address = address
            self._watchdog = watchdog

        def get_connection_with_tls_context(
            self,
            request: requests.PreparedRequest,
            verify: bool | str | None,
            proxies: Mapping[str, str] | None = None,
            cert: tuple[str, str] | str | None = None,
        ) -> ConnectionPool:
            # `proxies` is ignored: the connection must reach the checked address itself.
            verify = True if verify is None else verify
            host_params, tls_params = self.build_connection_pool_key_attributes(request, verify, cert)
            pool_kwargs = dict[str, Any](tls_params)
            if host_params["scheme"] == "https":
                pool_kwargs.update(server_hostname=self._host, assert_hostname=self._host)
            pool: ConnectionPool = self.poolmanager.connection_from_host(
                host=self._address,
                port=host_params["port"],
                scheme=host_params["scheme"],
                pool_kwargs=pool_kwargs,
            )
            if self._watchdog is not None and not getattr(pool, "_watched", False):
                # The pool is this adapter's own (one adapter per attempt), so changing it is local.
                pool.ConnectionCls = _watched_connections(pool.ConnectionCls, self._watchdog)  # type: ignore[attr-defined]
                pool._watched = True  # type: ignore[attr-defined]
            return pool

    return _PinnedAdapter


def _resolve_target(url: str, *, param: str, allow_local: bool, resolver: Resolver) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is no number, or out of range, is a ValueError here
    except ValueError:
        raise _invalid_url(param, "is not a valid URL") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if allow_local else ("https",)
    if scheme not in allowed_schemes:
        raise _invalid_url(param, "must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise _invalid_url(param, "must not contain credentials")
    host = parts.hostname
    if not host:
        raise _invalid_url(param, "must include a host")
    addresses = _resolve(host, port, param, resolver)
    for address in addresses:
        reason = _refusal(address, allow_local)
        if reason is not None:
            raise _invalid_url(param, f"must not point to a {reason} address")
    return _Target(host, parts.netloc, tuple(str(address) for address in addresses))


def _resolve(host: str, port: int | None, param: str, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = resolver(host, port)
    except (OSError, UnicodeError):
        raise _invalid_url(param, "has a host name that does not resolve") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        # An IPv6 link-local answer carries its zone ("fe80::1%eth0"), which ipaddress parses
        # (and link-local is refused in every mode).
        address = ipaddress.ip_address(str(answer[4][0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _invalid_url(param, "has a host name that does not resolve")
    return addresses


def _refusal(address: IPAddress, allow_local: bool) -> str | None:
    """Why `address` may not be reached, or None. Embedded IPv4 forms are judged by that IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _refusal(address.ipv4_mapped, allow_local)
        for embedded in _embedded_ipv4(address):
            reason = _refusal(embedded, allow_local)
            if reason is not None:
                return reason
    if allow_local and (address.is_loopback or any(address in network for network in _LOCAL_NETWORKS)):
        return None
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified or address in _THIS_NETWORK),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-public", not address.is_global),
    )
    return next((reason for reason, refused in checks if refused), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses that transition mechanisms (6to4, Teredo, NAT64) would deliver to."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _redirect_target(url: str, response: requests.Response, param: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise _fetch_failed(param, f"the server answered HTTP {response.status_code} without a Location")
    return urljoin(url, location)


def _read_limited(
    response: requests.Response, param: str, max_bytes: int, too_large_code: str, deadline: float
) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(param, max_bytes, too_large_code)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Decoding would let a small compressed body expand past every limit we count.
        raise _fetch_failed(param, f"the server sent a {encoding}-encoded body")
    chunks: list[bytes] = []
    received = 0
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=False):
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(param, max_bytes, too_large_code)
            if time.monotonic() > deadline:
                raise _fetch_failed(param, "the download took too long")
            chunks.append(chunk)
    except (_urllib3_error(), OSError):
        raise _fetch_failed(param, "the connection failed while reading the body") from None
    return b"".join(chunks)


def _decode_base64(encoded: bytes, param: str) -> bytes:
    # Data URLs in the wild often drop the trailing '='; RFC 4648 decoders would refuse them.
    if len(encoded) % 4 == 1:
        raise _invalid_url(param, "has malformed base64 data")
    padded = encoded + b"=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        raise _invalid_url(param, "has malformed base64 data") from None


def _urllib3_error() -> type[Exception]:
    import urllib3

    return urllib3.exceptions.HTTPError


def _describe(error: requests.RequestException | None) -> str:
    import requests

    if error is None or isinstance(error, requests.exceptions.Timeout):
        return "the server did not answer in time"
    if isinstance(error, requests.exceptions.SSLError):
        return "the server's TLS certificate could not be verified"
    return "could not connect to the server"


def _invalid_url(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {problem}.", code="invalid_value", param=param)


def _fetch_failed(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Could not fetch '{param}': {problem}.", code="invalid_value", param=param)


def _too_large(param: str, max_bytes: int, code: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"'{param}' is larger than {max_bytes} bytes.", code=code, param=param)
