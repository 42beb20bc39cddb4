"""Video assets in Blob Storage: copies in (by storage itself from a key-less link, else streamed
through the function), read-only SAS URLs out.

The Blob SDK is imported where it is used, not with this module: it is the heaviest import of
the app, and a cold worker indexes every function before any of them touches a blob.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import random
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, cast

from gateway import azure_sdk as sdk
from gateway.errors import StorageUnavailable, UpstreamRejectedError, UpstreamTransientError
from gateway.providers.port import PlainAsset, VideoProvider
from gateway.tables import REQUEST_TIMEOUTS, StorageTimeouts, guard_storage_call

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.storage.blob import BlobClient, BlobServiceClient, UserDelegationKey

log = logging.getLogger(__name__)

# Blocks small enough that memory stays bounded (block size x concurrency), large enough
# that a 1 GiB video is a few hundred requests.
BLOCK_SIZE = 4 * 1024 * 1024
UPLOAD_CONCURRENCY = 4
# Blocks read ahead of the uploads: the reader fills them while the workers send, so neither
# waits for the other. Memory holds at most this many blocks (24 MiB), whatever the video's size.
BLOCKS_IN_MEMORY = UPLOAD_CONCURRENCY + 2
# A copy by storage itself (Put Block From URL) holds no byte here, so its blocks can be large:
# each is one request in which storage reads that range of the source (the service takes up to
# 4000 MiB a block); 32 MiB keeps a retried block cheap. Several at once, as storage reads them
# in parallel while this function only waits.
URL_BLOCK_SIZE = 32 * 1024 * 1024
URL_COPY_CONCURRENCY = 8
# Clocks of client and storage differ a little; a SAS that starts "now" can be refused.
CLOCK_SKEW = timedelta(minutes=5)
# A video's blocks (BLOCK_SIZE each, UPLOAD_CONCURRENCY at once) take longer to send and to be
# acknowledged than the request path's point reads, and a whole copy restarts when one block
# fails for good: a longer wait per try and more tries than REQUEST_TIMEOUTS.
TRANSFER_TIMEOUTS = StorageTimeouts(connect=10.0, read=60.0, retries=3, backoff=0.75)


@functools.cache
def _bounded_retry() -> type[Any]:
    """Storage's retry (it knows which answers are worth another try), with short jittered
    pauses instead of its default 15 s, and the storage seam around it: once its tries are
    spent, an outage becomes `StorageUnavailable` (see gateway.tables.StorageOutagePolicy; the
    Blob SDK takes no per-call policies, so the seam wraps the retry policy it does take).
    Built on first use, with the SDK."""
    from azure.storage.blob import LinearRetry

    class BoundedRetry(LinearRetry):
        def __init__(self, timeouts: StorageTimeouts) -> None:
            super().__init__(retry_total=timeouts.retries, retry_to_secondary=False)
            self._max_backoff = timeouts.backoff

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            return random.uniform(self._max_backoff / 3, self._max_backoff)  # noqa: S311 - jitter, not a secret

        def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
            return guard_storage_call(request, super().send)

    return BoundedRetry


def blob_service(
    connection_string: str | None = None,
    *,
    account_url: str | None = None,
    credential: TokenCredential | None = None,
) -> BlobServiceClient:
    """A Blob service client with the request timeouts, bounded retries and the storage seam,
    that uploads in BLOCK_SIZE blocks. The SDK's default would send anything up to 64 MiB as
    one PUT, holding the whole video in memory to do it."""
    options: dict[str, Any] = {
        "max_single_put_size": BLOCK_SIZE,
        "max_block_size": BLOCK_SIZE,
        "connection_timeout": REQUEST_TIMEOUTS.connect,
        "read_timeout": REQUEST_TIMEOUTS.read,
        "retry_policy": _bounded_retry()(REQUEST_TIMEOUTS),
    }
    from azure.storage.blob import BlobServiceClient

    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string, **options)
    if account_url is None:
        raise ValueError("a Blob service needs a connection string or an account URL")
    return BlobServiceClient(account_url=account_url, credential=credential, **options)


def asset_blob_name(app_id: str, job_id: str, asset: str) -> str:
    return f"{app_id}/{job_id}/{asset}"


class VideoAssets:
    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._service = service
        self._container = container
        self._container_ready = False
        self._signer = _SasSigner(service)

    def upload_stream(
        self, blob_name: str, stream: IO[bytes], *, length: int | None, content_type: str
    ) -> int:
        """Copy a readable stream into a block blob without holding it in memory; returns bytes
        written. A stream that ends short of `length` commits nothing and raises."""
        self._ensure_container()
        blob = self._service.get_blob_client(self._container, blob_name)
        block_ids, total = _stage_stream(blob, stream)
        if length is not None and total != length:
            raise UpstreamTransientError(f"{blob_name}: {total} of {length} bytes arrived")
        _commit(blob, block_ids, content_type)
        return total

    def copy_from_url(self, blob_name: str, source: PlainAsset, *, content_type: str) -> int:
        """Have storage copy a key-less URL into a block blob by itself (Put Block From URL, one
        ranged block each, then Put Block List): no byte passes through this function. Returns
        the blob's size.

        Raises CopySourceUnreachable when storage cannot read the source (Azurite reads only its
        own blobs; a storage firewall); UpstreamRejectedError when the source refused storage for
        good (404, 403), UpstreamTransientError when it failed for now (5xx, 429, a timeout)."""
        self._ensure_container()
        blob = self._service.get_blob_client(self._container, blob_name)
        ranges = [
            (offset, min(URL_BLOCK_SIZE, source.size - offset))
            for offset in range(0, source.size, URL_BLOCK_SIZE)
        ]
        block_ids = _block_ids(len(ranges))
        with _copy_source_errors(blob_name):
            # The first block alone: a source storage cannot read fails one request, not many.
            _stage_from_url(blob, block_ids[0], source.url, ranges[0])
            with ThreadPoolExecutor(URL_COPY_CONCURRENCY, thread_name_prefix="blob-from-url") as pool:
                staged = [
                    pool.submit(_stage_from_url, blob, block_id, source.url, where)
                    for block_id, where in zip(block_ids[1:], ranges[1:], strict=True)
                ]
                try:
                    for future in staged:
                        future.result()
                except BaseException:
                    for future in staged:  # the copy failed: the blocks not yet started never will
                        future.cancel()
                    raise
        _commit(blob, block_ids, content_type)
        size = int(blob.get_blob_properties(**TRANSFER_TIMEOUTS.call_options()).size)
        if size != source.size:
            # The source changed (or ended early) between the size probe and the copy.
            raise UpstreamTransientError(f"{blob_name}: storage copied {size} of {source.size} bytes")
        return size

    def upload_bytes(self, blob_name: str, content: bytes, *, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        self._ensure_container()
        self._service.get_blob_client(self._container, blob_name).upload_blob(
            content, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )

    def download_bytes(self, blob_name: str) -> tuple[bytes, str]:
        """A small blob's content and content type (reference images, not videos)."""
        download = self._service.get_blob_client(self._container, blob_name).download_blob()
        content_type = download.properties.content_settings.content_type or "application/octet-stream"
        return bytes(download.readall()), content_type

    def delete_all(self, *blob_names: str | None) -> None:
        """Delete these blobs; ones already gone are fine."""
        for name in blob_names:
            if name:
                with contextlib.suppress(sdk.ResourceNotFoundError):
                    self._service.get_blob_client(self._container, name).delete_blob(
                        delete_snapshots="include"
                    )

    def list_blobs(self) -> Iterator[tuple[str, datetime]]:
        """(name, last modified) of every blob in the container."""
        container = self._service.get_container_client(self._container)
        if not container.exists():
            return
        for blob in container.list_blobs():
            yield blob.name, blob.last_modified

    def exists(self, blob_name: str) -> bool:
        return bool(self._service.get_blob_client(self._container, blob_name).exists())

    def read_url(self, blob_name: str, ttl: timedelta, *, save_as: str | None = None) -> str:
        """A fresh read-only SAS URL for exactly this blob, valid for `ttl`.

        With `save_as`, the signed URL makes Storage answer `Content-Disposition: attachment`
        with that file name, so a browser following it saves the file instead of showing it
        (a page cannot fetch a cross-origin blob to save it itself)."""
        blob = self._service.get_blob_client(self._container, blob_name)
        disposition = f'attachment; filename="{save_as}"' if save_as else None
        token = self._signer.sign(self._container, blob_name, ttl, content_disposition=disposition)
        return f"{blob.url}?{token}"

    def _ensure_container(self) -> None:
        if self._container_ready:
            return
        with contextlib.suppress(sdk.ResourceExistsError):
            self._service.create_container(self._container)
        self._container_ready = True


