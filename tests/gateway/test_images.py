"""Reference images with real Pillow: type by content, limits read from the header, corrupt input,
and the exact fit."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from gateway.errors import ApiError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_SIDE,
    ImageHeader,
    ReferenceImage,
    check_image_header,
    prepare_reference_image,
    sniff_image_type,
)
from tests.gateway.images_factory import (
    BLUE,
    FORMATS,
    GREEN,
    RED,
    banded,
    close_to,
    decode,
    encode,
    halves,
    png_header_only,
)

TYPES = list(FORMATS)


def assert_error(
    error: pytest.ExceptionInfo[ApiError], status: int, code: str, param: str = "input_reference"
) -> None:
    assert (error.value.status, error.value.code, error.value.param) == (status, code, param)
    assert error.value.message


# --- type by content --------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", TYPES)
def test_each_type_is_recognised_by_its_bytes(content_type: str) -> None:
    assert sniff_image_type(encode(Image.new("RGB", (8, 8)), content_type)) == content_type


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, I am a text file",
        b"GIF89a\x01\x00\x01\x00",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\xff\xd8",
    ],
    ids=["empty", "text", "gif", "wav", "short-jpeg"],
)
def test_other_bytes_are_not_an_image_type(data: bytes) -> None:
    assert sniff_image_type(data) is None


def test_type_comes_from_the_content_alone() -> None:
    """A PNG uploaded as `cat.jpg` with `Content-Type: image/jpeg` is still a PNG: the function is
    given bytes only, so neither the name nor the declared type can sway it."""
    png_named_jpg = encode(Image.new("RGB", (100, 100), GREEN), "image/png")
    prepared = prepare_reference_image(png_named_jpg, "64x48")
    assert prepared.content_type == "image/png"
    assert prepared.filename == "reference.png"
    assert decode(prepared.content).format == "PNG"


@pytest.mark.parametrize(
    "data",
    [b"just some text, not an image", b"GIF89a" + b"\x00" * 100, b""],
    ids=["text", "gif", "empty"],
)
def test_unsupported_types_are_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        prepare_reference_image(data, "1280x720")
    assert_error(refused, 415, "unsupported_image_type")


# --- limits and broken input ------------------------------------------------------------------------


def test_more_than_10_mib_is_413_and_exactly_10_mib_is_fine() -> None:
    png = encode(Image.new("RGB", (1280, 720), GREEN), "image/png")
    # Bytes after IEND are ignored by decoders, so this is a valid 10 MiB PNG.
    at_limit = png + b"\x00" * (MAX_IMAGE_BYTES - len(png))
    assert prepare_reference_image(at_limit, "1280x720").content == at_limit
    with pytest.raises(PayloadTooLarge) as refused:
        prepare_reference_image(at_limit + b"\x00", "1280x720")
    assert_error(refused, 413, "image_too_large")


def corrupt_inputs() -> dict[str, tuple[bytes, str]]:
    jpeg = encode(banded(1000, 1000, 100), "image/jpeg")
    exact_jpeg = encode(banded(1280, 720, 100), "image/jpeg")
    webp = encode(banded(300, 300, 30), "image/webp")
    return {
        "png-signature-then-garbage": (b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, "1280x720"),
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], "1280x720"),
        "truncated-jpeg-already-the-right-size": (exact_jpeg[: len(exact_jpeg) // 2], "1280x720"),
        "webp-header-then-garbage": (webp[:16] + b"\x00" * 64, "1280x720"),
        "jpeg-marker-only": (b"\xff\xd8\xff" + b"\x00" * 20, "1280x720"),
    }


@pytest.mark.parametrize("case", list(corrupt_inputs()))
def test_corrupt_or_truncated_images_are_400(case: str) -> None:
    data, size = corrupt_inputs()[case]
    with pytest.raises(InvalidRequest) as refused:
        prepare_reference_image(data, size)
    assert_error(refused, 400, "invalid_value")


@pytest.mark.parametrize(
    ("width", "height"),
    [(4097, 4096), (8000, 8000), (30000, 30000), (100_000, 1_000)],
    ids=["one-column-over-the-cap", "over-our-cap", "over-pillows-own-limit", "long-strip"],
)
@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused_from_the_header(width: int, height: int) -> None:
    """A few hundred bytes declaring 16.8-900 megapixels: refused before any pixel is decoded.
    Pillow's own bomb warning is made an error here: neither form may escape as a 500."""
    bomb = png_header_only(width, height)
    assert len(bomb) < 200
    with pytest.raises(InvalidRequest) as refused:
        prepare_reference_image(bomb, "1280x720")
    assert_error(refused, 400, "image_too_large")
    assert f"{width}x{height}" in refused.value.message
    assert f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}" in refused.value.message


