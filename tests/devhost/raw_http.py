"""HTTP over a bare socket, for what `requests` cannot do: declare a body and not send it."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def status_after_headers(url: str, method: str, headers: dict[str, str], wait: float = 5.0) -> int | None:
    """Send only the request line and headers, then the status the server answers within `wait`
    seconds, or None when it waits for the body instead."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            first = sock.recv(64)
        except TimeoutError:
            return None
    return int(first.split(b" ", 2)[1]) if first else None
