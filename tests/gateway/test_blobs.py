"""Uploads go in blocks, never as one whole-video PUT, and a copy is whole or absent; against Azurite."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from azure.storage.blob import BlobClient

from gateway.blobs import BLOCK_SIZE, VideoAssets, copy_upstream_asset
from gateway.errors import UpstreamTransientError
from gateway.providers import azure_openai
from gateway.providers.port import ProviderAccount, VideoRequest
from sorasim import SimulatorConfig, SoraSimulator
from tests.pipeline.upstream_proxy import VIDEO_CONTENT, Rule, UpstreamProxy


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


def test_a_copy_cut_off_half_way_leaves_no_blob(video_assets: VideoAssets) -> None:
    key = "blob-test-key"
    with (
        SoraSimulator(SimulatorConfig(job_seconds=0.5, api_key=key)) as simulator,
        UpstreamProxy(simulator.url) as proxy,
    ):
        sora = azure_openai.build(ProviderAccount("azure-openai", "azure-openai", proxy.url, api_key=key))
        video = sora.create(VideoRequest("sora-2", "A heron", 4, "720x1280", "9:16", "720p"))
        deadline = time.monotonic() + 20
        while sora.get(video.id).status != "completed":
            assert time.monotonic() < deadline, "the simulated job never completed"
            time.sleep(0.2)
        proxy.add(Rule("GET", VIDEO_CONTENT, cut=True, times=1))

        with pytest.raises(UpstreamTransientError):
            copy_upstream_asset(sora, video_assets, video.id, "video", "app/job/video.mp4", "video/mp4")
        assert not video_assets.exists("app/job/video.mp4")

        written = copy_upstream_asset(sora, video_assets, video.id, "video", "app/job/video.mp4", "video/mp4")
    assert written > 0
    assert video_assets.exists("app/job/video.mp4")
