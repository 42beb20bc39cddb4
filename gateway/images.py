"""Reference images for image-to-video: checked by content, decoded safely, fitted to the video size.

The upstream refuses a reference image whose dimensions differ from the requested video size, so
every accepted image leaves here exactly WIDTHxHEIGHT, in the format it arrived in.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAX_IMAGE_BYTES = 10 * 1024 * 1024
# A small file can declare enormous dimensions; decoding it would take gigabytes of memory.
MAX_IMAGE_PIXELS = 50_000_000
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


def prepare_reference_image(data: bytes, size: str) -> ReferenceImage:
    """Check, decode and fit `data` to `size` ("WIDTHxHEIGHT"), or raise the client's error."""
    width, height = _parse_size(size)
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
    content = _fit(data, _PIL_FORMATS[content_type], (width, height))
    return ReferenceImage(content=content, content_type=content_type, width=width, height=height)


def _parse_size(size: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(size)
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        raise InvalidRequest(f"'size' must look like 1280x720, got {size!r}.", param="size")
    return int(match[1]), int(match[2])


def _fit(data: bytes, pil_format: str, target: tuple[int, int]) -> bytes:
    try:
        with Image.open(io.BytesIO(data), formats=[pil_format]) as source:
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
        raise InvalidRequest(
            f"'{PARAM}' could not be decoded as an image (corrupt or truncated).",
            code="invalid_value",
            param=PARAM,
        ) from None


def _check_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(size)


def _too_many_pixels(size: tuple[int, int] | None = None) -> InvalidRequest:
    dimensions = f" is {size[0]}x{size[1]} pixels;" if size else " has too many pixels;"
    return InvalidRequest(
        f"'{PARAM}'{dimensions} at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted.",
        code="invalid_value",
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
