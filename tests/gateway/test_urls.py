"""SSRF-safe outbound URLs: the address policy, pinned connections, limits, redirects, data URLs.

Everything runs against real HTTP(S) servers on loopback. Host names are answered by injected
resolvers (no DNS here), and the suite-wide `loopback_only` guard fails any test in which a
connection beyond loopback was even attempted.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import requests.adapters
import urllib3.util.connection

import gateway.urls
from gateway.errors import ApiError, InvalidRequest, PayloadTooLarge
from gateway.urls import (
    _read_limited,
    _Watchdog,
    check_public_url,
    decode_data_url,
    fetch_limited,
    open_public,
)
from tests.gateway.urls_server import LocalServer, large_body, wait_until
from tests.gateway.urls_tls import TestCA

PARAM = "input_reference"
TOO_LONG = f"Could not fetch '{PARAM}': the download took too long."
NO_ANSWER = f"Could not fetch '{PARAM}': the server did not answer in time."
UNVERIFIED = "the server's TLS certificate could not be verified"
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def resolver_for(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """A resolver shaped like socket.getaddrinfo that knows only `answers`."""

    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in answers[host]
        ]

    return resolve


# API.md's 400 codes are few (`invalid_value` with `param` for a bad field); which refusal it
# was shows in the message: a fetch that failed says so, a URL refused up front does not.
KINDS = {"invalid_url": "refused", "url_fetch_failed": "fetch failed"}


def assert_error(error: pytest.ExceptionInfo[ApiError], status: int, code: str, param: str = PARAM) -> None:
    kind = KINDS.get(code)
    expected_code = "invalid_value" if kind else code
    assert (error.value.status, error.value.code, error.value.param) == (status, expected_code, param)
    if kind is not None:
        assert error.value.message.startswith("Could not fetch") == (kind == "fetch failed"), (
            error.value.message
        )


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = LocalServer().start()
    yield running
    running.stop()


def fetch(url: str, **options: Any) -> tuple[bytes, str | None]:
    options.setdefault("allow_local", True)
    options.setdefault("max_bytes", 1024 * 1024)
    options.setdefault("timeout", 5.0)
    return fetch_limited(url, param=PARAM, **options)


# --- check_public_url: the address policy -----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example/cat.png",
        "ftp://images.example/cat.png",
        "file:///etc/passwd",
        "gopher://images.example/",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "//images.example/cat.png",
        "images.example/cat.png",
        "https:///cat.png",
        "https://user:secret@images.example/cat.png",
        "https://user@images.example/cat.png",
        "https://images.example:99999/cat.png",
        "https://images.example:port/cat.png",
    ],
)
def test_refuses_anything_but_a_plain_https_url(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(url, param="webhook_url", allow_local=False, resolver=resolver_for({}))
    assert_error(refused, 400, "invalid_url", "webhook_url")


def test_accepts_https_urls_resolving_to_public_addresses() -> None:
    resolver = resolver_for({"images.example": [PUBLIC_V4, PUBLIC_V6]})
    check_public_url("https://images.example/cat.png", param=PARAM, allow_local=False, resolver=resolver)
    check_public_url("HTTPS://IMAGES.EXAMPLE:8443/a?b=c", param=PARAM, allow_local=False, resolver=resolver)
    check_public_url(f"https://{PUBLIC_V4}/", param=PARAM, allow_local=False, resolver=resolver)
    check_public_url(f"https://[{PUBLIC_V6}]/", param=PARAM, allow_local=False, resolver=resolver)


NEVER_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",  # unique local
    "fe80::1",
    "fec0::1",  # deprecated site-local
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "2001:db8::1",
]


def literal_url(address: str) -> str:
    return f"https://[{address}]/x" if ":" in address else f"https://{address}/x"


@pytest.mark.parametrize("address", NEVER_PUBLIC)
def test_refuses_non_public_addresses_given_literally(address: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(literal_url(address), param=PARAM, allow_local=False, resolver=resolver_for({}))
    assert_error(refused, 400, "invalid_url")


@pytest.mark.parametrize("address", NEVER_PUBLIC)
def test_refuses_host_names_resolving_to_non_public_addresses(address: str) -> None:
    resolver = resolver_for({"images.example": [address]})
    with pytest.raises(InvalidRequest) as refused:
        check_public_url("https://images.example/x", param=PARAM, allow_local=False, resolver=resolver)
    assert_error(refused, 400, "invalid_url")


def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    resolver = resolver_for({"images.example": [PUBLIC_V4, PUBLIC_V6, "10.0.0.7"]})
    with pytest.raises(InvalidRequest, match="private"):
        check_public_url("https://images.example/x", param=PARAM, allow_local=False, resolver=resolver)


def test_a_name_that_does_not_resolve_is_a_client_error() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(
            "https://nowhere.example/x", param=PARAM, allow_local=False, resolver=resolver_for({})
        )
    assert_error(refused, 400, "invalid_url")
    with pytest.raises(InvalidRequest):
        check_public_url(
            "https://empty.example/x",
            param=PARAM,
            allow_local=False,
            resolver=resolver_for({"empty.example": []}),
        )


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1", "017700000001"])
def test_loopback_in_disguise_through_the_system_resolver_is_refused(host: str) -> None:
    """The default resolver: `localhost` comes from the hosts file and the numeric spellings of
    127.0.0.1 are parsed locally (inet_aton), so no DNS traffic leaves the machine."""
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(f"https://{host}/x", param=PARAM, allow_local=False)
    assert_error(refused, 400, "invalid_url")


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.1.2.3", "172.20.0.4", "192.168.0.10", "fd00::5", "::ffff:127.0.0.1"]
)
def test_local_development_may_use_http_loopback_and_private_addresses(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    check_public_url(f"http://{host}:7071/x", param=PARAM, allow_local=True, resolver=resolver_for({}))
    resolver = resolver_for({"devbox.local": [address]})
    check_public_url("http://devbox.local/x", param=PARAM, allow_local=True, resolver=resolver)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1"]
)
def test_local_development_still_refuses_metadata_link_local_and_unroutable(address: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(literal_url(address), param=PARAM, allow_local=True, resolver=resolver_for({}))
    assert_error(refused, 400, "invalid_url")


def test_local_development_still_refuses_other_schemes_and_credentials() -> None:
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http://a:b@127.0.0.1/x"):
        with pytest.raises(InvalidRequest):
            check_public_url(url, param=PARAM, allow_local=True, resolver=resolver_for({}))


# --- fetch_limited: pinned connections ------------------------------------------------------------


def test_fetches_body_and_content_type(server: LocalServer) -> None:
    body, content_type = fetch(server.url("/image"))
    assert body == b"\x89PNG\r\n\x1a\nnot really"
    assert content_type == "image/png"


def test_asks_for_an_unencoded_body_and_says_who_asks(server: LocalServer) -> None:
    headers, _ = fetch(server.url("/echo-headers"))
    assert b"User-Agent: sora-gateway" in headers
    assert b"Accept-Encoding: identity" in headers
    # Nothing else is sent: no cookies, no credentials, no stray header an upstream could read.
    names = sorted(line.split(b":", 1)[0] for line in headers.splitlines())
    assert names == [b"Accept-Encoding", b"Host", b"User-Agent"]


def test_connects_to_the_checked_address_and_keeps_the_host_name(server: LocalServer) -> None:
    """`images.test` exists only in the injected resolver: reaching the server proves the connection
    went to the address that was checked, and the server still sees the URL's own Host."""
    resolver = resolver_for({"images.test": ["127.0.0.1"]})
    body, _ = fetch(server.url("/echo-host", host="images.test"), resolver=resolver)
    assert body == f"images.test:{server.port}".encode()


