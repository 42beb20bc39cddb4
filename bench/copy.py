"""Copying a large upstream video into Blob Storage: streamed, naive, and by storage itself.

A 1 GiB video served by the Sora simulator (its own process) is copied into Azurite (its own
process) three ways, in this process, each through the gateway's real copy path
(`gateway.blobs.copy_upstream_asset`, what the `store_video_assets` activity runs) except the
baseline:

- streaming: Azure OpenAI's content needs the account's key, so the gateway streams it, block by
  block, through the function;
- naive: the baseline, which downloads the whole body, then uploads it;
- from URL: a key-less link, copied by storage itself (Put Block From URL in ranged blocks, then
  Put Block List). Azurite reads a copy source only from itself (it refuses any other host, see
  docs/architecture.md), so the link here is a read-only SAS URL of the naive run's blob in the
  same Azurite, standing in for a provider's CDN; the gateway's code is the same either way.

Prints, for each, the time, throughput, the peak memory growth of this process (peak RSS is reset
between runs) and the bytes that passed through the function (what the provider's stream
yielded, or the naive body).

Targets: streaming throughput at least 2x the naive one and its peak growth under 64 MiB; the
from-URL copy moves no byte through the function and stores the whole video.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path

import requests
from azure.storage.blob import ContentSettings

from devhost.azurite import Azurite
from devhost.net import wait_for_http
from gateway.blobs import UPLOAD_CONCURRENCY, VideoAssets, blob_service, copy_upstream_asset
from gateway.providers import azure_openai
from gateway.providers.port import Capabilities, PlainAsset, ProviderAccount, VideoProvider, VideoRequest

PROJECT_DIR = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
MIB = 1024 * 1024


class Counted:
    """A provider as the copy sees it, counting the bytes its asset stream yields: what passed
    through the function. `link` replaces the provider's own answer to plain_asset."""

    def __init__(self, provider: VideoProvider, link: PlainAsset | None = None) -> None:
        self._provider = provider
        self._link = link
        self.bytes_through = 0
        self.name = provider.name

    @property
    def capabilities(self) -> Capabilities:
        return self._provider.capabilities

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        return self._link

    @contextmanager
    def open_asset(self, video_id: str, variant: str = "video") -> Iterator[Iterator[bytes]]:
        opened: AbstractContextManager[Iterator[bytes]] = self._provider.open_asset(video_id, variant)
        with opened as chunks:
            yield self._count(chunks)

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.bytes_through += len(chunk)
            yield chunk


def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    Path("/proc/self/clear_refs").write_text("5")


def measure(run: Callable[[], int]) -> tuple[float, int, int]:
    """(seconds, bytes copied, peak RSS growth in bytes) of one run."""
    reset_peak_rss()
    baseline = rss_bytes("VmRSS")
    started = time.perf_counter()
    copied = run()
    elapsed = time.perf_counter() - started
    return elapsed, copied, rss_bytes("VmHWM") - baseline


@contextmanager
def simulator(video_bytes: int) -> Iterator[str]:
    env = {
        **os.environ,
        "SORA_SIM_VIDEO_BYTES": str(video_bytes),
        "SORA_SIM_JOB_SECONDS": "1",
        "SORA_SIM_API_KEY": API_KEY,
    }
    process = subprocess.Popen(
        # Port 0: the simulator binds a free port itself and prints it (no probe to lose).
        [sys.executable, "-m", "sorasim", "--port", "0"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
        wait_for_http(f"{url}/_sim/health", timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp, simulator(size) as sim_url:
        azurite = Azurite(PROJECT_DIR, Path(tmp) / "azurite")
        azurite.start()
        try:
            service = blob_service(azurite.connection_string)  # the gateway's upload settings, for both runs
            assets = VideoAssets(service, "bench")
            sora = azure_openai.build(
                ProviderAccount("azure-openai", "azure-openai", sim_url, api_key=API_KEY)
            )
            video = sora.create(VideoRequest("sora-2", "bench", 4, "720x1280", "9:16", "720p"))
            while sora.get(video.id).status != "completed":
                time.sleep(0.5)

            streamed = Counted(sora)

            def streaming() -> int:
                return copy_upstream_asset(streamed, assets, video.id, "video", "streamed.mp4", "video/mp4")  # type: ignore[arg-type]

            def naive(blob_name: str, *, md5: bool) -> Callable[[], int]:
                def run() -> int:
                    body = requests.get(
                        f"{sim_url}/openai/v1/videos/{video.id}/content",
                        headers={"api-key": API_KEY},
                        timeout=600,
                    ).content
                    service.get_blob_client("bench", blob_name).upload_blob(
                        body,
                        overwrite=True,
                        max_concurrency=UPLOAD_CONCURRENCY,
                        validate_content=md5,
                        content_settings=ContentSettings(content_type="video/mp4"),
                    )
                    return len(body)

                return run

            stream_s, stream_bytes, stream_peak = measure(streaming)
            naive_s, naive_bytes, naive_peak = measure(naive("naive.mp4", md5=False))
            # For a fair reading: the streaming copy's blocks carry their MD5 (see gateway.blobs),
            # and most of its gain on Azurite comes from that; the same baseline with MD5 shows
            # what the overlapping pipeline itself adds.
            md5_s, _, md5_peak = measure(naive("naive-md5.mp4", md5=True))
            # The stand-in CDN link: the naive run's blob, which Azurite can read itself.
            link = PlainAsset(assets.read_url("naive.mp4", timedelta(hours=1)), naive_bytes)
            by_storage = Counted(sora, link)

            def from_url() -> int:
                return copy_upstream_asset(by_storage, assets, video.id, "video", "from-url.mp4", "video/mp4")  # type: ignore[arg-type]

            url_s, url_bytes, url_peak = measure(from_url)
            url_stored = service.get_blob_client("bench", "from-url.mp4").get_blob_properties().size
        finally:
            azurite.stop()

    assert stream_bytes == naive_bytes == url_bytes == size, (stream_bytes, naive_bytes, url_bytes, size)
    ratio = naive_s / stream_s
    through = {
        "streaming": streamed.bytes_through,
        "naive": naive_bytes,
        "from URL": by_storage.bytes_through,
    }
    print(f"video size                        {size / MIB:.0f} MiB")
    for name, seconds, peak in (
        ("streaming copy ", stream_s, stream_peak),
        ("download+upload", naive_s, naive_peak),
        ("the same, MD5  ", md5_s, md5_peak),
        ("from URL       ", url_s, url_peak),
    ):
        print(
            f"{name}  {seconds:7.1f} s  {size / MIB / seconds:7.1f} MiB/s  peak RSS growth {peak / MIB:7.1f} MiB"
        )
    for name, count in through.items():
        print(f"bytes through the function, {name:<10} {count:>12,d}")
    print(f"throughput ratio streaming/naive  {ratio:.2f}   (target >= 2.00)")
    print(
        f"  against the naive copy with MD5 {md5_s / stream_s:.2f}   (for information: the pipeline's own share)"
    )
    print(f"streaming peak memory growth      {stream_peak / MIB:.1f} MiB   (target < 64 MiB)")
    print(
        f"from-URL copy                     {url_s:.1f} s, {url_stored:,d} bytes stored   (target: 0 bytes through, all stored)"
    )
    met = (
        ratio >= 2.0
        and stream_peak < 64 * MIB
        and streamed.bytes_through == size
        and by_storage.bytes_through == 0
        and url_stored == size
    )
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
