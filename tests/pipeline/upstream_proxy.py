"""A loopback HTTP proxy between the gateway and the Sora simulator that fails chosen requests.

The simulator's own fault knobs hit every request alike; these tests need a fault exactly where
it matters (only the status checks, only the MP4 download, only the thumbnail), so the proxy
answers matching requests itself: with an HTTP status, by cutting the body off half-way, or by
holding the request until the test lets it through. Everything else is forwarded unchanged.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import requests

# Headers worth relaying from the simulator's answers.
RELAYED = ("Content-Type", "Retry-After", "retry-after-ms", "openai-poll-after-ms")
CREATE_VIDEO = r"^/openai/v1/videos(\?|$)"
STATUS_CHECK = r"^/openai/v1/videos/[^/?]+$"
VIDEO_CONTENT = r"^/openai/v1/videos/[^/?]+/content\?(.*&)?variant=video(&|$)"
THUMBNAIL_CONTENT = r"^/openai/v1/videos/[^/?]+/content\?(.*&)?variant=thumbnail(&|$)"
DELETE_VIDEO = r"^/openai/v1/videos/[^/?]+$"


@dataclass
class Rule:
    """What to do with requests of `method` whose path and query match `pattern`."""

    method: str
    pattern: str
    status: int | None = None  # answer this status (an OpenAI-shaped error body)
    retry_after: int | None = None  # with a Retry-After header
    code: str | None = None  # the error body's code (default `proxy_<status>`)
    cut: bool = False  # forward, but close the connection half-way through the body
    hold: threading.Event | None = None  # forward (or answer `status`) only once this is set
    times: int | None = None  # for this many requests; None: until the rule is removed

    def matches(self, method: str, target: str) -> bool:
        return self.method == method and re.search(self.pattern, target) is not None


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # path and query
    answered: int | str  # status, or "cut"


@dataclass
class UpstreamProxy:
    upstream: str  # the simulator's base URL
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # prompt -> upstream id
    held: int = 0  # requests waiting on a hold right now

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def requests_to(self, method: str, pattern: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and re.search(pattern, s.target)]

    def __enter__(self) -> UpstreamProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.clear()
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    # -- serving ---------------------------------------------------------------------------

    def _rule_for(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target) and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _record(self, method: str, target: str, answered: int | str) -> None:
        with self._lock:
            self.seen.append(Seen(method, target, answered))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, target = handler.command, handler.path
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        rule = self._rule_for(method, target)
        if rule is not None and rule.hold is not None:
            with self._lock:
                self.held += 1
            rule.hold.wait(timeout=25)
            with self._lock:
                self.held -= 1
        if rule is not None and rule.status is not None:
            self._record(method, target, rule.status)
            self._answer_fault(handler, rule)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "accept-encoding")}
        answer = self._session.request(method, self.upstream + target, headers=headers, data=body, timeout=30)
        content = answer.content
        if method == "POST" and target == "/openai/v1/videos" and answer.ok:
            self._remember_creation(body, handler.headers.get("Content-Type", ""), content)
        cut = rule is not None and rule.cut and len(content) > 1
        self._record(method, target, "cut" if cut else answer.status_code)
        handler.send_response(answer.status_code)
        for name in RELAYED:
            if name in answer.headers:
                handler.send_header(name, answer.headers[name])
        handler.send_header("Content-Length", str(len(content)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(content[: len(content) // 2] if cut else content)
        handler.wfile.flush()
        handler.close_connection = True

    def _remember_creation(self, body: bytes, content_type: str, answer: bytes) -> None:
        if "json" not in content_type:
            return
        prompt = str(json.loads(body).get("prompt", ""))
        with self._lock:
            self.created[prompt] = str(json.loads(answer)["id"])

    @staticmethod
    def _answer_fault(handler: BaseHTTPRequestHandler, rule: Rule) -> None:
        assert rule.status is not None
        payload = json.dumps(
            {
                "error": {
                    "message": f"Injected by the test proxy ({rule.status}).",
                    "type": "server_error",
                    "param": None,
                    "code": rule.code or f"proxy_{rule.status}",
                }
            }
        ).encode()
        handler.send_response(rule.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if rule.retry_after is not None:
            handler.send_header("Retry-After", str(rule.retry_after))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(payload)
        handler.close_connection = True
