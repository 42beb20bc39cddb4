"""Real image files built with Pillow (and one hand-made PNG header) for the reference-image tests."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image, ImageDraw

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}

GREEN = (0, 160, 0)
RED = (220, 0, 0)
BLUE = (0, 0, 220)


def encode(image: Image.Image, content_type: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=FORMATS[content_type], **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def banded(width: int, height: int, band: int) -> Image.Image:
    """Green, with red bands along the top and bottom edges and blue bands along the left and right."""
    image = Image.new("RGB", (width, height), GREEN)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, band - 1), fill=RED)
    draw.rectangle((0, height - band, width - 1, height - 1), fill=RED)
    draw.rectangle((0, band, band - 1, height - band - 1), fill=BLUE)
    draw.rectangle((width - band, band, width - 1, height - band - 1), fill=BLUE)
    return image


def halves(width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (width, height), left)
    ImageDraw.Draw(image).rectangle((width // 2, 0, width - 1, height - 1), fill=right)
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A syntactically valid PNG declaring huge dimensions, with almost no pixel data behind them."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def close_to(actual: Any, expected: tuple[int, ...], tolerance: int = 12) -> bool:
    """Lossy codecs shift colours a little; a wrong region is off by far more."""
    return all(abs(int(a) - b) <= tolerance for a, b in zip(actual, expected, strict=False))
