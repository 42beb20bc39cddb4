"""Helpers for the simulator tests: waiting on jobs, making reference images, checking errors."""

from __future__ import annotations

import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import requests
from openai.types import Video

from sorasim import SoraSimulator

VIDEO_FIELDS = {
    "id",
    "object",
    "created_at",
    "completed_at",
    "expires_at",
    "error",
    "model",
    "progress",
    "prompt",
    "remixed_from_video_id",
    "seconds",
    "size",
    "status",
}


def wait_for_status(
    session: requests.Session, sim: SoraSimulator, video_id: str, statuses: set[str], timeout: float = 10.0
) -> Video:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = session.get(f"{sim.url}/openai/v1/videos/{video_id}", timeout=10)
        assert response.status_code == 200, response.text
        video = Video.model_validate(response.json())
        if video.status in statuses:
            return video
        time.sleep(0.05)
    raise AssertionError(f"{video_id} did not reach {statuses} within {timeout}s")


def finished_video(http: requests.Session, sim: SoraSimulator, **body: Any) -> Video:
    """Create a job with a short lifecycle and wait until it has completed or failed."""
    sim.update_config(job_seconds=0.3)
    response = http.post(
        f"{sim.url}/openai/v1/videos", json={"prompt": "a finished video", **body}, timeout=10
    )
    assert response.status_code == 200, response.text
    return wait_for_status(http, sim, response.json()["id"], {"completed", "failed"})


def assert_openai_error(
    response: requests.Response, status: int, code: str, param: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["param"] == param
    assert isinstance(error["message"], str)
    assert error["message"]


def png_bytes(width: int, height: int) -> bytes:
    """A valid, tiny grey PNG written by hand, so the header parser meets an independent encoder."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def ffmpeg_image(
    tmp_path: Path, width: int, height: int, suffix: str, *codec: str, translucent: bool = False
) -> bytes:
    """One solid frame encoded by ffmpeg (JPEG, WebP...) at the given size."""
    output = tmp_path / f"reference-{width}x{height}{suffix}"
    source = (
        f"color=c=teal@0.5:s={width}x{height},format=yuva420p"
        if translucent
        else f"color=c=teal:s={width}x{height}"
    )
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-nostdin", "-y"),
            *("-f", "lavfi", "-i", source),
            *("-frames:v", "1", *codec, "-update", "1", str(output)),
        ],
        check=True,
        timeout=60,
    )
    return output.read_bytes()