def test_a_changing_dns_answer_is_never_consulted_twice(server: LocalServer) -> None:
    """DNS rebinding: the first answer is checked and used; a later, hostile answer is never asked
    for, so nothing can connect to it (the loopback guard would also catch an attempt)."""
    calls: list[str] = []
    answers = iter([["127.0.0.1"]] + [["169.254.169.254"]] * 5)

    def rebinding(host: str, port: int) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in next(answers)]

    body, _ = fetch(server.url("/image", host="rebind.test"), resolver=rebinding)
    assert body.startswith(b"\x89PNG")
    assert calls == ["rebind.test"]


def test_falls_back_to_the_next_checked_address_when_one_refuses(server: LocalServer) -> None:
    # Nothing listens on 127.0.0.2 at this port (the server is bound to 127.0.0.1 only).
    resolver = resolver_for({"twice.test": ["127.0.0.2", "127.0.0.1"]})
    body, _ = fetch(server.url("/echo-host", host="twice.test"), resolver=resolver)
    assert body == f"twice.test:{server.port}".encode()


def test_ipv6_loopback_with_local_development() -> None:
    try:
        running = LocalServer(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert fetch(running.url("/image", host="::1"))[0].startswith(b"\x89PNG")
        resolver = resolver_for({"six.test": ["::1"]})
        body, _ = fetch(running.url("/echo-host", host="six.test"), resolver=resolver)
        assert body == f"six.test:{running.port}".encode()
    finally:
        running.stop()


def test_public_mode_refuses_before_connecting(server: LocalServer) -> None:
    """With allow_local off, loopback (the only reachable address here) is refused up front,
    whether given literally, as a name, or over http."""
    for url, answers in [
        (server.url("/image"), {}),
        (server.url("/image", host="sneaky.test").replace("http:", "https:"), {"sneaky.test": ["127.0.0.1"]}),
        (f"https://[::ffff:127.0.0.1]:{server.port}/image", {}),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            fetch(url, allow_local=False, resolver=resolver_for(answers))
        assert_error(refused, 400, "invalid_url")


class TestHttps:
    @pytest.fixture
    def ca(self, tmp_path: Path) -> TestCA:
        return TestCA.create(tmp_path)

    def test_pinned_https_sends_sni_and_verifies_the_certificate_for_the_name(
        self, ca: TestCA, tmp_path: Path
    ) -> None:
        """The connection goes to 127.0.0.1, yet TLS must behave as for `images.test`: the server
        sees that name in SNI, and the certificate (valid for that name only) is accepted."""
        running = LocalServer(tls=ca.server_context(tmp_path, "images.test")).start()
        try:
            resolver = resolver_for({"images.test": ["127.0.0.1"]})
            with open_public(
                "GET",
                running.url("/echo-host", host="images.test"),
                param=PARAM,
                allow_local=True,
                timeout=5,
                resolver=resolver,
                ca_bundle=str(ca.bundle),
            ) as response:
                assert response.status_code == 200
                assert response.content == f"images.test:{running.port}".encode()
            assert running.sni_names == ["images.test"]
        finally:
            running.stop()

    def test_a_certificate_for_another_name_is_refused(self, ca: TestCA, tmp_path: Path) -> None:
        running = LocalServer(tls=ca.server_context(tmp_path, "other.test")).start()
        try:
            resolver = resolver_for({"images.test": ["127.0.0.1"]})
            with (
                pytest.raises(InvalidRequest, match="certificate") as refused,
                open_public(
                    "GET",
                    running.url("/image", host="images.test"),
                    param=PARAM,
                    allow_local=True,
                    timeout=5,
                    resolver=resolver,
                    ca_bundle=str(ca.bundle),
                ),
            ):
                pass
            assert_error(refused, 400, "url_fetch_failed")
            assert refused.value.message == f"Could not fetch '{PARAM}': {UNVERIFIED}."
        finally:
            running.stop()

    def test_an_untrusted_certificate_is_refused_by_default(self, ca: TestCA, tmp_path: Path) -> None:
        running = LocalServer(tls=ca.server_context(tmp_path, "images.test")).start()
        try:
            resolver = resolver_for({"images.test": ["127.0.0.1"]})
            with pytest.raises(InvalidRequest, match="certificate") as refused:
                fetch(running.url("/image", host="images.test"), resolver=resolver)
            assert_error(refused, 400, "url_fetch_failed")
            assert refused.value.message == f"Could not fetch '{PARAM}': {UNVERIFIED}."
        finally:
            running.stop()


# --- fetch_limited: redirects -----------------------------------------------------------------------


def test_follows_up_to_max_redirects(server: LocalServer) -> None:
    assert fetch(server.url("/redirect/3"))[0] == b"arrived"
    assert fetch(server.url("/redirect/1"), max_redirects=1)[0] == b"arrived"


def test_refuses_one_redirect_more_than_allowed(server: LocalServer) -> None:
    with pytest.raises(InvalidRequest, match="more than 3 redirects") as refused:
        fetch(server.url("/redirect/4"))
    assert_error(refused, 400, "url_fetch_failed")
    with pytest.raises(InvalidRequest, match="more than 0 redirects"):
        fetch(server.url("/redirect/1"), max_redirects=0)


def test_every_hop_is_resolved_checked_and_pinned_again(server: LocalServer) -> None:
    calls: list[str] = []
    resolver = resolver_for({"hops.test": ["127.0.0.1"]}, calls)
    body, _ = fetch(server.url("/redirect/3?absolute=1", host="hops.test"), resolver=resolver)
    assert body == b"arrived"
    assert calls == ["hops.test"] * 4


@pytest.mark.parametrize(
    ("location", "answers"),
    [
        ("http://169.254.169.254/latest/meta-data/", {}),
        ("http://metadata.test/computeMetadata/v1/", {"metadata.test": ["169.254.169.254"]}),
        ("http://[fe80::1]/", {}),
        ("http://0.0.0.0/", {}),
        ("http://[::ffff:169.254.169.254]/", {}),
        ("file:///etc/passwd", {}),
        ("ftp://127.0.0.1/", {}),
        ("gopher://127.0.0.1:6379/_INFO", {}),
        ("http://user:pw@127.0.0.1/", {}),
        ("data:text/plain,hello", {}),
    ],
)
def test_a_redirect_to_a_forbidden_target_is_refused_without_connecting(
    server: LocalServer, location: str, answers: dict[str, list[str]]
) -> None:
    """An honest limit of this machine: only loopback is reachable, and loopback is exactly what
    allow_local=False refuses, so no first hop can succeed in public mode. These redirects therefore
    run with allow_local=True and point at targets refused even then (metadata, link-local, other
    schemes, credentials). Each hop goes through the same `check_public_url` policy whose public
    mode is covered address by address above; the loopback guard proves nothing was contacted."""
    with pytest.raises(InvalidRequest) as refused:
        fetch(server.url(f"/to?location={quote(location, safe='')}"), resolver=resolver_for(answers))
    assert_error(refused, 400, "invalid_url")


@dataclass
class PublicHost:
    """`images.example`, a public host as far as the gateway can tell, redirecting to `inside`.

    Only loopback is reachable here, and public mode refuses loopback on every hop, so no first
    hop could ever be fetched honestly in public mode. Two things are injected below the gateway's
    code, and only there: the resolver answers `images.example` with a public address
    (PUBLIC_V4), and urllib3's connect translates that one address to 127.0.0.1 (a NAT in front
    of the `public` server: nothing leaves loopback, and the guard would fail the test if it did),
    trusting the test CA as the machine's own trust store. The gateway resolves, checks, pins and
    verifies TLS for every hop unchanged; `connected` is every address it connected to.
    """

    public: LocalServer  # TLS for images.example
    inside: LocalServer  # TLS for intranet.test, on loopback: what a redirect must never reach
    connected: list[str]

    def url_redirecting_to(self, location: str) -> str:
        return self.public.url(f"/to?location={quote(location, safe='')}", host="images.example")

    def fetch_public(self, url: str, answers: dict[str, list[str]] | None = None) -> tuple[bytes, str | None]:
        resolver = resolver_for({"images.example": [PUBLIC_V4], **(answers or {})})
        return fetch(url, allow_local=False, resolver=resolver)


@pytest.fixture
def public_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PublicHost]:
    ca = TestCA.create(tmp_path)
    public = LocalServer(tls=ca.server_context(tmp_path, "images.example")).start()
    inside = LocalServer(tls=ca.server_context(tmp_path, "intranet.test")).start()
    connected: list[str] = []
    real_connect = urllib3.util.connection.create_connection

    def nat(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = address
        connected.append(host)
        return real_connect(("127.0.0.1" if host == PUBLIC_V4 else host, port), *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", nat)
    # requests' verify=True reads this path at every request: the test CA stands in for the system's.
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(ca.bundle))
    yield PublicHost(public, inside, connected)
    public.stop()
    inside.stop()


def test_the_public_host_seam_lets_a_public_to_public_redirect_through(public_host: PublicHost) -> None:
    """The control for the test below: with the injections, public mode fetches through a redirect
    that stays on the public host, so a refusal there is the policy's doing, not the setup's."""
    location = public_host.public.url("/image", host="images.example")
    body, _ = public_host.fetch_public(public_host.url_redirecting_to(location))
    assert body.startswith(b"\x89PNG")
    assert public_host.connected == [PUBLIC_V4, PUBLIC_V4]
    assert public_host.public.sni_names == ["images.example", "images.example"]


@pytest.mark.parametrize(
    ("location", "answers"),
    [
        # A name that resolves to loopback, served with a valid certificate for it: let through,
        # this hop would fetch the inside server's image.
        ("https://intranet.test:{port}/image", {"intranet.test": ["127.0.0.1"]}),
        ("https://127.0.0.1:{port}/image", {}),
        ("https://[::ffff:127.0.0.1]:{port}/image", {}),
    ],
)
def test_public_mode_refuses_a_redirect_from_a_public_host_to_loopback(
    public_host: PublicHost, location: str, answers: dict[str, list[str]]
) -> None:
    """SSRF through a redirect: the first hop is public and allowed, the second points inside.
    Public mode (ALLOW_LOCAL_URLS=false) must check the second hop as strictly as the first."""
    url = public_host.url_redirecting_to(location.format(port=public_host.inside.port))
    with pytest.raises(InvalidRequest, match="loopback") as refused:
        public_host.fetch_public(url, answers)
    assert_error(refused, 400, "invalid_url")
    # The first hop was fetched (the redirect was read), the second never connected.
    assert len(public_host.public.paths) == 1
    assert public_host.public.paths[0].startswith("/to?location=")
    assert public_host.connected == [PUBLIC_V4]
    assert public_host.inside.paths == []


def test_a_redirect_without_location_fails(server: LocalServer) -> None:
    with pytest.raises(InvalidRequest, match="without a Location") as refused:
        fetch(server.url("/to"))
    assert_error(refused, 400, "url_fetch_failed")


# --- fetch_limited: failures and limits -------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403, 500, 503, 304, 300])
def test_non_2xx_names_the_status_and_never_the_body(server: LocalServer, status: int) -> None:
    with pytest.raises(InvalidRequest) as failed:
        fetch(server.url(f"/status/{status}"))
    assert_error(failed, 400, "url_fetch_failed")
    assert f"HTTP {status}" in failed.value.message
    assert "secret" not in failed.value.message


def test_a_declared_oversized_body_is_refused_before_reading(server: LocalServer) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        fetch(server.url("/declared-huge"), max_bytes=1000, too_large_code="image_too_large")
    assert_error(refused, 413, "image_too_large")
    assert refused.value.message == f"'{PARAM}' is larger than 1000 bytes."
    # The declaration alone is refused: the 64 KiB the server does send would fit this cap (and
    # the rest it promises never comes, so reading on could only end in a timeout).
    with pytest.raises(PayloadTooLarge) as declared:
        fetch(server.url("/declared-huge"), max_bytes=100_000, timeout=0.5)
    assert declared.value.message == f"'{PARAM}' is larger than 100000 bytes."
    assert_error(declared, 413, "payload_too_large")  # the code when the caller names none


def test_an_endless_body_is_cut_off_just_past_the_cap(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as refused:
        fetch(server.url("/endless"), max_bytes=2 * 1024 * 1024, too_large_code="image_too_large")
    assert time.monotonic() - started < 2
    assert_error(refused, 413, "image_too_large")
    assert refused.value.message == f"'{PARAM}' is larger than 2097152 bytes."
    # We hung up: the server's endless write loop ends with a broken connection.
    assert server.endless_finished.wait(5)


def test_a_body_exactly_at_the_cap_is_accepted(server: LocalServer) -> None:
    body, _ = fetch(server.url("/image"), max_bytes=len(b"\x89PNG\r\n\x1a\nnot really"))
    assert body.endswith(b"not really")


def test_a_server_that_does_not_answer_times_out(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match="in time") as failed:
        fetch(server.url("/sleep/10"), timeout=0.5)
    assert time.monotonic() - started < 2
    assert_error(failed, 400, "url_fetch_failed")


def test_the_timeout_bounds_the_whole_download_not_each_read(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match="too long") as failed:
        fetch(server.url("/trickle"), timeout=1.0)
    assert 0.9 < time.monotonic() - started < 3
    assert_error(failed, 400, "url_fetch_failed")
    # The cut connection broke a body of announced length: the cause named is still the time.
    assert failed.value.message == TOO_LONG


def test_the_timeout_bounds_headers_that_never_end(server: LocalServer) -> None:
    # Each header byte arrives well within the read timeout: only the whole-fetch deadline
    # (the watchdog shutting the socket down) can end this fetch.
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match=r"in time|too long") as failed:
        fetch(server.url("/trickle-headers"), timeout=1.0)
    assert 0.9 < time.monotonic() - started < 3
    assert_error(failed, 400, "url_fetch_failed")


def test_a_status_line_that_never_ends_is_no_answer_in_time(server: LocalServer) -> None:
    """Cut by the watchdog before a status line was complete, the connection fails as a broken
    response would; what the app is told is that the server did not answer in time."""
    started = time.monotonic()
    with pytest.raises(InvalidRequest) as failed:
        fetch(server.url("/trickle-status"), timeout=0.3)
    assert time.monotonic() - started < 2
    assert failed.value.message == NO_ANSWER


def test_connection_refused_and_truncated_bodies_fail_cleanly(server: LocalServer) -> None:
    closed = LocalServer()
    closed_url = closed.url("/image")
    closed.stop()  # bound, never served, now closed: the port refuses connections
    with pytest.raises(InvalidRequest, match="could not connect") as refused:
        fetch(closed_url)
    assert_error(refused, 400, "url_fetch_failed")
    assert refused.value.message == f"Could not fetch '{PARAM}': could not connect to the server."
    with pytest.raises(InvalidRequest, match="while reading") as truncated:
        fetch(server.url("/truncated"))
    assert_error(truncated, 400, "url_fetch_failed")
    assert truncated.value.message == (
        f"Could not fetch '{PARAM}': the connection failed while reading the body."
    )


def test_a_compressed_body_is_refused_rather_than_expanded(server: LocalServer) -> None:
    with pytest.raises(InvalidRequest, match="gzip-encoded") as refused:
        fetch(server.url("/gzip"))
    assert_error(refused, 400, "url_fetch_failed")


# --- decode_data_url --------------------------------------------------------------------------------

PIXEL = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR+/="


def data(url: str, max_bytes: int = 1000, **options: Any) -> tuple[bytes, str]:
    return decode_data_url(url, param=PARAM, max_bytes=max_bytes, **options)


def test_base64_data_urls() -> None:
    encoded = base64.b64encode(PIXEL).decode()
    assert data(f"data:image/png;base64,{encoded}") == (PIXEL, "image/png")
    assert data(f"DATA:Image/PNG;charset=x;BASE64,{encoded}") == (PIXEL, "image/png")
    assert data(f"data:image/png;base64,{encoded.rstrip('=')}")[0] == PIXEL  # padding dropped
    wrapped = "\n".join(encoded[i : i + 8] for i in range(0, len(encoded), 8))
    assert data(f"data:image/png;base64,{wrapped}")[0] == PIXEL
    assert data(f"data:image/png;base64,{quote(encoded, safe='')}")[0] == PIXEL  # '+' '/' '=' escaped


def test_percent_encoded_data_urls() -> None:
    assert data("data:,hello%20world") == (b"hello world", "text/plain")
    assert data(f"data:application/octet-stream,{quote(PIXEL)}") == (PIXEL, "application/octet-stream")


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64",
        "data:image/png;base64,@@@@",
        "data:image/png;base64,QUJD!",
        "data:image/png;base64,QUJDR",  # one char past a whole group can never be base64
        "image/png;base64,QUJD",
        "https://images.example/x.png",
        "datax:,abc",
    ],
)
def test_malformed_data_urls(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        data(url)
    assert_error(refused, 400, "invalid_url")


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: "data:image/png;base64," + base64.b64encode(raw).decode(),
        lambda raw: "data:image/png," + quote(raw),
    ],
    ids=["base64", "percent"],
)
def test_data_urls_over_the_cap(encode: Callable[[bytes], str]) -> None:
    assert len(data(encode(b"\xab" * 1000))[0]) == 1000
    with pytest.raises(PayloadTooLarge) as refused:
        data(encode(b"\xab" * 1001), too_large_code="image_too_large")
    assert_error(refused, 413, "image_too_large")
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as early:
        data(encode(b"\xab" * 3_000_000), max_bytes=1024 * 1024, too_large_code="image_too_large")
    assert time.monotonic() - started < 2
    assert_error(early, 413, "image_too_large")
    assert early.value.message == f"'{PARAM}' is larger than 1048576 bytes."


