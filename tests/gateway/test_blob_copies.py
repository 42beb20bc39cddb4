"""Copies into Blob Storage: by storage itself from a key-less link, streamed otherwise; against a
real Azurite (tests/conftest.py) and the provider simulator over real HTTP.

What Microsoft documents, and the gateway relies on (learn.microsoft.com/rest/api/storageservices,
and the Python SDK's BlobClient):

- Put Block From URL (x-ms-version 2018-03-28 and later): storage reads a new block's bytes from
  `x-ms-copy-source` itself, optionally one range of it (`x-ms-source-range`); the request has no
  body (Content-Length 0). Every block id of a blob has the same length, at most 64 bytes before
  base64. SDK: `stage_block_from_url(block_id, source_url, source_offset, source_length)`. The blob
  exists only once Put Block List (`commit_block_list`) names its blocks, in order.
- The source may be outside Azure, any object a plain GET can read (public, or a pre-signed
  link), copied only into block blobs (the Java SDK's BlockBlobStageBlockFromUrlOptions; the
  Azure Storage team's "Blob Storage Upload APIs" page).
- Put Blob From URL (2020-04-08 and later; SDK `upload_blob_from_url`): one request, a source of
  up to 5000 MiB. Copy Blob From URL takes only Azure blobs up to 256 MiB: not for a CDN.
- The gateway uses blocks for every size (gateway.blobs.copy_from_url): one path with no size
  limit to switch at, parallel ranged reads, a failed block retried alone, and the one of the two
  operations Azurite serves, so the tests below run the code Azure would.

What Azurite 3.37.0 (node_modules/azurite) does, read in dist/src/blob/handlers/BlockBlobHandler.js
and proven by the first test: `putBlobFromUrl` throws NotImplementedError (501
APINotImplemented); `stageBlockFromURL` works, but only from a source on the same Azurite: any
other host is refused, before any fetch, with 404 CannotVerifyCopySource and no word of the
source's own answer. So Azurite cannot copy a provider's CDN link (here the simulator's): the
gateway then streams it (test below), and the server-side copy is proven with a source Azurite can
read, one of its own blobs behind a read-only SAS URL, standing in for the CDN.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, cast

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient

from devhost.azurite import Azurite
from gateway import blobs
from gateway.blobs import BLOCK_SIZE, VideoAssets, blob_service, copy_upstream_asset
from gateway.errors import UpstreamError, UpstreamRejectedError, UpstreamTransientError
from gateway.providers import azure_openai
from gateway.providers.aimlapi import AimlApiProvider
from gateway.providers.port import PlainAsset, ProviderAccount, VideoRequest
from gateway.settings import AZURITE_ACCOUNT, AZURITE_KEY
from sorasim import SimulatorConfig, SoraSimulator
from sorasim.jobs import RETENTION_SECONDS
from tests.pipeline.upstream_proxy import VIDEO_CONTENT, Rule, UpstreamProxy

AIMLAPI_KEY = "copies-aimlapi-key-" + "k" * 24
SORA_KEY = "copies-sora-key"
MIB = 1024 * 1024
VIDEO = "app/job/video.mp4"


class LinkOnly:
    """A provider whose asset is at a plain link: a stand-in for a CDN that Azurite can read (see
    the module docstring). Its stream, used only if the gateway falls back to streaming, counts
    the bytes it yields: what passed through the function."""

    name = "link-only"

    def __init__(self, link: PlainAsset, content: bytes) -> None:
        self._link = link
        self._content = content
        self.opened = 0
        self.streamed = 0

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        return self._link

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        self.opened += 1
        yield self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self._content), MIB):
            piece = self._content[start : start + MIB]
            self.streamed += len(piece)
            yield piece


def blob_at(assets: VideoAssets, name: str) -> BlobClient:
    return BlobClient.from_blob_url(assets.read_url(name, timedelta(minutes=5)))


def azurite_link(assets: VideoAssets, content: bytes) -> PlainAsset:
    """`content` as a read-only SAS link into the same Azurite, the one source it reads."""
    assets.upload_bytes("cdn/source.mp4", content, content_type="application/octet-stream")
    return PlainAsset(assets.read_url("cdn/source.mp4", timedelta(minutes=5)), len(content))


@pytest.fixture
def small_url_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """1 MiB server-side blocks instead of 32 MiB: several blocks without a large video."""
    monkeypatch.setattr(blobs, "URL_BLOCK_SIZE", MIB)
    return MIB


@pytest.fixture(scope="module")
def simulator() -> Iterator[SoraSimulator]:
    # Videos of 6.5 blocks, so a streamed copy stages several blocks at once.
    config = SimulatorConfig(
        aimlapi_key=AIMLAPI_KEY,
        api_key=SORA_KEY,
        job_seconds=0.2,
        video_bytes=6 * BLOCK_SIZE + BLOCK_SIZE // 2,
    )
    with SoraSimulator(config) as running:
        yield running


@pytest.fixture
def aimlapi(simulator: SoraSimulator) -> Iterator[AimlApiProvider]:
    provider = AimlApiProvider(ProviderAccount("aimlapi", "aimlapi", simulator.url, api_key=AIMLAPI_KEY))
    yield provider
    provider.close()


def finished_aimlapi_video(provider: AimlApiProvider) -> str:
    video = provider.create(VideoRequest("google/veo-3.1-t2v", "A heron", 4, "1280x720", "16:9", "720p"))
    deadline = time.monotonic() + 20
    while provider.get(video.id).status != "completed":
        assert time.monotonic() < deadline, "the simulated job never completed"
        time.sleep(0.1)
    return video.id


def test_azurite_has_no_put_blob_from_url_and_reads_put_block_from_url_only_from_itself(
    azurite: Azurite, video_assets: VideoAssets, aimlapi: AimlApiProvider
) -> None:
    """The facts about Azurite the gateway's design and the other tests rest on (module docstring)."""
    own = azurite_link(video_assets, os.urandom(3000))
    cdn = aimlapi.plain_asset(finished_aimlapi_video(aimlapi))
    assert cdn is not None
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = own.url.split("/")[4]  # http://host/account/CONTAINER/cdn/source.mp4?sas
    target = service.get_blob_client(container, "app/job/probe.mp4")
    block_id = base64.b64encode(b"block-0").decode()

    with pytest.raises(HttpResponseError) as no_put_blob:
        target.upload_blob_from_url(own.url, overwrite=True)
    with pytest.raises(HttpResponseError) as foreign:
        target.stage_block_from_url(block_id, cdn.url, source_offset=0, source_length=1000)
    target.stage_block_from_url(block_id, own.url, source_offset=1000, source_length=1000)

    assert (no_put_blob.value.status_code, no_put_blob.value.error_code) == (501, "APINotImplemented")  # type: ignore[attr-defined]
    assert (foreign.value.status_code, foreign.value.error_code) == (404, "CannotVerifyCopySource")  # type: ignore[attr-defined]
    # Azurite says nothing of the source's own answer (Azure does, in this header).
    assert "x-ms-copy-source-status-code" not in getattr(foreign.value.response, "headers", {})
    _, uncommitted = target.get_block_list("uncommitted")
    assert [(block.id, block.size) for block in uncommitted] == [(block_id, 1000)]


