"""Playable MP4s and JPEG images made with ffmpeg, generated once per process and cached on disk."""

from __future__ import annotations

import atexit
import math
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

FRAMES_PER_SECOND = 8
"""Low on purpose: generation takes well under a second and the files stay small."""

FFMPEG_TIMEOUT_SECONDS = 120.0

MP4_BOX_HEADER = 8
MP4_LARGE_BOX_HEADER = 16  # 64-bit size form, needed once a box reaches 4 GiB


class MediaError(RuntimeError):
    """ffmpeg could not produce an asset."""


@dataclass(frozen=True)
class PaddedVideo:
    """An MP4 file followed by an all-zero top-level `free` box, so players ignore the padding."""

    path: Path
    file_size: int
    free_box_header: bytes
    zero_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.file_size + len(self.free_box_header) + self.zero_bytes


def pad_video(path: Path, target_bytes: int) -> PaddedVideo:
    """Plan a body of exactly `target_bytes` for the MP4 at `path`.

    No padding when the target is 0, not larger than the file, or too close to its size for
    the smallest box (8 bytes): an MP4 cannot carry fewer extra bytes and stay valid.
    """
    file_size = path.stat().st_size
    gap = target_bytes - file_size
    if gap < MP4_BOX_HEADER:
        return PaddedVideo(path, file_size, b"", 0)
    fits_32_bits = gap < 2**32
    header = struct.pack(">I4s", gap, b"free") if fits_32_bits else struct.pack(">I4sQ", 1, b"free", gap)
    return PaddedVideo(path, file_size, header, gap - len(header))


class MediaLibrary:
    """Assets keyed by what they depend on; each is built at most once, even under concurrency."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def video(self, size: str, seconds: int) -> Path:
        width, height = _dimensions(size)
        return self._ensure(
            f"video-{width}x{height}-{seconds}s.mp4",
            lambda output: [
                *_lavfi_input(f"testsrc2=size={width}x{height}:rate={FRAMES_PER_SECOND}:duration={seconds}"),
                # Sora's videos have sound, so ours carry a beeping tone.
                *_lavfi_input(f"sine=frequency=440:beep_factor=4:sample_rate=48000:duration={seconds}"),
                *("-map", "0:v", "-map", "1:a"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
                *("-c:a", "aac", "-b:a", "64k", "-t", str(seconds)),
                # moov before mdat, as a service streaming MP4s would deliver them.
                *("-movflags", "+faststart", "-f", "mp4", str(output)),
            ],
        )

    def thumbnail(self, size: str) -> Path:
        width, height = _dimensions(size)
        return self._ensure(
            f"thumbnail-{width}x{height}.jpg",
            lambda output: [
                *_lavfi_input(f"testsrc2=size={width}x{height}:rate={FRAMES_PER_SECOND}"),
                *_single_jpeg(output),
            ],
        )

    def spritesheet(self, size: str, seconds: int) -> Path:
        """One frame per second, scaled to a quarter, tiled four per row."""
        width, height = _dimensions(size)
        rows = math.ceil(seconds / 4)
        return self._ensure(
            f"spritesheet-{width}x{height}-{seconds}s.jpg",
            lambda output: [
                *_lavfi_input(f"testsrc2=size={width}x{height}:rate=1:duration={seconds}"),
                *("-vf", f"scale=iw/4:-2,tile=4x{rows}"),
                *_single_jpeg(output),
            ],
        )

    def _ensure(self, name: str, arguments: Callable[[Path], list[str]]) -> Path:
        final = self._root / name
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if final.exists():
                return final
            # Written under a temporary name and renamed, so a reader never sees half a file.
            partial = final.with_name(f"{final.stem}.{uuid.uuid4().hex}.partial{final.suffix}")
            _run_ffmpeg(arguments(partial))
            os.replace(partial, final)
            return final


def _run_ffmpeg(arguments: list[str]) -> None:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    try:
        # Fixed executable and arguments built from validated sizes and durations only.
        completed = subprocess.run(  # noqa: S603
            command + arguments, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MediaError(f"ffmpeg did not run: {error}") from error
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()[-500:]
        raise MediaError(f"ffmpeg failed ({completed.returncode}): {detail}")


def _lavfi_input(graph: str) -> list[str]:
    return ["-f", "lavfi", "-i", graph]


def _single_jpeg(output: Path) -> list[str]:
    return ["-frames:v", "1", "-q:v", "3", "-f", "image2", "-update", "1", str(output)]


def _dimensions(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)


_shared: MediaLibrary | None = None
_shared_guard = threading.Lock()


def shared_media_library() -> MediaLibrary:
    """The process-wide library, in a temporary folder removed when the process exits."""
    global _shared
    with _shared_guard:
        if _shared is None:
            root = Path(tempfile.mkdtemp(prefix="sorasim-media-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _shared = MediaLibrary(root)
        return _shared
