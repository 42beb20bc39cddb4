"""A fixed-size pool of daemon threads for synchronous user functions.

concurrent.futures joins its worker threads when the interpreter exits, so one abandoned
activity still running after stop() would hold the whole process open. Daemon workers let a
stopped host's process exit; whatever they were doing re-runs on the next start.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Work = Callable[[], None]


class WorkerPool:
    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._size = size
        self._queue: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._waiting = 0
        self._closed = False

    def submit(self, work: Work) -> None:
        """Queue `work`; it must not raise. Threads start on demand, up to the pool size."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"worker pool {self._name} is shut down")
            self._waiting += 1
            self._queue.put(work)
            if self._waiting > self._idle and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work_loop, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def shutdown(self) -> None:
        """Stop taking work; queued work is dropped and running work is left to finish alone."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)

    def _work_loop(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            work = self._queue.get()
            with self._lock:
                self._idle -= 1
                if work is not None:
                    self._waiting -= 1
                closed = self._closed
            if work is None or closed:
                return
            work()