def test_a_nat64_address_is_judged_by_the_ipv4_address_in_its_last_32_bits() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(
            "https://[64:ff9b::a00:1]/", param=PARAM, allow_local=False, resolver=resolver_for({})
        )
    assert refused.value.message == "'input_reference' must not point to a private address."  # 10.0.0.1


def test_data_url_refusals_say_what_is_wrong() -> None:
    cases = {
        "datax:,abc": "'input_reference' is not a valid data URL.",
        "data:;base64,QUJDR": "'input_reference' has malformed base64 data.",
        "data:;base64,QUJD!": "'input_reference' has malformed base64 data.",
        "data:;base64,QUJ!": "'input_reference' has malformed base64 data.",  # a whole group, not base64
        "data:;base64,QU=J": "'input_reference' has malformed base64 data.",
    }
    for url, message in cases.items():
        with pytest.raises(InvalidRequest) as refused:
            data(url)
        assert refused.value.message == message


def test_data_urls_split_at_the_first_colon_and_comma_and_base64_must_follow_a_media_type() -> None:
    assert data("data:,x:y,z") == (b"x:y,z", "text/plain")
    assert data("data:base64,QUJD") == (b"QUJD", "base64")  # a media type named base64, not an encoding
    assert data("data:;base64,QUJD") == (b"ABC", "text/plain")  # one whole group
    assert data("data:;base64,QUI") == (b"AB", "text/plain")  # one '=' dropped
    assert data("data:;base64,QQ") == (b"A", "text/plain")  # two dropped