class CopySourceUnreachable(Exception):
    """Storage could not read a copy's source by itself (and did not say the source refused):
    the asset is streamed through the function instead."""


def copy_upstream_asset(
    provider: VideoProvider,
    assets: VideoAssets,
    upstream_id: str,
    variant: str,
    blob_name: str,
    content_type: str,
) -> int:
    """Copy one asset of the provider's job into a blob; returns the bytes copied.

    An asset at a key-less link (the provider's CDN) is copied by storage itself; one that needs
    the account's credential, or that storage cannot reach, streams through here block by block.
    A copy that fails leaves no blob: a blob is the whole asset or absent. A stream that breaks
    off, or ends short of its announced length, is a transient upstream failure (the adapter
    raises UpstreamTransientError).
    """
    try:
        source = provider.plain_asset(upstream_id, variant)
        if source is not None and source.size > 0:
            try:
                return assets.copy_from_url(blob_name, source, content_type=content_type)
            except CopySourceUnreachable as error:
                # Blocks it staged are never committed: the streamed copy commits its own list.
                log.info(
                    "storage cannot copy %s of %s itself (%s); streaming it", variant, upstream_id, error
                )
        return _stream_asset(provider, assets, upstream_id, variant, blob_name, content_type)
    except BaseException:
        _delete_partial(assets, blob_name)
        raise


