"""Counters that tests read through GET /_sim/stats."""

from __future__ import annotations

import threading
from collections import Counter

COUNTER_NAMES = (
    "requests",  # every /openai/v1/* request received, faulted or not
    "jobs_created",  # create + remix jobs admitted
    "remixes_created",  # the remix share of jobs_created
    "jobs_deleted",
    "creates_rejected",  # create/remix refused by the creation quota (429)
    "creates_blocked",  # create/remix refused by the content policy (#sim:blocked)
    "client_errors",  # 4xx answers of the videos API other than 401 and 429 (blocked prompts included)
    "unauthorized",  # 401 answers from the videos API
    "faults_injected",
    "faults_429",
    "faults_500",
    "faults_503",
    "faults_dropped",
    "downloads",  # successful content downloads, any variant
    "tokens_issued",
    "token_requests_rejected",
)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def increment(self, name: str, amount: int = 1) -> None:
        if name not in COUNTER_NAMES:
            raise KeyError(name)
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: self._counts[name] for name in COUNTER_NAMES}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