@pytest.mark.parametrize("length", [17, 18, 20])
def test_an_oversized_base64_data_url_is_refused_by_its_length_before_decoding(length: int) -> None:
    # With max_bytes 10, more than 12 bytes' worth of base64 (13 * 4 / 3 chars) is refused unread:
    # the payload is not even base64. Up to 12 bytes' worth is decoded (and found malformed).
    url = "data:;base64," + "!" * length
    if length * 3 // 4 > 12:
        with pytest.raises(PayloadTooLarge) as too_large:
            data(url, max_bytes=10)
        assert too_large.value.message == "'input_reference' is larger than 10 bytes."
        assert_error(too_large, 413, "payload_too_large")
    else:
        with pytest.raises(InvalidRequest) as malformed:
            data(url, max_bytes=10)
        assert malformed.value.message == "'input_reference' has malformed base64 data."


def test_a_data_url_over_the_cap_after_decoding_names_the_cap() -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        data("data:;base64," + base64.b64encode(b"x" * 11).decode(), max_bytes=10)
    assert refused.value.message == "'input_reference' is larger than 10 bytes."
    assert_error(refused, 413, "payload_too_large")


# --- what a refusal tells the app --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_local", "problem"),
    [
        ("https://images.example:99999/cat.png", False, "is not a valid URL"),
        ("https://images.example:port/cat.png", False, "is not a valid URL"),
        ("http://images.example/cat.png", False, "must be an https URL"),
        ("ftp://127.0.0.1/x", True, "must be an https URL"),
        ("https://user@images.example/cat.png", False, "must not contain credentials"),
        ("https://user:secret@images.example/cat.png", False, "must not contain credentials"),
        ("https:///cat.png", False, "must include a host"),
        ("https://nowhere.example/x", False, "has a host name that does not resolve"),
        ("https://empty.example/x", False, "has a host name that does not resolve"),
    ],
)
def test_a_refused_url_says_what_is_wrong_with_it(url: str, allow_local: bool, problem: str) -> None:
    """images.example resolves to a public address: each of these URLs is refused for what the
    message says, not for anything found later."""
    resolver = resolver_for({"images.example": [PUBLIC_V4], "empty.example": []})
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(url, param="webhook_url", allow_local=allow_local, resolver=resolver)
    assert_error(refused, 400, "invalid_url", "webhook_url")
    assert refused.value.message == f"'webhook_url' {problem}."


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),  # the rest of "this network", 0/8
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("fec0::1", "site-local"),
        ("4000::1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT: not private, not global either
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4: judged by its IPv4, 169.254.169.254
    ],
)
def test_a_refused_address_is_named_by_its_kind(address: str, kind: str) -> None:
    message = f"'{PARAM}' must not point to a {kind} address."
    with pytest.raises(InvalidRequest) as literal:
        check_public_url(literal_url(address), param=PARAM, allow_local=False, resolver=resolver_for({}))
    assert literal.value.message == message
    resolver = resolver_for({"images.example": [PUBLIC_V4, address]})
    with pytest.raises(InvalidRequest) as resolved:
        check_public_url("https://images.example/x", param=PARAM, allow_local=False, resolver=resolver)
    assert resolved.value.message == message


