"""Waiting for a video: polls as the API advises and shows progress on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

import requests

FINAL = ("completed", "failed")
DEFAULT_WAIT = 1.0
MAX_WAIT = 30.0
BAR_WIDTH = 30


def poll_wait(response: requests.Response) -> float:
    """Seconds to wait before the next poll: `openai-poll-after-ms`, else `Retry-After`, else 1 s."""
    for header, scale in (("openai-poll-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue
        return min(max(seconds, 0.1), MAX_WAIT)
    return DEFAULT_WAIT


def describe(video: dict[str, Any], elapsed: float) -> str:
    """`in_progress 42%  queue 3  12s elapsed`, from what the Video carries."""
    parts = [str(video.get("status", "?")), f"{int(video.get('progress') or 0)}%"]
    position = video.get("queue_position")
    if isinstance(position, int):
        parts.append(f"queue position {position}")
    left = video.get("seconds_remaining")  # not in today's API; shown if a gateway sends it
    if isinstance(left, int | float):
        parts.append(f"~{int(left)}s left")
    parts.append(f"{int(elapsed)}s elapsed")
    return "  ".join(parts)


class Progress:
    """A redrawn bar on a terminal, else one line per change of status (or queue position)."""

    def __init__(self, stream: TextIO, video_id: str) -> None:
        self.stream = stream
        self.video_id = video_id
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last: tuple[Any, ...] | None = None
        self.drawn = False

    def update(self, video: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        if self.tty:
            percent = min(max(int(video.get("progress") or 0), 0), 100)
            filled = BAR_WIDTH * percent // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[K{self.video_id} [{bar}] {describe(video, elapsed)}")
            self.stream.flush()
            self.drawn = True
            return
        state = (video.get("status"), video.get("queue_position"))
        if state != self.last:
            self.last = state
            self.stream.write(f"{self.video_id}: {describe(video, elapsed)}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def wait_until_final(
    fetch: Callable[[], requests.Response],
    first_wait: float,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll `fetch` (a GET of the video) until the video is completed or failed."""
    wait = first_wait
    try:
        while True:
            sleep(wait)
            response = fetch()
            video = dict(response.json())
            progress.update(video)
            if video.get("status") in FINAL:
                return video
            wait = poll_wait(response)
    finally:
        progress.close()
