"""The storage seam: storage that hangs, is down or fails answers `StorageUnavailable` within a
bounded time; the answers the stores rely on (404, 409, 412) pass through unchanged.

Against a private Azurite, paused with SIGSTOP (a real hang: the kernel still accepts
connections, nothing answers) or replaced by a closed port (a real outage). Only a 5xx is
injected, by a loopback server, since Azurite cannot be made to answer one.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import UpdateMode

from devhost.azurite import Azurite
from devhost.net import free_port
from gateway.blobs import TRANSFER_TIMEOUTS, VideoAssets, blob_service, copy_upstream_asset
from gateway.errors import StorageUnavailable, UpstreamTransientError
from gateway.settings import AZURITE_ACCOUNT, AZURITE_KEY
from gateway.tables import HEALTH_TIMEOUTS, REQUEST_TIMEOUTS, Tables, table_service
from tests.conftest import running_azurite

# The rules, in absolute terms (not derived from the constants under test): a call on the
# request path gives up within about 10 s, health within about 3 s; plus what a busy 2-core
# machine may add. Storage calls without timeouts hang for minutes.
REQUEST_BOUND_SECONDS = 10.0 + 3.0
HEALTH_BOUND_SECONDS = 3.0 + 2.0


def pid_listening_on(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:`port` (Linux /proc), e.g. a stack's Azurite."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                        return int(entry)
    raise LookupError(f"no process of ours listens on port {port}")


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """Storage that hangs: the process is stopped, its sockets stay open. Always resumed."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def private_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """An Azurite of this module's own, so pausing it disturbs no other test."""
    with running_azurite(tmp_path_factory.mktemp("seam-azurite")) as emulator:
        yield emulator


@pytest.fixture
def seam_tables(private_azurite: Azurite) -> Tables:
    return Tables(table_service(private_azurite.connection_string), prefix="s" + uuid.uuid4().hex[:10])


@pytest.fixture
def seam_assets(private_azurite: Azurite) -> VideoAssets:
    return VideoAssets(blob_service(private_azurite.connection_string), "seam-" + uuid.uuid4().hex[:10])


def azurite_pid(emulator: Azurite) -> int:
    return pid_listening_on(emulator.ports["table"])


