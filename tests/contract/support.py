"""Small helpers for the contract tests: a real PNG, a loopback webhook receiver, polling."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from tests.conftest import RunningStack
from tests.contract.document import assert_matches_document


def tiny_png(width: int = 64, height: int = 36) -> bytes:
    """A valid RGB PNG, built by hand so the tests need no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes([40, 120, 200]) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Collects the POSTs a loopback URL receives and answers 204."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 90.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} of {count} webhook deliveries arrived"
        return list(self.deliveries)


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    deliveries: list[Delivery] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            deliveries.append(Delivery(dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hook", deliveries)
    finally:
        server.shutdown()
        server.server_close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_until(predicate: Any, timeout: float = 90.0, interval: float = 0.3) -> Any:
    """Poll `predicate()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def get(url: str, key: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, headers=bearer(key), timeout=30, allow_redirects=False, **kwargs)


def create(stack: RunningStack, key: str, **kwargs: Any) -> requests.Response:
    headers = {**bearer(key), **kwargs.pop("headers", {})}
    return requests.post(f"{stack.api}/v1/videos", headers=headers, timeout=60, **kwargs)


def assert_error(
    response: requests.Response, path: str, status: int, code: str | None, param: str | None = None
) -> None:
    """A documented error answer; `code`/`param` checked where API.md names them (None: it doesn't)."""
    body = assert_matches_document(response.request.method or "POST", path, response)
    assert response.status_code == status, response.text
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
