"""Uploads go in blocks, never as one whole-video PUT; against Azurite."""

from __future__ import annotations

import io
import os
from datetime import timedelta

from azure.storage.blob import BlobClient

from gateway.blobs import BLOCK_SIZE, VideoAssets


class OneWayStream(io.RawIOBase):
    """A non-seekable stream, like an HTTP response body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_video_under_the_sdks_single_put_size_is_still_sent_in_blocks(video_assets: VideoAssets) -> None:
    payload = os.urandom(5 * BLOCK_SIZE + 123)  # 20 MiB: the SDK's default would PUT it whole

    written = video_assets.upload_stream(
        "app/job/video.mp4", OneWayStream(payload), length=len(payload), content_type="video/mp4"
    )

    blob = BlobClient.from_blob_url(video_assets.read_url("app/job/video.mp4", timedelta(minutes=5)))
    committed, _ = blob.get_block_list("committed")
    assert written == len(payload)
    assert len(committed) == 6
    assert max(block.size for block in committed) <= BLOCK_SIZE
    assert blob.download_blob().readall() == payload
