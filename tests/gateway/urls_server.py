"""A real HTTP(S) server on a free loopback port, with routes that misbehave the ways remote hosts do."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHUNK = b"x" * 65536


class LocalServer:
    """Serves the routes of `_Handler` until stopped; `sni_names` records TLS server names seen."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Server", (_QuietServer,), {"address_family": family})
        self.stopping = threading.Event()
        self.sni_names: list[str | None] = []
        self.endless_finished = threading.Event()
        self.paths: list[str] = []  # every GET's path, in order of arrival
        self.trickling = 0  # /trickle responses being sent right now
        self._lock = threading.Lock()
        self._server: _QuietServer = server_class((host, 0), _Handler)
        self._server.owner = self
        if tls is not None:
            tls.sni_callback = self._record_sni
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        netloc = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{netloc}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def count_trickle(self, change: int) -> None:
        with self._lock:
            self.trickling += change

    def _record_sni(self, _socket: Any, name: str | None, _context: ssl.SSLContext) -> None:
        self.sni_names.append(name)


class _QuietServer(ThreadingHTTPServer):
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what several tests do on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    @property
    def owner(self) -> LocalServer:
        assert isinstance(self.server, _QuietServer)
        return self.server.owner

    def do_GET(self) -> None:
        self.owner.paths.append(self.path)
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        route, _, rest = parts.path.strip("/").partition("/")
        handler = getattr(self, f"_route_{route.replace('-', '_')}", None)
        if handler is None:
            self._send(404, b"no such route")
        else:
            handler(rest, query)

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _route_image(self, _rest: str, _query: dict[str, str]) -> None:
        self._send(200, b"\x89PNG\r\n\x1a\nnot really", "image/png")

    def _route_echo_host(self, _rest: str, _query: dict[str, str]) -> None:
        self._send(200, (self.headers.get("Host") or "").encode())

    def _route_echo_headers(self, _rest: str, _query: dict[str, str]) -> None:
        self._send(200, "\n".join(f"{name}: {value}" for name, value in self.headers.items()).encode())

    def _route_redirect(self, rest: str, query: dict[str, str]) -> None:
        """/redirect/N: N more redirects, relative or (absolute=1) naming the Host asked for."""
        remaining = int(rest)
        if remaining == 0:
            self._send(200, b"arrived")
            return
        location = f"/redirect/{remaining - 1}"
        if query.get("absolute"):
            location = f"http://{self.headers['Host']}{location}?absolute=1"
        self._send(302, b"", Location=location)

    def _route_to(self, _rest: str, query: dict[str, str]) -> None:
        if "location" in query:
            self._send(302, b"", Location=query["location"])
        else:
            self._send(302, b"")

    def _route_status(self, rest: str, _query: dict[str, str]) -> None:
        self._send(int(rest), b"secret-upstream-body")

    def _route_declared_huge(self, _rest: str, _query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self.wfile.write(CHUNK)

    def _route_endless(self, _rest: str, _query: dict[str, str]) -> None:
        """A body without a length that never ends; stops when the client hangs up."""
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            while not self.owner.stopping.is_set():
                self.wfile.write(CHUNK)
        except OSError:
            pass
        self.owner.endless_finished.set()
        self.close_connection = True

    def _route_sleep(self, rest: str, _query: dict[str, str]) -> None:
        self.owner.stopping.wait(float(rest))
        self._send(200, b"late")

    def _route_trickle(self, _rest: str, query: dict[str, str]) -> None:
        """Promises a large body and sends one small piece every 50 ms, each well within any read
        timeout; with `unsized=1` the body has no length and ends when the connection does."""
        self.send_response(200)
        if query.get("unsized"):
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.owner.count_trickle(+1)
        try:
            while not self.owner.stopping.wait(0.05):
                self.wfile.write(b"y" * 10)
                self.wfile.flush()
        except OSError:
            pass
        finally:
            self.owner.count_trickle(-1)
        self.close_connection = True

    def _route_trickle_headers(self, _rest: str, _query: dict[str, str]) -> None:
        """Sends its status line and then one header byte every 50 ms, forever: no read ever
        waits long enough to time out, and the headers never end."""
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.owner.stopping.wait(0.05):
                self.wfile.write(b"y")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _route_trickle_status(self, _rest: str, _query: dict[str, str]) -> None:
        """Sends one byte of a status line every 50 ms, forever: no line ever ends."""
        try:
            while not self.owner.stopping.wait(0.05):
                self.wfile.write(b"H")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _route_truncated(self, _rest: str, _query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"z" * 10)
        self.close_connection = True

    def _route_large(self, rest: str, _query: dict[str, str]) -> None:
        """/large/N: N bytes of `large_body(N)`, no length announced, ended by closing the connection."""
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(large_body(int(rest)))
        self.close_connection = True

    def _route_encoded(self, _rest: str, query: dict[str, str]) -> None:
        """A plain body labelled with the Content-Encoding named by `as` (possibly empty)."""
        self._send(200, b"plain body", Content_Encoding=query.get("as", ""))

    def _route_gzip(self, _rest: str, _query: dict[str, str]) -> None:
        self._send(200, b"\x1f\x8b not really gzip", Content_Encoding="gzip")


def large_body(size: int) -> bytes:
    """`size` bytes that differ from chunk to chunk, so a body put together wrongly shows."""
    counter = b"".join(i.to_bytes(4, "big") for i in range(size // 4 + 1))
    return counter[:size]


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())
