"""Bounded thread pools for the request path, so that no app's slow work can stall another app.

Every handler runs its short blocking calls (storage reads and writes, a few milliseconds each)
on the event loop's default executor. Work that can be made slow on purpose must never sit there:
a client's image URL can trickle one byte a second, a webhook host's DNS can answer late, a large
multipart body or a huge image takes seconds of CPU and hundreds of MB to parse or decode. That
work runs on pools of its own (`OUTBOUND` for fetches and look-ups, `HEAVY` for parsing and
decoding), and each app may have at most `SLOW_WORK_PER_APP` requests doing such work at once in
this process; one more is refused at once (429 `too_many_concurrent_requests`, Retry-After: 1)
instead of being queued where it would delay other apps.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

from gateway.errors import RateLimited

# How many requests with slow work one app may have in flight in one process. Two lets an app
# overlap its own image uploads; more would only let it take a larger share of the pools.
SLOW_WORK_PER_APP = 2
# Outbound work waits on the network, not the CPU: many threads are cheap, and the cap per app
# keeps any one app to a small share of them.
OUTBOUND_THREADS = 16
# Parsing and decoding use CPU and up to a few hundred MB each, so few run at once and memory
# stays bounded however many arrive; twice the cap per app, so one app never has them all.
HEAVY_THREADS = 2 * SLOW_WORK_PER_APP

OUTBOUND = ThreadPoolExecutor(max_workers=OUTBOUND_THREADS, thread_name_prefix="outbound")
HEAVY = ThreadPoolExecutor(max_workers=HEAVY_THREADS, thread_name_prefix="heavy")


async def run_in[**P, R](
    pool: ThreadPoolExecutor, work: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """`work(*args, **kwargs)` on `pool`, awaited without holding the event loop."""
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(work, *args, **kwargs))


class SlowWorkSlots:
    """At most `per_app` requests of one app doing slow work at once; the next is refused, not queued."""

    def __init__(self, per_app: int) -> None:
        self._per_app = per_app
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, app_id: str) -> Iterator[None]:
        with self._lock:
            if self._held[app_id] >= self._per_app:
                raise too_many_concurrent_requests(self._per_app)
            self._held[app_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[app_id] -= 1
                if self._held[app_id] <= 0:
                    del self._held[app_id]

    def held(self, app_id: str) -> int:
        with self._lock:
            return self._held[app_id]

    def for_request(self, app_id: str) -> RequestSlot:
        return RequestSlot(self, app_id)


class RequestSlot:
    """One request's claim on its app's slots: taken on the first `take()`, at most once, and
    given back when the request leaves the `with` block, however it leaves."""

    def __init__(self, slots: SlowWorkSlots, app_id: str) -> None:
        self._slots = slots
        self._app_id = app_id
        self._stack = ExitStack()
        self.taken = False

    def take(self) -> None:
        if not self.taken:
            self._stack.enter_context(self._slots.hold(self._app_id))
            self.taken = True

    def __enter__(self) -> RequestSlot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()


def too_many_concurrent_requests(per_app: int) -> RateLimited:
    return RateLimited(
        f"Too many requests with images, webhooks or large bodies in progress for this app at once "
        f"(at most {per_app}); retry when one has been answered.",
        code="too_many_concurrent_requests",
        headers={"Retry-After": "1"},
    )


SLOW_WORK = SlowWorkSlots(SLOW_WORK_PER_APP)