def test_a_cdn_links_size_comes_from_a_one_byte_range(aimlapi: AimlApiProvider) -> None:
    """plain_asset learns the size storage needs from `Range: bytes=0-0` (Content-Range's total),
    which the simulated CDN answers with one byte, as CDNs do; other ranges are served exactly."""
    link = aimlapi.plain_asset(finished_aimlapi_video(aimlapi))
    assert link is not None
    whole = requests.get(link.url, timeout=30).content
    first = requests.get(link.url, headers={"Range": "bytes=0-0"}, timeout=30)
    tail = requests.get(link.url, headers={"Range": f"bytes={len(whole) - 10}-"}, timeout=30)
    past = requests.get(link.url, headers={"Range": f"bytes={len(whole)}-"}, timeout=30)

    assert link.size == len(whole) == 6 * BLOCK_SIZE + BLOCK_SIZE // 2
    assert (first.status_code, first.content, first.headers["Content-Range"]) == (
        206,
        whole[:1],
        f"bytes 0-0/{len(whole)}",
    )
    assert (tail.status_code, tail.content) == (206, whole[-10:])
    assert past.status_code == 416


def test_storage_copies_a_plain_link_itself_in_ordered_blocks_and_no_byte_passes_here(
    video_assets: VideoAssets, small_url_blocks: int
) -> None:
    payload = os.urandom(3 * small_url_blocks + 5)
    provider = LinkOnly(azurite_link(video_assets, payload), payload)

    written = copy_upstream_asset(provider, video_assets, "up-1", "video", VIDEO, "video/mp4")  # type: ignore[arg-type]

    blob = blob_at(video_assets, VIDEO)
    committed, _ = blob.get_block_list("committed")
    assert (provider.opened, provider.streamed) == (0, 0)  # the function read none of it
    assert written == len(payload)
    assert [block.size for block in committed] == [MIB, MIB, MIB, 5]
    assert blob.download_blob().readall() == payload
    assert blob.get_blob_properties().content_settings.content_type == "video/mp4"