def test_the_largest_accepted_image_is_decoded() -> None:
    at_cap = encode(Image.new("L", (MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), 128), "image/png")
    prepared = prepare_reference_image(at_cap, "720x1280")
    assert decode(prepared.content).size == (720, 1280)


REFUSE_IN_A_FRESH_PROCESS = """
import re, sys
from gateway.errors import InvalidRequest
from gateway.images import prepare_reference_image
data = open(sys.argv[1], "rb").read()
try:
    prepare_reference_image(data, "1280x720")
except InvalidRequest as error:
    print(error.code)
else:
    print("accepted")
print("PIL" in sys.modules)
# This process's peak resident memory (ru_maxrss would carry the parent's over from fork).
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status)[1]) // 1024)
"""


def test_a_7000x7000_png_is_refused_without_decoding_or_even_importing_pillow(tmp_path: Path) -> None:
    """The review's case: a small PNG of 49 MP, which took 400-600 MB to decode. Refused from its
    header in a fresh process that never imports Pillow, and whose peak memory stays that of
    the interpreter: decoding would have needed 49 MB for the grey pixels alone, 147 MB in RGB."""
    path = tmp_path / "grey.png"
    path.write_bytes(encode(Image.new("L", (7000, 7000), 128), "image/png"))
    assert path.stat().st_size < 300_000
    run = subprocess.run(
        [sys.executable, "-c", REFUSE_IN_A_FRESH_PROCESS, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    code, pillow_imported, peak_mib = run.stdout.split()
    assert code == "image_too_large"
    assert pillow_imported == "False"
    assert int(peak_mib) < 45, f"peak RSS {peak_mib} MiB"


def test_a_refused_image_allocates_no_pixels_and_an_accepted_one_does() -> None:
    """Pillow counts every image memory it creates: none for the refusal, some for the control."""
    from PIL import Image as PillowImage

    oversize = encode(Image.new("L", (7000, 7000), 128), "image/png")
    images_created = PillowImage.core.get_stats()["new_count"]
    with pytest.raises(InvalidRequest):
        prepare_reference_image(oversize, "1280x720")
    assert PillowImage.core.get_stats()["new_count"] == images_created
    prepare_reference_image(encode(Image.new("L", (700, 700), 128), "image/png"), "1280x720")
    assert PillowImage.core.get_stats()["new_count"] > images_created


def test_importing_the_function_app_does_not_import_pillow() -> None:
    """Cold start: Pillow is loaded by the first request that carries an image, not at start-up."""
    run = subprocess.run(
        [sys.executable, "-c", "import sys, function_app; print('PIL' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )
    assert run.stdout.split()[-1] == "False", run.stderr


# --- the header, without decoding -------------------------------------------------------------------


@pytest.mark.parametrize("content_type", TYPES)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_the_header_gives_the_dimensions_pillow_sees(content_type: str, mode: str) -> None:
    if content_type == "image/jpeg" and mode == "RGBA":
        mode = "CMYK"
    options = [{}, {"progressive": True}] if content_type == "image/jpeg" else [{}, {"lossless": True}]
    for extra in options:
        data = encode(Image.new(mode, (1234, 567)), content_type, **extra)
        assert check_image_header(data) == ImageHeader(content_type, 1234, 567)


def test_an_animated_webp_header_gives_its_canvas() -> None:
    frames = [Image.new("RGB", (300, 200), RED), Image.new("RGB", (300, 200), BLUE)]
    animated = encode(frames[0], "image/webp", save_all=True, append_images=frames[1:], duration=100)
    assert check_image_header(animated) == ImageHeader("image/webp", 300, 200)


@pytest.mark.parametrize("content_type", TYPES)
def test_a_header_cut_short_is_400_not_a_crash(content_type: str) -> None:
    data = encode(Image.new("RGB", (64, 64)), content_type)
    with pytest.raises(InvalidRequest) as refused:
        check_image_header(data[:14])
    assert_error(refused, 400, "invalid_value")


def test_the_header_check_refuses_like_the_full_preparation() -> None:
    with pytest.raises(PayloadTooLarge):
        check_image_header(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES)
    with pytest.raises(UnsupportedMediaType):
        check_image_header(b"GIF89a" + b"\0" * 64)
    with pytest.raises(InvalidRequest) as refused:
        check_image_header(png_header_only(7000, 7000))
    assert_error(refused, 400, "image_too_large")


@pytest.mark.parametrize("size", ["1280", "1280X720", "0x720", "-1x720", "1280x720x3", "axb", ""])
def test_a_malformed_size_names_the_size_field(size: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        prepare_reference_image(encode(Image.new("RGB", (8, 8)), "image/png"), size)
    assert_error(refused, 400, "invalid_value", "size")


# --- fitting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "source_side"),
    [*((content_type, 1000) for content_type in TYPES), ("image/jpeg", 4000)],
    ids=[*TYPES, "image/jpeg-4000px-decoded-at-half-scale"],
)
def test_a_square_becomes_exactly_1280x720_cropped_top_and_bottom(
    content_type: str, source_side: int
) -> None:
    band = source_side // 10
    source = encode(banded(source_side, source_side, band), content_type)
    prepared = prepare_reference_image(source, "1280x720")
    image = decode(prepared.content).convert("RGB")
    assert image.size == (1280, 720) == (prepared.width, prepared.height)
    assert close_to(image.getpixel((640, 360)), GREEN)
    # Scaled to 1280x1280, 280 rows go at the top and at the bottom: the red bands (128 rows) with them.
    assert close_to(image.getpixel((640, 3)), GREEN)
    assert close_to(image.getpixel((640, 716)), GREEN)
    # Nothing is cropped sideways: the blue bands stay at the left and right edges.
    assert close_to(image.getpixel((30, 360)), BLUE)
    assert close_to(image.getpixel((1250, 360)), BLUE)


@pytest.mark.parametrize("content_type", TYPES)
def test_a_square_becomes_exactly_720x1280_cropped_left_and_right(content_type: str) -> None:
    prepared = prepare_reference_image(encode(banded(1000, 1000, 100), content_type), "720x1280")
    image = decode(prepared.content).convert("RGB")
    assert image.size == (720, 1280) == (prepared.width, prepared.height)
    assert close_to(image.getpixel((360, 640)), GREEN)
    assert close_to(image.getpixel((3, 640)), GREEN)
    assert close_to(image.getpixel((716, 640)), GREEN)
    assert close_to(image.getpixel((360, 30)), RED)
    assert close_to(image.getpixel((360, 1250)), RED)


@pytest.mark.parametrize("size", ["1792x1024", "1024x1792", "1280x720"])
def test_odd_aspect_ratios_also_come_out_exact(size: str) -> None:
    for source_size in [(1001, 333), (333, 1001), (1919, 1081), (7, 5)]:
        prepared = prepare_reference_image(encode(Image.new("RGB", source_size, GREEN), "image/png"), size)
        assert "x".join(map(str, decode(prepared.content).size)) == size


@pytest.mark.parametrize("content_type", TYPES)
def test_an_image_already_the_right_size_is_returned_byte_for_byte(content_type: str) -> None:
    original = encode(banded(1280, 720, 50), content_type)
    prepared = prepare_reference_image(original, "1280x720")
    assert prepared.content == original
    assert prepared == ReferenceImage(original, content_type, 1280, 720)


@pytest.mark.parametrize("content_type", TYPES)
def test_the_output_keeps_the_input_type(content_type: str) -> None:
    prepared = prepare_reference_image(encode(banded(900, 600, 60), content_type), "720x1280")
    assert prepared.content_type == content_type
    assert sniff_image_type(prepared.content) == content_type
    assert decode(prepared.content).format == FORMATS[content_type]
    assert (
        prepared.filename
        == "reference." + {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[content_type]
    )


@pytest.mark.parametrize(
    "stored_size", [(1280, 720), (3840, 2160)], ids=["exact-after-rotation", "large-jpeg-draft"]
)
def test_exif_orientation_is_applied_before_fitting(stored_size: tuple[int, int]) -> None:
    """Stored landscape, left red / right blue, tagged "rotate 90 degrees clockwise to display":
    upright it is portrait with red on top, and that is what must come out."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    source = encode(halves(*stored_size, RED, BLUE), "image/jpeg", exif=exif.tobytes())
    prepared = prepare_reference_image(source, "720x1280")
    image = decode(prepared.content)
    assert image.size == (720, 1280)
    assert close_to(image.getpixel((360, 100)), RED)
    assert close_to(image.getpixel((360, 1180)), BLUE)
    assert ExifTags.Base.Orientation not in image.getexif()


def test_metadata_is_dropped_when_re_encoding() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.Base.Model] = "Model 7"
    jpeg = encode(banded(800, 800, 80), "image/jpeg", exif=exif.tobytes(), comment=b"taken at home")
    out = decode(prepare_reference_image(jpeg, "1280x720").content)
    assert len(out.getexif()) == 0
    assert "comment" not in out.info

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone private")
    png = encode(banded(800, 800, 80), "image/png", pnginfo=text)
    out = decode(prepare_reference_image(png, "1280x720").content)
    assert "Author" not in out.info
    assert not getattr(out, "text", {})

    webp = encode(banded(800, 800, 80), "image/webp", exif=exif.tobytes())
    assert len(decode(prepare_reference_image(webp, "1280x720").content).getexif()) == 0


def test_the_colour_profile_of_an_rgb_image_is_kept() -> None:
    """Not personal data, and without it wide-gamut colours shift."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = encode(banded(800, 800, 80), "image/jpeg", icc_profile=profile)
    assert decode(prepare_reference_image(jpeg, "1280x720").content).info.get("icc_profile") == profile


@pytest.mark.parametrize("content_type", ["image/png", "image/webp"])
def test_an_animated_image_becomes_its_first_frame(content_type: str) -> None:
    """Even at exactly the right size: the upstream wants one still image."""
    frames = [Image.new("RGB", (128, 72), RED), Image.new("RGB", (128, 72), BLUE)]
    animated = encode(frames[0], content_type, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(decode(animated), "n_frames", 1) == 2
    prepared = prepare_reference_image(animated, "128x72")
    image = decode(prepared.content)
    assert getattr(image, "n_frames", 1) == 1
    assert image.size == (128, 72)
    assert close_to(image.convert("RGB").getpixel((64, 36)), RED)


def test_modes_are_normalised_per_format() -> None:
    grey_jpeg = encode(Image.new("L", (300, 300), 200), "image/jpeg")
    assert decode(prepare_reference_image(grey_jpeg, "64x48").content).mode == "RGB"
    cmyk_jpeg = encode(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "image/jpeg")
    red_ish = decode(prepare_reference_image(cmyk_jpeg, "64x48").content)
    assert red_ish.mode == "RGB"
    assert close_to(red_ish.getpixel((32, 24)), (255, 0, 0), tolerance=40)
    # Transparency survives in PNG and WebP; a palette is expanded so resizing can filter.
    translucent = Image.new("RGBA", (300, 300), (0, 0, 255, 100))
    for content_type in ("image/png", "image/webp"):
        out = decode(prepare_reference_image(encode(translucent, content_type), "64x48").content)
        assert out.mode == "RGBA"
        assert close_to(out.getpixel((32, 24)), (0, 0, 255, 100))
    palette = Image.new("RGB", (300, 300), GREEN).convert("P")
    assert decode(prepare_reference_image(encode(palette, "image/png"), "64x48").content).mode == "RGB"


def test_reference_image_is_immutable() -> None:
    prepared = prepare_reference_image(encode(Image.new("RGB", (10, 10)), "image/webp"), "8x8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.width = 9  # type: ignore[misc]