def _stream_asset(
    provider: VideoProvider,
    assets: VideoAssets,
    upstream_id: str,
    variant: str,
    blob_name: str,
    content_type: str,
) -> int:
    with provider.open_asset(upstream_id, variant) as chunks:
        written = assets.upload_stream(
            blob_name, cast(IO[bytes], _ChunkReader(chunks)), length=None, content_type=content_type
        )
    if not written:
        raise UpstreamTransientError(f"{variant} of {upstream_id}: no bytes arrived")
    return written


def _delete_partial(assets: VideoAssets, blob_name: str) -> None:
    """Delete what a failed copy left, without letting storage that is out meanwhile replace
    the copy's own error (the caller decides on that one: retry, wait, fail the job)."""
    try:
        assets.delete_all(blob_name)
    except StorageUnavailable:
        # An interrupted upload commits no block list, so no readable blob is left behind;
        # one an earlier attempt committed is overwritten by the next, or swept with the job's
        # assets (maintenance).
        log.warning("could not delete the partial copy %s: storage unavailable", blob_name)


def _block_ids(count: int) -> list[str]:
    """Ids in the blob's order, all of one length (the service requires it), under a prefix of
    this copy's own, so blocks another attempt staged on the same blob never mix in."""
    prefix = uuid.uuid4().hex[:16]
    return [_block_id(prefix, index) for index in range(count)]


def _block_id(prefix: str, index: int) -> str:
    return base64.b64encode(f"{prefix}-{index:06d}".encode()).decode()


def _commit(blob: BlobClient, block_ids: Sequence[str], content_type: str) -> None:
    """Put Block List: until it succeeds the blob is not there (or is the previous one whole)."""
    from azure.storage.blob import BlobBlock, ContentSettings

    blob.commit_block_list(
        [BlobBlock(block_id) for block_id in block_ids],
        content_settings=ContentSettings(content_type=content_type),
        **TRANSFER_TIMEOUTS.call_options(),
    )


def _stage_stream(blob: BlobClient, stream: IO[bytes]) -> tuple[list[str], int]:
    """Stage the stream's blocks, UPLOAD_CONCURRENCY at once, while this thread reads the next
    ones; at most BLOCKS_IN_MEMORY blocks exist at a time. Returns the ids in order and the total.

    Our own pipeline rather than the SDK's upload_blob: the SDK reads the next block only after an
    upload finished, so a freed worker waits for the upstream; here up to two blocks are read
    ahead (BLOCKS_IN_MEMORY - UPLOAD_CONCURRENCY), and every block carries its MD5 (see stage)."""
    room = threading.BoundedSemaphore(BLOCKS_IN_MEMORY)
    block_ids: list[str] = []
    staged: list[Future[None]] = []
    total = 0
    prefix = uuid.uuid4().hex[:16]

    def stage(block_id: str, block: bytes) -> None:
        try:
            # validate_content: each block carries its MD5 and storage refuses one damaged on the
            # way (the retry sends it again). Azurite then checks that MD5 natively instead of
            # computing a CRC64 of the block in JavaScript, which triples its ingest (bench/copy).
            blob.stage_block(
                block_id, block, length=len(block), validate_content=True, **TRANSFER_TIMEOUTS.call_options()
            )
        finally:
            room.release()

    with ThreadPoolExecutor(UPLOAD_CONCURRENCY, thread_name_prefix="blob-upload") as pool:
        try:
            while True:
                room.acquire()
                block = _read_block(stream)
                if not block or _first_failure(staged):
                    room.release()
                    break
                block_id = _block_id(prefix, len(block_ids))
                block_ids.append(block_id)
                total += len(block)
                staged.append(pool.submit(stage, block_id, block))
                del block  # the worker holds the only reference: freed once sent
            for future in staged:
                future.result()
        except BaseException:
            for future in staged:
                future.cancel()
            raise
    return block_ids, total