def test_a_link_local_answer_with_its_zone_is_refused_as_link_local() -> None:
    resolver = resolver_for({"images.example": [PUBLIC_V4, "fe80::1%eth0"]})
    with pytest.raises(InvalidRequest) as refused:
        check_public_url("https://images.example/x", param=PARAM, allow_local=False, resolver=resolver)
    assert refused.value.message == f"'{PARAM}' must not point to a link-local address."


def test_local_development_judges_an_embedded_ipv4_by_the_local_rules_too() -> None:
    """6to4 of 127.0.0.1: the embedded loopback is fine for local development, so what refuses
    the address is the 6to4 range itself (2002::/16 is not global), not the loopback in it."""
    with pytest.raises(InvalidRequest) as refused:
        check_public_url(
            "http://[2002:7f00:1::1]/x", param=PARAM, allow_local=True, resolver=resolver_for({})
        )
    assert refused.value.message == f"'{PARAM}' must not point to a private address."


def test_the_resolver_is_asked_for_the_host_with_the_urls_own_port() -> None:
    asked: list[tuple[str, int | None]] = []

    def resolver(host: str, port: int | None) -> list[tuple[Any, ...]]:
        asked.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_V4, port or 0))]

    check_public_url("https://images.example:8443/x", param=PARAM, allow_local=False, resolver=resolver)
    check_public_url("https://images.example/x", param=PARAM, allow_local=False, resolver=resolver)
    assert asked == [("images.example", 8443), ("images.example", None)]