def test_a_link_that_ends_short_of_its_size_leaves_no_blob(
    video_assets: VideoAssets, small_url_blocks: int
) -> None:
    """The link announced more than it holds (it changed after the size probe): storage stages a
    short last block, and the copy must not stand as the asset."""
    payload = os.urandom(2 * small_url_blocks + 5)
    announced = azurite_link(video_assets, payload)
    provider = LinkOnly(PlainAsset(announced.url, announced.size + 100), payload)

    with pytest.raises(UpstreamTransientError, match="copied"):
        copy_upstream_asset(provider, video_assets, "up-1", "video", VIDEO, "video/mp4")  # type: ignore[arg-type]

    assert not video_assets.exists(VIDEO)
    assert provider.opened == 0


def test_a_cdn_link_azurite_cannot_read_is_streamed_instead(
    video_assets: VideoAssets, aimlapi: AimlApiProvider
) -> None:
    """The real adapter and its simulated CDN: Azurite refuses a source on another host (module
    docstring), so the gateway streams the video itself, whole."""
    video_id = finished_aimlapi_video(aimlapi)
    with aimlapi.open_asset(video_id) as chunks:
        expected = b"".join(chunks)

    written = copy_upstream_asset(aimlapi, video_assets, video_id, "video", VIDEO, "video/mp4")

    assert written == len(expected)
    assert blob_at(video_assets, VIDEO).download_blob().readall() == expected


def test_a_cdn_that_answers_404_is_the_upstreams_refusal_and_leaves_no_blob(
    video_assets: VideoAssets, simulator: SoraSimulator, aimlapi: AimlApiProvider
) -> None:
    """The simulator's clock is moved past its retention, so its CDN answers 404 for the video, as
    a real CDN does for an expired link. An earlier attempt's blob is gone afterwards too."""
    video_id = finished_aimlapi_video(aimlapi)
    video_assets.upload_bytes(VIDEO, b"an earlier attempt", content_type="video/mp4")
    real_clock = simulator.state.clock
    simulator.state.clock = lambda: real_clock() + RETENTION_SECONDS + 60
    try:
        with pytest.raises(UpstreamRejectedError) as refused:
            copy_upstream_asset(aimlapi, video_assets, video_id, "video", VIDEO, "video/mp4")
    finally:
        simulator.state.clock = real_clock

    assert (refused.value.status, refused.value.code) == (404, "video_unavailable")
    assert not video_assets.exists(VIDEO)


class AzureAboutTheSource(ThreadingHTTPServer):
    """Blob Storage answering Put Block From URL as Azure does when the source itself refused:
    CannotVerifyCopySource, with the source's status in the error body (the REST spec's
    StorageError: CopySourceStatusCode, CopySourceErrorCode, CopySourceErrorMessage). An injected
    fault: Azurite never reaches a foreign source, so it never reports one (first test)."""

    def __init__(self, storage_status: int, source_status: int) -> None:
        answer = (
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>CannotVerifyCopySource</Code>'
            f"<Message>The source answered {source_status}.</Message>"
            f"<CopySourceStatusCode>{source_status}</CopySourceStatusCode>"
            "<CopySourceErrorCode>SourceRefused</CopySourceErrorCode></Error>"
        ).encode()
        self.block_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                if "comp=block" in self.path and self.headers.get("x-ms-copy-source"):
                    server.block_requests += 1
                    self._reply(storage_status, answer, "CannotVerifyCopySource")
                else:  # the container
                    self._reply(201, b"", None)

            def do_DELETE(self) -> None:
                self._reply(404, b"", "BlobNotFound")

            def _reply(self, status: int, body: bytes, code: str | None) -> None:
                self.send_response(status)
                if code:
                    self.send_header("x-ms-error-code", code)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.server_address[1]}/{AZURITE_ACCOUNT}"
        )