def _first_failure(staged: Sequence[Future[None]]) -> bool:
    """True once a block failed: reading more would only be thrown away (result() raises it)."""
    return any(future.done() and future.exception() is not None for future in staged[-BLOCKS_IN_MEMORY * 2 :])


def _read_block(stream: IO[bytes]) -> bytes:
    """BLOCK_SIZE bytes, fewer only at the end: a raw stream may return less than asked."""
    parts: list[bytes] = []
    wanted = BLOCK_SIZE
    while wanted:
        part = stream.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _stage_from_url(blob: BlobClient, block_id: str, url: str, where: tuple[int, int]) -> None:
    offset, length = where
    blob.stage_block_from_url(
        block_id, url, source_offset=offset, source_length=length, **TRANSFER_TIMEOUTS.call_options()
    )


# Where storage reports what the source itself answered a copy: the REST spec's StorageError
# carries CopySourceStatusCode (and CopySourceErrorCode, which the SDK's retry policy reads from
# x-ms-copy-source-error-code); the status is read from the matching header, else from the body.
_SOURCE_STATUS_HEADER = "x-ms-copy-source-status-code"
_SOURCE_STATUS_IN_BODY = re.compile(r"<CopySourceStatusCode>\s*(\d{3})\s*<")


@contextlib.contextmanager
def _copy_source_errors(blob_name: str) -> Iterator[None]:
    """Storage's answers about a copy's source, in the port's terms (see VideoAssets.copy_from_url)."""
    try:
        yield
    except sdk.HttpResponseError as error:
        raise _source_error(blob_name, error) from error


def _source_error(blob_name: str, error: HttpResponseError) -> Exception:
    status, code = error.status_code, getattr(error, "error_code", None)  # the Storage SDK sets it
    if status == 501:
        return CopySourceUnreachable(f"storage does not copy from a URL ({code})")
    if code != "CannotVerifyCopySource":
        return error
    source_status = _source_status(error)
    if source_status is None:
        # Storage could not reach or read the source, and said nothing of the source's answer.
        return CopySourceUnreachable(f"storage answered {status} CannotVerifyCopySource")
    if source_status in (408, 429) or source_status >= 500:
        return UpstreamTransientError(
            f"{blob_name}: the source answered storage {source_status}", status=source_status
        )
    return UpstreamRejectedError(
        f"The asset is not available ({source_status}).", code="asset_unavailable", status=source_status
    )


def _source_status(error: HttpResponseError) -> int | None:
    response = error.response
    if response is None:
        return None
    headers: dict[str, str] = getattr(response, "headers", {})
    raw = headers.get(_SOURCE_STATUS_HEADER)
    if raw is None:
        with contextlib.suppress(Exception):
            found = _SOURCE_STATUS_IN_BODY.search(response.text())
            raw = found.group(1) if found else None
    return int(raw) if raw and raw.isdigit() else None


class _SasSigner:
    """Signs with the account key when there is one (Azurite), else with a user delegation key."""

    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def sign(
        self, container: str, blob_name: str, ttl: timedelta, *, content_disposition: str | None = None
    ) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = datetime.now(UTC)
        common = {
            "account_name": self._service.account_name,
            "container_name": container,
            "blob_name": blob_name,
            "permission": BlobSasPermissions(read=True),
            "start": now - CLOCK_SKEW,
            "expiry": now + ttl,
            "protocol": "https" if self._service.url.startswith("https") else "https,http",
            "content_disposition": content_disposition,
        }
        account_key = getattr(self._service.credential, "account_key", None)
        if account_key:
            return generate_blob_sas(account_key=account_key, **common)  # type: ignore[arg-type]
        return generate_blob_sas(user_delegation_key=self._user_delegation_key(now, ttl), **common)  # type: ignore[arg-type]

    def _user_delegation_key(self, now: datetime, ttl: timedelta) -> UserDelegationKey:
        # One delegation key serves many SAS URLs; ask for a new one only when it would
        # expire before a SAS signed now.
        with self._lock:
            if self._delegation_key is None or self._delegation_expiry < now + ttl:
                self._delegation_expiry = now + max(ttl, timedelta(days=1))
                self._delegation_key = self._service.get_user_delegation_key(
                    now - CLOCK_SKEW, self._delegation_expiry
                )
            return self._delegation_key


class _ChunkReader:
    """File-like view of an iterator of chunks, for the blob upload's reads."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        # Gather the chunks, then join once: appending chunk by chunk would copy a block over
        # and over.
        parts, held = [self._buffer], len(self._buffer)
        while size < 0 or held < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            held += len(chunk)
        data = b"".join(parts) if len(parts) > 1 else self._buffer
        if size < 0 or len(data) <= size:
            self._buffer = b""
            return data
        self._buffer = data[size:]
        return data[:size]
