"""Pixel dimensions of JPEG, PNG and WebP images, read from their headers (no imaging library)."""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "jpeg" | "png" | "webp"
    width: int
    height: int

    @property
    def size(self) -> str:
        """In the API's `WIDTHxHEIGHT` form."""
        return f"{self.width}x{self.height}"


class ImageError(ValueError):
    """The bytes are not a JPEG, PNG or WebP image with readable dimensions."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share
# the range but are not frames.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def image_info(data: bytes) -> ImageInfo:
    if data.startswith(b"\xff\xd8"):
        return ImageInfo("jpeg", *_jpeg_size(data))
    if data.startswith(PNG_SIGNATURE):
        return ImageInfo("png", *_png_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageInfo("webp", *_webp_size(data))
    raise ImageError("not a JPEG, PNG or WebP image")


def _png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk must come first: length(4) "IHDR" width(4) height(4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return _checked(width, height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageError("corrupt JPEG marker stream")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker == 0xD9:  # end of image before any frame
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF_MARKERS:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return _checked(width, height)
        position += 2 + length
    raise ImageError("JPEG without a frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        # Lossy: 3-byte frame tag, start code, then 14-bit width and height (top bits = scaling).
        width, height = struct.unpack("<HH", body[6:10])
        return _checked(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        # Lossless: signature byte, then width-1 and height-1 as 14-bit little-endian fields.
        bits = int.from_bytes(body[1:5], "little")
        return _checked((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(body) >= 10:
        # Extended: flags(1) reserved(3), then canvas width-1 and height-1 as 24-bit fields.
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return _checked(width, height)
    raise ImageError("WebP without a readable VP8/VP8L/VP8X header")


def _checked(width: int, height: int) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise ImageError("image with zero width or height")
    return width, height
