"""Reference images for image-to-video: checked by content, decoded safely, fitted to the video size.

The upstream refuses a reference image whose dimensions differ from the requested video size, so
every accepted image leaves here exactly WIDTHxHEIGHT, in the format it arrived in.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    # Pillow is imported where images are decoded, never at start-up: most requests carry none,
    # and importing it would lengthen every cold start.
    from PIL import Image

MAX_IMAGE_BYTES = 10 * 1024 * 1024
# A small file can declare enormous dimensions, and decoding costs 4 bytes a pixel and more. The
# largest video is 1920x1080 (2.1 MP); 4096x4096 (16.8 MP, 64 MiB of RGBA once decoded) takes
# 4K UHD frames and 12 MP phone photos with room to spare, while a 7000x7000 PNG (49 MP, the
# reviewed 400-600 MB decode) is refused from its header.
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
JPEG_QUALITY = 92
WEBP_QUALITY = 92
PARAM = "input_reference"

_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
# Orientations 5-8 swap width and height when applied.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ReferenceImage:
    """An image ready to send upstream: exactly the video's size, type known from its content."""

    content: bytes
    content_type: str
    width: int
    height: int

    @property
    def filename(self) -> str:
        return f"reference.{_EXTENSIONS[self.content_type]}"


def sniff_image_type(data: bytes) -> str | None:
    """The image type from magic bytes only: a declared type or file name proves nothing."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel."""

    content_type: str
    width: int
    height: int


def check_image_header(data: bytes) -> ImageHeader:
    """Size in bytes, type by content and dimensions, from the header alone (no Pillow, no
    decoding): cheap enough to run before any quota is taken. Raises the client's error."""
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(
            f"'{PARAM}' is {len(data)} bytes; at most {MAX_IMAGE_BYTES} bytes (10 MiB) are accepted.",
            code="image_too_large",
            param=PARAM,
        )
    content_type = sniff_image_type(data)
    if content_type is None:
        raise UnsupportedMediaType(
            f"'{PARAM}' must be a JPEG, PNG or WebP image.", code="unsupported_image_type", param=PARAM
        )
    dimensions = read_dimensions(data, content_type)
    if dimensions is None:
        raise _undecodable()
    _check_pixels(dimensions)
    return ImageHeader(content_type, *dimensions)


def prepare_reference_image(data: bytes, size: str) -> ReferenceImage:
    """Check, decode and fit `data` to `size` ("WIDTHxHEIGHT"), or raise the client's error."""
    width, height = _parse_size(size)
    header = check_image_header(data)
    content = _fit(data, _PIL_FORMATS[header.content_type], (width, height))
    return ReferenceImage(content=content, content_type=header.content_type, width=width, height=height)