@pytest.mark.parametrize(
    ("storage_status", "source_status", "expected"),
    [
        (404, 404, UpstreamRejectedError),
        (403, 403, UpstreamRejectedError),
        (409, 503, UpstreamTransientError),
    ],
)
def test_what_the_source_answered_storage_decides_refusal_or_retry(
    storage_status: int, source_status: int, expected: type[Exception]
) -> None:
    """The CDN refusing storage (404, 403) is the upstream's permanent refusal; failing for now
    (5xx) is transient. Either way nothing is streamed instead: the source did answer."""
    with AzureAboutTheSource(storage_status, source_status) as storage:
        threading.Thread(target=storage.serve_forever, daemon=True).start()
        try:
            assets = VideoAssets(blob_service(storage.connection_string), "videos")
            provider = LinkOnly(PlainAsset("http://127.0.0.1:9/video.mp4", 3 * MIB), b"")

            with pytest.raises(expected) as failed:
                copy_upstream_asset(provider, assets, "up-1", "video", VIDEO, "video/mp4")  # type: ignore[arg-type]
        finally:
            storage.shutdown()

    assert isinstance(failed.value, UpstreamError)
    assert failed.value.status == source_status
    assert (provider.opened, storage.block_requests) == (0, 1)


def test_a_streamed_copy_sends_blocks_in_parallel_and_keeps_their_order(
    video_assets: VideoAssets, simulator: SoraSimulator
) -> None:
    """Azure OpenAI's content needs the key, so it streams: 7 blocks, staged 4 at a time."""
    sora = azure_openai.build(
        ProviderAccount("azure-openai", "azure-openai", simulator.url, api_key=SORA_KEY)
    )
    video = sora.create(VideoRequest("sora-2", "A heron", 4, "720x1280", "9:16", "720p"))
    deadline = time.monotonic() + 20
    while sora.get(video.id).status != "completed":
        assert time.monotonic() < deadline, "the simulated job never completed"
        time.sleep(0.1)
    expected = requests.get(
        f"{simulator.url}/openai/v1/videos/{video.id}/content", headers={"api-key": SORA_KEY}, timeout=30
    ).content

    written = copy_upstream_asset(sora, video_assets, video.id, "video", VIDEO, "video/mp4")

    blob = blob_at(video_assets, VIDEO)
    committed, _ = blob.get_block_list("committed")
    assert written == len(expected) == 6 * BLOCK_SIZE + BLOCK_SIZE // 2
    assert [block.size for block in committed] == [BLOCK_SIZE] * 6 + [BLOCK_SIZE // 2]
    assert blob.download_blob().readall() == expected


def test_a_stream_cut_off_after_several_blocks_leaves_no_blob(
    video_assets: VideoAssets, simulator: SoraSimulator
) -> None:
    """The proxy cuts the body half-way (about 13 MiB in: three blocks staged, maybe more in
    flight); nothing is committed, and the earlier attempt's blob is deleted."""
    with UpstreamProxy(simulator.url) as proxy:
        sora = azure_openai.build(
            ProviderAccount("azure-openai", "azure-openai", proxy.url, api_key=SORA_KEY)
        )
        video = sora.create(VideoRequest("sora-2", "A heron", 4, "720x1280", "9:16", "720p"))
        deadline = time.monotonic() + 20
        while sora.get(video.id).status != "completed":
            assert time.monotonic() < deadline, "the simulated job never completed"
            time.sleep(0.1)
        video_assets.upload_bytes(VIDEO, b"an earlier attempt", content_type="video/mp4")
        proxy.add(Rule("GET", VIDEO_CONTENT, cut=True, times=1))

        with pytest.raises(UpstreamTransientError):
            copy_upstream_asset(sora, video_assets, video.id, "video", VIDEO, "video/mp4")

    assert not video_assets.exists(VIDEO)


def test_a_stream_short_of_its_announced_length_commits_nothing(video_assets: VideoAssets) -> None:
    payload = os.urandom(2 * BLOCK_SIZE + 10)

    with pytest.raises(UpstreamTransientError, match="arrived"):
        video_assets.upload_stream(
            VIDEO, cast(IO[bytes], iter_reader(payload)), length=len(payload) + 1, content_type="video/mp4"
        )

    assert not video_assets.exists(VIDEO)


class iter_reader:
    """A one-way stream of `data` handing out at most 64 KiB a read, like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        size = 64 * 1024 if size < 0 else min(size, 64 * 1024)
        piece = bytes(self._data[self._at : self._at + size])
        self._at += len(piece)
        return piece
