"""Streaming a large upstream video into Blob Storage versus download-then-upload.

A 1 GiB video served by the Sora simulator (its own process) is copied into Azurite (its own
process) twice, in this process: first by the gateway's real copy path
(`gateway.blobs.copy_upstream_asset`, what the `store_video_assets` activity runs), then by a
naive baseline that downloads the whole body and uploads it. Prints throughput and the peak
memory growth of this process for each (peak RSS is reset between runs).

Targets (issue 3): streaming peak growth under 64 MiB, throughput at least 0.7x the baseline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from azure.storage.blob import ContentSettings

from devhost.azurite import Azurite
from devhost.net import wait_for_http
from gateway.blobs import UPLOAD_CONCURRENCY, VideoAssets, blob_service, copy_upstream_asset
from gateway.providers import azure_openai
from gateway.providers.port import ProviderAccount, VideoRequest

PROJECT_DIR = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
MIB = 1024 * 1024


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

            def streaming() -> int:
                return copy_upstream_asset(sora, assets, video.id, "video", "streamed.mp4", "video/mp4")

            def naive() -> int:
                body = requests.get(
                    f"{sim_url}/openai/v1/videos/{video.id}/content",
                    headers={"api-key": API_KEY},
                    timeout=600,
                ).content
                service.get_blob_client("bench", "naive.mp4").upload_blob(
                    body,
                    overwrite=True,
                    max_concurrency=UPLOAD_CONCURRENCY,
                    content_settings=ContentSettings(content_type="video/mp4"),
                )
                return len(body)

            stream_s, stream_bytes, stream_peak = measure(streaming)
            naive_s, naive_bytes, naive_peak = measure(naive)
        finally:
            azurite.stop()

    assert stream_bytes == naive_bytes == size, (stream_bytes, naive_bytes, size)
    ratio = naive_s / stream_s
    print(f"video size                        {size / MIB:.0f} MiB")
    print(
        f"streaming copy   {stream_s:7.1f} s  {size / MIB / stream_s:7.1f} MiB/s  peak RSS growth {stream_peak / MIB:7.1f} MiB"
    )
    print(
        f"download+upload  {naive_s:7.1f} s  {size / MIB / naive_s:7.1f} MiB/s  peak RSS growth {naive_peak / MIB:7.1f} MiB"
    )
    print(f"throughput ratio streaming/naive  {ratio:.2f}   (target >= 0.70)")
    print(f"streaming peak memory growth      {stream_peak / MIB:.1f} MiB   (target < 64 MiB)")
    met = ratio >= 0.7 and stream_peak < 64 * MIB
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
