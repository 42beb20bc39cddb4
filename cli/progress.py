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


class TimeLeft:
    """Time left, extrapolated from how fast `progress` has moved since it was first seen moving.

    The API reports progress, not an ETA; the first reading is the origin, so time spent queued
    before it does not skew the rate."""

    def __init__(self) -> None:
        self.origin: tuple[int, float] | None = None

    def update(self, progress: int, now: float) -> float | None:
        if not 0 < progress < 100:
            return None
        if self.origin is None:
            self.origin = (progress, now)
            return None
        first, since = self.origin
        if progress <= first or now <= since:
            return None
        return (100 - progress) * (now - since) / (progress - first)


def describe(video: dict[str, Any], elapsed: float, left: float | None = None) -> str:
    """`in_progress 42%  queue position 3  ~12s left  20s elapsed`, from what the Video carries."""
    parts = [str(video.get("status", "?")), f"{int(video.get('progress') or 0)}%"]
    position = video.get("queue_position")
    if isinstance(position, int):
        parts.append(f"queue position {position}")
    if left is not None:
        parts.append(f"~{max(1, round(left))}s left")
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
        self.time_left = TimeLeft()

    def update(self, video: dict[str, Any]) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        left = self.time_left.update(int(video.get("progress") or 0), now)
        if self.tty:
            percent = min(max(int(video.get("progress") or 0), 0), 100)
            filled = BAR_WIDTH * percent // 100
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[K{self.video_id} [{bar}] {describe(video, elapsed, left)}")
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