# --- fetch_limited: limits and time, exactly -------------------------------------------------------


def test_a_body_without_a_length_is_counted_exactly_at_the_cap(server: LocalServer) -> None:
    """200 000 bytes arrive in several reads and no Content-Length says so in advance: they are
    put together as sent, accepted at a cap of exactly that size and refused one byte below."""
    size = 200_000
    body, _ = fetch(server.url(f"/large/{size}"), max_bytes=size)
    assert body == large_body(size)
    with pytest.raises(PayloadTooLarge) as refused:
        fetch(server.url(f"/large/{size}"), max_bytes=size - 1)
    assert refused.value.message == f"'{PARAM}' is larger than {size - 1} bytes."


@pytest.mark.parametrize("encoding", ["", "identity", " Identity "])
def test_an_empty_or_identity_content_encoding_is_a_plain_body(server: LocalServer, encoding: str) -> None:
    assert fetch(server.url(f"/encoded?as={quote(encoding)}"))[0] == b"plain body"


def test_a_body_cut_off_by_the_timeout_is_not_taken_for_a_whole_one(server: LocalServer) -> None:
    """Without a length, the cut connection looks like the body's end: it is still a timeout."""
    with pytest.raises(InvalidRequest) as failed:
        fetch(server.url("/trickle?unsized=1"), timeout=0.3)
    assert failed.value.message == TOO_LONG