def timed_failure(call: object) -> tuple[StorageUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as raised:
        call()  # type: ignore[operator]
    return raised.value, time.monotonic() - started


def test_the_request_budget_stays_within_ten_seconds_and_health_within_three() -> None:
    assert REQUEST_TIMEOUTS.retries >= 1  # a blip is retried once
    assert REQUEST_TIMEOUTS.deadline <= 13  # worst case: every try connects slowly, then reads nothing
    assert REQUEST_TIMEOUTS.read * (REQUEST_TIMEOUTS.retries + 1) + REQUEST_TIMEOUTS.backoff <= 10
    assert HEALTH_TIMEOUTS.deadline <= 3
    assert TRANSFER_TIMEOUTS.read > REQUEST_TIMEOUTS.read


def test_paused_table_storage_answers_storage_unavailable_in_seconds_then_recovers(
    private_azurite: Azurite, seam_tables: Tables
) -> None:
    jobs = seam_tables.get("jobs")
    jobs.create_entity({"PartitionKey": "app", "RowKey": "job", "status": "queued"})

    with paused(azurite_pid(private_azurite)):
        read, read_seconds = timed_failure(lambda: jobs.get_entity("app", "job"))
        query, query_seconds = timed_failure(lambda: list(jobs.query_entities("PartitionKey eq 'app'")))
        first_use, first_use_seconds = timed_failure(lambda: seam_tables.get("quota"))
        ping, ping_seconds = timed_failure(seam_tables.ping)

    for error in (read, query, first_use, ping):
        assert isinstance(error.__cause__, ServiceResponseError)  # a read timeout, chained
        assert error.status == 503
        assert error.headers["Retry-After"] == "5"
    for seconds in (read_seconds, query_seconds, first_use_seconds):
        assert seconds < REQUEST_BOUND_SECONDS
    assert ping_seconds < HEALTH_BOUND_SECONDS
    # Resumed, the same clients work again: no client is left broken by the outage.
    assert jobs.get_entity("app", "job")["status"] == "queued"
    seam_tables.get("quota").create_entity({"PartitionKey": "app", "RowKey": "day"})


def test_paused_blob_storage_answers_storage_unavailable_in_seconds(
    private_azurite: Azurite, seam_assets: VideoAssets
) -> None:
    seam_assets.upload_bytes("app/job/ref.png", b"png", content_type="image/png")

    with paused(azurite_pid(private_azurite)):
        download, download_seconds = timed_failure(lambda: seam_assets.download_bytes("app/job/ref.png"))
        upload, upload_seconds = timed_failure(
            lambda: seam_assets.upload_bytes("app/job2/ref.png", b"png", content_type="image/png")
        )

    for error, seconds in ((download, download_seconds), (upload, upload_seconds)):
        assert isinstance(error.__cause__, ServiceResponseError)
        assert seconds < REQUEST_BOUND_SECONDS
    assert seam_assets.download_bytes("app/job/ref.png") == (b"png", "image/png")


def test_a_video_upload_waits_out_a_pause_the_request_path_gives_up_on(
    private_azurite: Azurite, seam_assets: VideoAssets
) -> None:
    """Storage that stalls 10 s: a point read started with it gives up (its budget is about
    8 s), a video upload started with it waits (TRANSFER_TIMEOUTS), so a long copy is not
    failed by a slow moment."""
    payload = os.urandom(1024 * 1024)
    seam_assets.upload_bytes("app/job/warm", b"x", content_type="text/plain")  # container exists
    pid = azurite_pid(private_azurite)
    stall_seconds = 10.0
    point_read: list[tuple[str, float]] = []

    def read_during_the_stall() -> None:
        started = time.monotonic()
        try:
            seam_assets.exists("app/job/warm")
            point_read.append(("answered", time.monotonic() - started))
        except StorageUnavailable:
            point_read.append(("StorageUnavailable", time.monotonic() - started))

    with paused(pid):
        resume = threading.Timer(stall_seconds, os.kill, (pid, signal.SIGCONT))
        reader = threading.Thread(target=read_during_the_stall)
        resume.start()
        reader.start()
        try:
            started = time.monotonic()
            written = seam_assets.upload_stream(
                "app/job/video.mp4", io.BytesIO(payload), length=None, content_type="video/mp4"
            )
            upload_seconds = time.monotonic() - started
        finally:
            resume.cancel()
            reader.join()

    assert written == len(payload)
    assert upload_seconds >= stall_seconds - 1  # it did wait the stall out
    [(outcome, read_seconds)] = point_read
    assert outcome == "StorageUnavailable"
    assert read_seconds < stall_seconds
    assert seam_assets.download_bytes("app/job/video.mp4") == (payload, "video/mp4")


def test_a_copy_broken_off_upstream_keeps_its_error_when_storage_is_out_for_the_clean_up(
    private_azurite: Azurite, seam_assets: VideoAssets
) -> None:
    """The upstream stream breaks while storage hangs: the copy's clean-up cannot delete, and
    the caller still learns the upstream failure (retried as such), not a storage one."""
    seam_assets.upload_bytes("app/job/warm", b"x", content_type="text/plain")  # container exists
    pid = azurite_pid(private_azurite)

    class BreaksOffWhileStorageHangs:
        def plain_asset(self, video_id: str, variant: str = "video") -> None:
            return None  # only a stream can break off half-way

        @contextlib.contextmanager
        def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
            def chunks() -> Iterator[bytes]:
                yield b"\0" * 1024
                os.kill(pid, signal.SIGSTOP)
                raise UpstreamTransientError("stream cut off")

            yield chunks()

    try:
        with pytest.raises(UpstreamTransientError, match="stream cut off"):
            copy_upstream_asset(
                BreaksOffWhileStorageHangs(),  # type: ignore[arg-type]
                seam_assets,
                "upstream-1",
                "video",
                "app/job/video.mp4",
                "video/mp4",
            )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not seam_assets.exists("app/job/video.mp4")


def test_storage_down_answers_storage_unavailable_at_once() -> None:
    """Nothing listens on the storage ports: connection refused, retried once, then 503."""
    down = _connection_string(blob=free_port(), table=free_port())
    tables = Tables(table_service(down))
    assets = VideoAssets(blob_service(down), "videos")

    table_error, table_seconds = timed_failure(lambda: tables.get("jobs"))
    blob_error, blob_seconds = timed_failure(lambda: assets.exists("app/job/video.mp4"))

    assert isinstance(table_error.__cause__, ServiceRequestError)
    assert isinstance(blob_error.__cause__, ServiceRequestError)
    assert table_seconds < REQUEST_BOUND_SECONDS
    assert blob_seconds < REQUEST_BOUND_SECONDS


def test_answers_the_stores_rely_on_pass_the_seam_unchanged(
    seam_tables: Tables, seam_assets: VideoAssets
) -> None:
    rows = seam_tables.get("rows")
    rows.create_entity({"PartitionKey": "p", "RowKey": "r", "n": 1})
    stale = rows.get_entity("p", "r")
    rows.update_entity({"PartitionKey": "p", "RowKey": "r", "n": 2}, mode=UpdateMode.REPLACE)

    with pytest.raises(ResourceNotFoundError):
        rows.get_entity("p", "missing")
    with pytest.raises(ResourceExistsError):
        rows.create_entity({"PartitionKey": "p", "RowKey": "r"})
    with pytest.raises(ResourceModifiedError):
        rows.update_entity(
            stale,
            mode=UpdateMode.REPLACE,
            etag=stale.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    seam_assets.upload_bytes("app/job/a", b"a", content_type="text/plain")
    with pytest.raises(ResourceNotFoundError):
        seam_assets.download_bytes("app/job/missing")


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_after_the_retries_is_storage_unavailable(status: int) -> None:
    """Injected: Azurite cannot be made to answer 5xx. Each client tries exactly 1 + retries
    times (bounded retry), then raises StorageUnavailable rather than an HttpResponseError."""
    with _Failing(status) as server:
        failing = _connection_string(blob=server.port, table=server.port)
        table_error, _ = timed_failure(lambda: Tables(table_service(failing)).get("jobs"))
        table_tries = server.requests
        blob_error, _ = timed_failure(lambda: VideoAssets(blob_service(failing), "videos").exists("a/b/c"))
        blob_tries = server.requests - table_tries

    assert isinstance(table_error, StorageUnavailable)
    assert isinstance(blob_error, StorageUnavailable)
    assert table_tries == REQUEST_TIMEOUTS.retries + 1
    assert blob_tries == REQUEST_TIMEOUTS.retries + 1


def _connection_string(*, blob: int, table: int) -> str:
    account = f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY}"
    return (
        f"{account};BlobEndpoint=http://127.0.0.1:{blob}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{AZURITE_ACCOUNT};"
    )


class _Failing:
    """A loopback server answering every request with one 5xx status, counting requests."""

    def __init__(self, status: int) -> None:
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def _fail(self) -> None:
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _fail

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def __enter__(self) -> _Failing:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
