"""Webhook receivers on free loopback ports that record what arrives and can fail on purpose."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers 500 to the first `failures` requests on each path, then 204. `before_answer`, when
    given, is called with each delivery before it is answered (the sender still waiting)."""

    failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    before_answer: Callable[[Delivery], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    seen = sum(1 for delivery in receiver.deliveries if delivery.path == self.path)
                    status = 500 if seen < receiver.failures else 204
                    delivery = Delivery(self.path, dict(self.headers.items()), body, status)
                    receiver.deliveries.append(delivery)
                if receiver.before_answer is not None:
                    receiver.before_answer(delivery)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def on(self, path: str) -> list[Delivery]:
        with self._lock:
            return [delivery for delivery in self.deliveries if delivery.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class ResettingReceiver:
    """A loopback host that takes each connection, reads the request, then resets it (RST, via
    SO_LINGER 0) without a word of HTTP: a receiver whose host drops the delivery mid-request."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed on leaving
            with connection:
                connection.settimeout(5)
                try:
                    head = connection.recv(65536)  # the request has arrived before the reset
                except OSError:
                    head = b""
                with self._lock:
                    self._requests.append(head)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    @property
    def requests(self) -> list[bytes]:
        with self._lock:
            return list(self._requests)

    def __enter__(self) -> ResettingReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=10)