def test_a_redirect_hop_after_the_time_is_up_sends_nothing(server: LocalServer) -> None:
    """The first hop answered (a redirect); resolving the second outlasts the whole timeout. The
    watchdog has fired by then: the new connection is shut as soon as it exists, so the server
    never receives the second request, and the fetch is a download that took too long."""

    def slow(host: str, port: int | None) -> list[tuple[Any, ...]]:
        time.sleep(0.4)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    location = server.url("/image", host="slow.test")
    with pytest.raises(InvalidRequest) as failed:
        fetch(server.url(f"/to?location={quote(location, safe='')}"), timeout=0.1, resolver=slow)
    assert failed.value.message == TOO_LONG
    assert server.paths == [f"/to?location={quote(location, safe='')}"]


@pytest.fixture
def unaccepting() -> Iterator[int]:
    """A loopback port whose accept queue is full: the kernel drops further SYNs, so a connect
    there hangs as it would towards a host that swallows packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield port
    filler.close()
    listener.close()


def test_a_connection_that_is_never_accepted_times_out(unaccepting: int) -> None:
    """The watchdog cannot help here (a socket is handed to it once connected): the connect
    timeout alone, taken from what is left of the whole timeout, ends the attempt."""
    url = f"http://127.0.0.1:{unaccepting}/image"
    started = time.monotonic()
    with (
        pytest.raises(InvalidRequest) as failed,
        open_public("GET", url, param=PARAM, allow_local=True, timeout=0.2),
    ):
        pass
    assert failed.value.message == NO_ANSWER
    with pytest.raises(InvalidRequest) as fetched:
        fetch(url, timeout=0.2)
    assert fetched.value.message == NO_ANSWER
    assert time.monotonic() - started < 2


class _Raw:
    """The `raw` of a response whose body is already at hand, read as `_read_limited` reads it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def read1(self, amount: int, decode_content: bool | None = None) -> bytes:  # urllib3's signature
        return self._chunks.pop(0) if self._chunks else b""


