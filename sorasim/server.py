"""`SoraSimulator`: the simulator served from a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from sorasim.app import build_app
from sorasim.config import SimulatorConfig
from sorasim.media import MediaLibrary, shared_media_library
from sorasim.state import SimulatorState

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 0.5


class SoraSimulator:
    """A local stand-in for Azure OpenAI's Sora videos API and a managed-identity endpoint.

    `port=0` lets the OS pick a free port; `url` tells which after `start()`.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        host: str = LOOPBACK,
        port: int = 0,
        *,
        media: MediaLibrary | None = None,
    ) -> None:
        config = config or SimulatorConfig()
        if config.identity_header is None:
            config = dataclasses.replace(config, identity_header=secrets.token_urlsafe(24))
        self._identity_header: str = config.identity_header or ""
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self.state = SimulatorState(config, media or shared_media_library())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SoraSimulator:
        """Serve in a background thread; return once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        # Bound here, not in the thread, so the port is known (and reserved) before start returns.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        self._ready.clear()
        self._startup_error = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"sorasim:{self._port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("the simulator did not start in time")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the simulator failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end; safe to call when not running."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> SoraSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and secrets ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/msi/token"

    @property
    def identity_header(self) -> str:
        return self._identity_header

    # -- test conveniences (the same as the /_sim/ hooks) -----------------------------------

    @property
    def config(self) -> SimulatorConfig:
        return self.state.config

    def stats(self) -> dict[str, int]:
        return {**self.state.stats.snapshot(), "jobs_stored": len(self.state.jobs)}

    def update_config(self, **changes: Any) -> SimulatorConfig:
        return self.state.update_config(changes)

    def reset(self) -> None:
        self.state.reset()

    # -- the server thread -------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(
            build_app(self.state, self._identity_header),
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
            handle_signals=False,
        )
        try:
            loop.run_until_complete(self._open(runner, sock))
        except BaseException as error:
            self._startup_error = error
            sock.close()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close(runner))
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    @staticmethod
    async def _close(runner: web.AppRunner) -> None:
        # Listening stops first, so the connections seen next are all there will be.
        for site in list(runner.sites):
            await site.stop()
        server = runner.server
        transports = [handler.transport for handler in server.connections] if server else []
        await runner.cleanup()
        # aiohttp closes connections gracefully, which waits forever for unsent data when a
        # client has stopped reading a long download: abort what is left so no socket outlives us.
        for transport in transports:
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)  # lets the transports' connection_lost callbacks close the sockets

    @staticmethod
    async def _open(runner: web.AppRunner, sock: socket.socket) -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()
