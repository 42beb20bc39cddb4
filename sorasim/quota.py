"""A rolling-window creation quota, like Azure's per-deployment Sora rate limit."""

from __future__ import annotations

import math
import threading
from collections import deque

WINDOW_SECONDS = 60.0


class RollingWindowQuota:
    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self._window = window_seconds
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()

    def try_acquire(self, limit: int, now: float) -> int | None:
        """Take a slot and return None, or return the whole seconds until one frees (>= 1).

        `limit` is read per call so it can change at runtime; 0 means unlimited.
        """
        with self._lock:
            while self._admitted and self._admitted[0] <= now - self._window:
                self._admitted.popleft()
            if limit > 0 and len(self._admitted) >= limit:
                # The slot that frees first belongs to the oldest of the newest `limit` admissions
                # (older ones only matter if the limit was lowered at runtime).
                frees_at = self._admitted[len(self._admitted) - limit] + self._window
                return max(1, math.ceil(frees_at - now))
            self._admitted.append(now)
            return None

    def clear(self) -> None:
        with self._lock:
            self._admitted.clear()