def _response(*chunks: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.raw = _Raw(list(chunks))
    return response


def test_a_body_still_arriving_after_the_deadline_is_refused_even_before_the_watchdog_cuts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog's timer may fire late on a busy host; the reader checks the deadline itself
    after every read. A clock frozen at 100.0 shows the boundary: at the deadline is still in time."""
    monkeypatch.setattr(gateway.urls, "time", SimpleNamespace(monotonic=lambda: 100.0))
    assert _read_limited(_response(b"ab", b"cd"), PARAM, 10, "payload_too_large", 100.0) == b"abcd"
    with pytest.raises(InvalidRequest) as late:
        _read_limited(_response(b"ab", b"cd"), PARAM, 10, "payload_too_large", 99.9)
    assert_error(late, 400, "url_fetch_failed")
    assert late.value.message == TOO_LONG


# --- the watchdog ----------------------------------------------------------------------------------


def test_the_watchdog_fires_after_its_time_even_a_short_or_negative_one() -> None:
    for seconds in (0.05, -1.0):
        with _Watchdog(seconds) as watchdog:
            assert wait_until(lambda: watchdog.expired, timeout=0.6)


def test_a_socket_handed_to_an_expired_watchdog_is_shut_at_once() -> None:
    ours, peer = socket.socketpair()
    with ours, peer, _Watchdog(0.0) as watchdog:
        assert wait_until(lambda: watchdog.expired, timeout=1)
        watchdog.watch(ours)
        peer.settimeout(1)
        assert peer.recv(1) == b""  # the shutdown reached the other end: no read waits any more


def test_a_socket_already_closed_does_not_keep_the_watchdog_from_shutting_the_others() -> None:
    closed = socket.socket()
    closed.close()
    ours, peer = socket.socketpair()
    with ours, peer, _Watchdog(0.1) as watchdog:
        watchdog.watch(closed)
        watchdog.watch(ours)
        peer.settimeout(1)
        assert peer.recv(1) == b""
        watchdog.watch(closed)  # handed over after the time is up: shut, quietly


def test_a_fetch_in_flight_does_not_keep_the_process_from_exiting(server: LocalServer) -> None:
    """A worker process may end while a fetch waits on a silent server (its thread a daemon):
    the watchdog's timer must not hold the process alive until that fetch's time is up. The
    control in this process: the same silent server is a plain timeout here."""
    with pytest.raises(InvalidRequest):
        fetch(server.url("/sleep/30"), timeout=0.1)
    script = f"""
import threading, time
from gateway.urls import fetch_limited

def run():
    fetch_limited({server.url("/sleep/30")!r}, param="p", allow_local=True, max_bytes=10, timeout=30)

threading.Thread(target=run, daemon=True).start()
time.sleep(0.3)
"""
    project = Path(gateway.urls.__file__).resolve().parent.parent
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], cwd=project, timeout=10, check=True)
    assert time.monotonic() - started < 5
