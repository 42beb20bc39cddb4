"""Transient faults injected into the videos API, as a flaky upstream would produce them."""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass


class FaultKind(enum.Enum):
    TOO_MANY_REQUESTS = "429"
    SERVER_ERROR = "500"
    SERVICE_UNAVAILABLE = "503"
    DROPPED_CONNECTION = "dropped"


EVERY_KIND = tuple(kind.value for kind in FaultKind)


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    retry_after: int | None = None
    """Seconds for the `Retry-After` header of a 429."""


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        # One generator behind a lock: with a seed, the sequence of faults is reproducible
        # for a given sequence of requests.
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self, rate: float, kinds: tuple[str, ...] = EVERY_KIND) -> Fault | None:
        """With probability `rate`, a fault (one of `kinds`) to answer the current request with."""
        if rate <= 0.0:
            return None
        allowed = [kind for kind in FaultKind if kind.value in kinds]
        with self._lock:
            if self._random.random() >= rate:
                return None
            kind = self._random.choice(allowed)
            retry_after = self._random.choice((1, 2)) if kind is FaultKind.TOO_MANY_REQUESTS else None
        return Fault(kind, retry_after)
