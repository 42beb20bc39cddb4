"""Video assets in Blob Storage: streaming copies in, read-only SAS URLs out.

The Blob SDK is imported where it is used, not with this module: it is the heaviest import of
the app, and a cold worker indexes every function before any of them touches a blob.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, cast

from gateway import azure_sdk as sdk
from gateway.errors import StorageUnavailable, UpstreamTransientError
from gateway.providers.port import VideoProvider
from gateway.tables import REQUEST_TIMEOUTS, StorageTimeouts, guard_storage_call

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineRequest, PipelineResponse
    from azure.storage.blob import BlobServiceClient, UserDelegationKey

log = logging.getLogger(__name__)

# Blocks small enough that memory stays bounded (block size x concurrency), large enough
# that a 1 GiB video is a few hundred requests.
BLOCK_SIZE = 4 * 1024 * 1024
UPLOAD_CONCURRENCY = 4
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
        """Copy a readable stream into a block blob without holding it in memory; returns bytes written."""
        from azure.storage.blob import ContentSettings

        self._ensure_container()
        blob = self._service.get_blob_client(self._container, blob_name)
        counted = _CountingReader(stream)
        blob.upload_blob(
            counted,  # type: ignore[arg-type]
            length=length,
            overwrite=True,
            max_concurrency=UPLOAD_CONCURRENCY,
            content_settings=ContentSettings(content_type=content_type),
            **TRANSFER_TIMEOUTS.call_options(),
        )
        return counted.total

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


def copy_upstream_asset(
    provider: VideoProvider,
    assets: VideoAssets,
    upstream_id: str,
    variant: str,
    blob_name: str,
    content_type: str,
) -> int:
    """Stream one asset of the provider's job into a blob, chunk by chunk; returns the bytes copied.

    A stream that breaks off, or ends short of its announced length, is a transient upstream
    failure (the adapter raises UpstreamTransientError) and leaves no blob: a blob is the whole
    asset or absent.
    """
    try:
        with provider.open_asset(upstream_id, variant) as chunks:
            written = assets.upload_stream(
                blob_name, cast(IO[bytes], _ChunkReader(chunks)), length=None, content_type=content_type
            )
    except BaseException:
        _delete_partial(assets, blob_name)
        raise
    if not written:
        _delete_partial(assets, blob_name)
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
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class _CountingReader:
    """File-like wrapper that counts what the upload reads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.total += len(data)
        return data
