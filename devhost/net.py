"""Small networking helpers shared by the local stack and the tests."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port(preferred: int | None = None) -> int:
    """Return `preferred` when it is free on loopback, else a free port chosen by the OS."""
    if preferred:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # Servers (Node, aiohttp) bind with SO_REUSEADDR, so a port whose old connections
            # linger in TIME_WAIT is free for them; probe the same way.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((LOOPBACK, preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 60.0, expect: int = 200) -> None:
    """Block until GET url answers `expect`, or raise TimeoutError with the last answer."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == expect:
                    return
                last = response.status
        except urllib.error.HTTPError as error:
            last = error.code
            if error.code == expect:
                return
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise TimeoutError(f"GET {url} did not answer {expect} within {timeout}s (last: {last!r})")
