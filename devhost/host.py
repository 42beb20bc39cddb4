"""DevHost: serves a function app's HTTP routes and runs its durable orchestrations locally.

The server, the engine and every async function run on one long-lived event loop, either on a
background thread (`start`) or on the calling thread (`run_forever`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from types import TracebackType

from aiohttp import web
from azure.durable_functions.models.utils import http_utils

from devhost.engine import Engine
from devhost.functions import AppIndexError, FunctionIndex, Invoker, index_app
from devhost.guards import DEFAULT_MAX_REQUEST_BODY_BYTES, body_size_guard, host_key_guard
from devhost.http_routes import HttpFunctionServer
from devhost.keys import DURABLE_EXTENSION, HostKeys
from devhost.management import RPC_PATH, ManagementApi, client_binding
from devhost.store import Store
from devhost.timers import TimerTriggers
from devhost.workers import WorkerPool

log = logging.getLogger("devhost.host")

HTTP_THREADS = 32
ACTIVITY_THREADS = 16
ORCHESTRATOR_THREADS = 8
# The extension's local RPC listener has no body limit (LocalHttpListener: MaxRequestBodySize = null);
# aiohttp reads 0 as "no limit".
UNLIMITED_BODY = 0
# In-flight HTTP requests get this long to finish when the host stops.
SHUTDOWN_GRACE_SECONDS = 5.0
STOP_WAIT_SECONDS = 30.0


def _reset_durable_client_session() -> None:
    """The library's client keeps one module-global aiohttp session (and lock) bound to the first
    loop that used it; a host starting on a new loop must not inherit them."""
    http_utils._client_session = None
    http_utils._session_lock = asyncio.Lock()


async def _close_durable_client_session() -> None:
    session = http_utils._client_session
    http_utils._client_session = None
    if session is not None and not session.closed:
        await session.close()


async def _cancel_leftover_tasks() -> None:
    """End what outlived the servers, as asyncio.run does: e.g. a connection still discarding
    the unread body of a refused request (aiohttp's lingering close)."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def _start_failure(cause: BaseException) -> BaseException:
    if isinstance(cause, AppIndexError):
        return cause  # the worker's own words, for the caller to print
    error = RuntimeError("the dev host failed to start")
    error.__cause__ = cause
    return error


class DevHost:
    def __init__(
        self,
        app: object | str,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        route_prefix: str = "api",
        task_hub: str = "devhost",
        activity_latency: float = 0.0,
        master_key: str | None = None,
        max_request_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_BYTES,
    ) -> None:
        """`activity_latency` (seconds) delays each activity's dispatch and its completion, as the
        Storage queues between the extension and the worker do in Azure.

        `master_key` authorizes the host's webhooks; unset, the host keeps generated keys under
        `state_dir` (see devhost/keys.py). `max_request_body_bytes` is the host's body limit
        (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT in Azure)."""
        self._app_source = app
        self._master_key = master_key
        self._max_request_body_bytes = max_request_body_bytes
        self._keys: HostKeys | None = None
        self._rpc_port: int | None = None
        self._activity_latency = activity_latency
        self._state_dir = Path(state_dir)
        self._host = host
        self._requested_port = port
        self._route_prefix = route_prefix
        self._task_hub = task_hub
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._startup_error: BaseException | None = None
        self._runners: list[web.AppRunner] = []
        self._engine: Engine | None = None
        self._timers: TimerTriggers | None = None
        self._store: Store | None = None
        self._pools: list[WorkerPool] = []
        self._owns_client_session = False

    # ---- public API ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the dev host is not listening; call start() first")
        return f"http://{self._host}:{self._port}"

    @property
    def rpc_url(self) -> str:
        """The Durable extension's local RPC listener (loopback only, no key), as the client's
        rpcBaseUrl names it without its /durabletask/ path."""
        if self._rpc_port is None:
            raise RuntimeError("the dev host is not listening; call start() first")
        return f"http://127.0.0.1:{self._rpc_port}"

    @property
    def keys(self) -> HostKeys:
        if self._keys is None:
            raise RuntimeError("the dev host has no keys yet; call start() first")
        return self._keys

    @property
    def master_key(self) -> str:
        """The key that authorizes every host endpoint, /runtime/webhooks/durabletask included."""
        return self.keys.master

    @property
    def durable_key(self) -> str:
        """The durabletask_extension system key, which the management URLs carry as `code=`."""
        return self.keys.extension_key(DURABLE_EXTENSION)

    def start(self) -> None:
        """Run in the background; returns once the server listens (or raises why it cannot)."""
        self._claim()
        self._thread = threading.Thread(target=self._run_loop, name="devhost", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise _start_failure(self._startup_error)

    def run_forever(self) -> None:
        """Serve until stop() is called (from a signal handler or another thread).

        On a host not yet started this runs the loop on the calling thread; after start() it
        just waits for the background host to stop.
        """
        if self._loop is not None:
            # Short waits keep the main thread responsive to signal handlers.
            while not self._finished.wait(0.5):
                pass
            return
        self._claim()
        self._run_loop()
        if self._startup_error is not None:
            raise _start_failure(self._startup_error)

    def stop(self) -> None:
        """Stop accepting requests, cancel timers and abandon in-flight activities.

        Abandoned work stays recorded and runs again when a host starts on the same state_dir.
        """
        loop = self._loop
        if loop is None or self._finished.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:
            return  # the loop already closed
        if threading.get_ident() == self._loop_thread_id:
            # Called on the loop's own thread (a signal handler during run_forever): the loop
            # finishes the shutdown and run_forever returns.
            return
        self._finished.wait(STOP_WAIT_SECONDS)
        if self._thread is not None:
            self._thread.join(STOP_WAIT_SECONDS)

    def __enter__(self) -> DevHost:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- the loop --------------------------------------------------------------------------

    def _claim(self) -> None:
        if self._loop is not None:
            raise RuntimeError("a DevHost runs once; create a new one to start again")
        self._loop = asyncio.new_event_loop()

    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def _run_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        self._loop_thread_id = threading.get_ident()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
            loop.run_until_complete(_cancel_leftover_tasks())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            self._finished.set()
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            await self._open()
        except AppIndexError as error:
            # What Azure's worker says when it refuses the app: name the function, no stack.
            self._startup_error = error
            log.error("the worker refused the app, so no function would start in Azure: %s", error)
            await self._close()
            return
        except BaseException as error:
            self._startup_error = error
            log.exception("the dev host failed to start")
            await self._close()
            return
        finally:
            self._ready.set()
        await self._stop_event.wait()
        await self._close()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        index: FunctionIndex = index_app(self._app_source)
        safe_hub = re.sub(r"[^A-Za-z0-9_-]", "_", self._task_hub) or "devhost"
        self._store = Store(self._state_dir / f"{safe_hub}.sqlite")

        keys = HostKeys.load_or_create(self._state_dir, self._master_key)
        self._keys = keys
        durable_key = keys.extension_key(DURABLE_EXTENSION)

        def host_client_binding() -> str:
            return client_binding(self.url, self.rpc_url, self._task_hub, durable_key)

        http_invoker = Invoker(loop, self._pool("devhost-http", HTTP_THREADS), host_client_binding)
        activity_invoker = Invoker(
            loop, self._pool("devhost-activity", ACTIVITY_THREADS), host_client_binding
        )
        orchestrator_invoker = Invoker(loop, self._pool("devhost-orchestrator", ORCHESTRATOR_THREADS))
        self._engine = Engine(
            self._store, index, loop, activity_invoker, orchestrator_invoker, self._activity_latency
        )
        management = ManagementApi(self._engine, self._task_hub, durable_key)

        # The host's own port: the app's HTTP functions and the keyed webhooks, under its body limit.
        web_app = web.Application(
            client_max_size=self._max_request_body_bytes,
            middlewares=[host_key_guard(keys), body_size_guard(self._max_request_body_bytes)],
        )
        management.add_routes(web_app)
        HttpFunctionServer(
            index.http, http_invoker, self._route_prefix, self._task_hub, lambda: self.rpc_url, durable_key
        ).add_routes(web_app)
        self._port = await self._listen(web_app, self._host, self._requested_port)
        # The extension's local RPC listener: loopback only, no key, no body limit.
        rpc_app = web.Application(client_max_size=UNLIMITED_BODY)
        management.add_routes(rpc_app, RPC_PATH)
        self._rpc_port = await self._listen(rpc_app, "127.0.0.1", 0)
        # Only a host that got as far as listening takes over the library's client session.
        _reset_durable_client_session()
        self._owns_client_session = True

        for function in index.unsupported:
            log.warning(
                "function %s has a %s trigger, which the dev host does not run",
                function.name,
                function.trigger_type,
            )
        self._engine.resume()
        self._timers = TimerTriggers(index.timers, http_invoker, self._store)
        self._timers.start(loop)
        log.info(
            "dev host listening on %s (%d HTTP, %d orchestrator, %d activity, %d timer functions)",
            self.url,
            len(index.http),
            len({id(f) for f in index.orchestrators.values()}),
            len({id(f) for f in index.activities.values()}),
            len(index.timers),
        )

    async def _listen(self, web_app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(
            web_app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
        )
        self._runners.append(runner)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return int(runner.addresses[0][1])

    def _pool(self, name: str, size: int) -> WorkerPool:
        pool = WorkerPool(name, size)
        self._pools.append(pool)
        return pool

    async def _close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._timers is not None:
            await self._timers.close()
        if self._engine is not None:
            await self._engine.close()
        if self._owns_client_session:
            await _close_durable_client_session()
        for pool in self._pools:
            pool.shutdown()
        if self._store is not None:
            self._store.close()
        log.info("dev host stopped")
