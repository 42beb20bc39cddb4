"""Small real images for tests, made with Pillow at run time."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(
    width: int, height: int, image_format: str = "PNG", color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=image_format)
    return buffer.getvalue()


def dimensions(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size