def _parse_size(size: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(size)
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        raise InvalidRequest(f"'size' must look like 1280x720, got {size!r}.", param="size")
    return int(match[1]), int(match[2])


def _fit(data: bytes, pil_format: str, target: tuple[int, int]) -> bytes:
    from PIL import ExifTags, Image, ImageOps

    try:
        with Image.open(io.BytesIO(data), formats=[pil_format]) as source:
            # Pillow read the header itself: should it see other dimensions than ours, its own
            # count must pass too before anything is decoded.
            _check_pixels(source.size)
            orientation = source.getexif().get(ExifTags.Base.Orientation, 1)
            animated = getattr(source, "n_frames", 1) > 1
            if source.size == target and orientation == 1 and not animated:
                source.load()  # a truncated file must fail here, not upstream
                return data
            if pil_format == "JPEG":
                _draft(source, target, orientation)
            icc_profile = source.info.get("icc_profile") if source.mode in ("RGB", "RGBA") else None
            oriented = ImageOps.exif_transpose(source)
        fitted = ImageOps.fit(_encodable(oriented, pil_format), target, method=Image.Resampling.LANCZOS)
        # Resizing copies `info`, and some encoders read EXIF, XMP or comments from it: start
        # clean so no location or device metadata travels upstream.
        fitted.info = {}
        return _encode(fitted, pil_format, icc_profile)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own limit is above ours, so this only fires for absurd headers.
        raise _too_many_pixels() from None
    except InvalidRequest:
        raise
    except Exception:
        # Hostile input makes Pillow's plugins raise many types (OSError, SyntaxError, struct.error,
        # ValueError...); every one of them is the client's broken image, never a server fault.
        raise _undecodable() from None


def _undecodable() -> InvalidRequest:
    return InvalidRequest(
        f"'{PARAM}' could not be decoded as an image (corrupt or truncated).",
        code="invalid_value",
        param=PARAM,
    )


def _check_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(size)


def _too_many_pixels(size: tuple[int, int] | None = None) -> InvalidRequest:
    dimensions = f" is {size[0]}x{size[1]} pixels;" if size else " has too many pixels;"
    return InvalidRequest(
        f"'{PARAM}'{dimensions} at most {MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}, "
        f"{MAX_IMAGE_PIXELS / 1_000_000:.1f} megapixels) are accepted.",
        code="image_too_large",
        param=PARAM,
    )


def _draft(source: Image.Image, target: tuple[int, int], orientation: int) -> None:
    """Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 while staying at least the cover size."""
    stored_target = target[::-1] if orientation in _TRANSPOSING_ORIENTATIONS else target
    scale = max(stored_target[0] / source.width, stored_target[1] / source.height)
    if scale < 1:
        source.draft(None, (math.ceil(source.width * scale), math.ceil(source.height * scale)))


def _encodable(image: Image.Image, pil_format: str) -> Image.Image:
    """A mode the format stores and that resizes with real filtering (palettes would not)."""
    if pil_format == "JPEG":
        return image if image.mode == "RGB" else image.convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    wanted = "RGBA" if has_alpha else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _encode(image: Image.Image, pil_format: str, icc_profile: bytes | None) -> bytes:
    options: dict[str, object] = {}
    if icc_profile:
        # A colour profile is not personal metadata, and dropping it shifts wide-gamut colours.
        options["icc_profile"] = icc_profile
    if pil_format == "JPEG":
        options["quality"] = JPEG_QUALITY
    elif pil_format == "WEBP":
        options["quality"] = WEBP_QUALITY
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


# --- dimensions from the header, without Pillow ------------------------------------------------------
# Pillow's own open is lazy but not free: its WebP plugin has libwebp allocate the whole canvas
# before the size can be checked. These readers look at a few bytes per format instead.


def read_dimensions(data: bytes, content_type: str) -> tuple[int, int] | None:
    """(width, height) as the header declares them, or None when the header is not readable."""
    try:
        if content_type == "image/png":
            return _png_dimensions(data)
        if content_type == "image/webp":
            return _webp_dimensions(data)
        return _jpeg_dimensions(data)
    except (struct.error, IndexError):
        return None  # cut short inside the header


def _png_dimensions(data: bytes) -> tuple[int, int] | None:
    # The signature, then IHDR first of all chunks: length, type, width, height (big-endian).
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk, body = data[12:16], 20
    if chunk == b"VP8X":  # extended: the canvas, 24-bit little-endian, minus one
        return (
            int.from_bytes(data[body + 4 : body + 7], "little") + 1,
            int.from_bytes(data[body + 7 : body + 10], "little") + 1,
        )
    if chunk == b"VP8 ":  # lossy: a frame tag, a start code, then 14-bit sizes
        if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", data, body + 6)
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L":  # lossless: a signature byte, then 14-bit sizes minus one
        if data[body] != 0x2F:
            return None
        bits = int.from_bytes(data[body + 1 : body + 5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
# Start-of-frame markers carry the dimensions; C4 (Huffman), C8 (reserved) and CC (arithmetic
# coding) share the range but are not frames.
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_START_OF_SCAN, _JPEG_END = 0xDA, 0xD9


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """The largest frame declared before the first scan: a decoder may use any of them."""
    largest: tuple[int, int] | None = None
    position = 2
    while position < len(data):
        if data[position] != 0xFF:
            return None
        while data[position] == 0xFF:  # fill bytes may pad any marker
            position += 1
        marker = data[position]
        position += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (_JPEG_START_OF_SCAN, _JPEG_END):
            break
        (length,) = struct.unpack_from(">H", data, position)
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack_from(">HH", data, position + 3)
            if largest is None or width * height > largest[0] * largest[1]:
                largest = (int(width), int(height))
        position += length
    return largest
