"""The bounded body parsers of `api.bodies`, on real encodings: the multipart bodies of httpx (the
openai SDK's HTTP client) and requests, hand-made hostile bodies, and JSON at and past each bound.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import requests
from httpx2._multipart import MultipartStream

from api.bodies import (
    MAX_FIELD_BYTES,
    MAX_JSON_DEPTH,
    MAX_PART_HEADER_BYTES,
    MAX_PARTS,
    iter_form_parts,
    json_depth_exceeds,
    multipart_boundary,
    parse_json_document,
)
from api.forms import RequestFields, UploadedFile, read_multipart
from gateway.errors import ApiError, InvalidRequest

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes: the parser does not look inside
# What Python's own errors say; none of it may reach a client.
PYTHON_WORDS = ("Expecting", "codec", "sys.", "set_int_max_str_digits", "recursion", "Traceback", "char ")


def sdk_body(data: dict[str, str], files: dict[str, Any]) -> tuple[str, bytes]:
    stream = MultipartStream(data=data, files=files)
    return stream.get_headers()["Content-Type"], b"".join(stream)


def requests_body(files: dict[str, Any]) -> tuple[str, bytes]:
    prepared = requests.Request("POST", "http://127.0.0.1/", files=files).prepare()
    assert isinstance(prepared.body, bytes)
    return prepared.headers["Content-Type"], prepared.body


def form(boundary: bytes, *parts: bytes, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


def field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def refusal(work: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        work(*args)
    assert not any(word in refused.value.message for word in PYTHON_WORDS), refused.value.message
    return refused.value


# --- what real clients send ------------------------------------------------------------------------


def test_the_openai_sdks_encoding_is_read_field_for_field() -> None:
    content_type, body = sdk_body(
        {"prompt": "Bring this still to life ✨", "size": "720x1280", "metadata[campaign]": "winter"},
        {"input_reference": ("photo.png", PNG_BYTES, "image/png")},
    )
    assert read_multipart(content_type, body) == RequestFields(
        values={
            "prompt": "Bring this still to life ✨",
            "size": "720x1280",
            "metadata": {"campaign": "winter"},
        },
        files={"input_reference": UploadedFile("photo.png", "image/png", PNG_BYTES)},
    )


def test_requests_encoding_with_a_json_metadata_field() -> None:
    content_type, body = requests_body(
        {
            "prompt": (None, "A fox"),
            "metadata": (None, '{"a": "b"}'),
            "input_reference": ("cat.jpg", PNG_BYTES),
        }
    )
    fields = read_multipart(content_type, body)
    assert fields.values == {"prompt": "A fox", "metadata": {"a": "b"}}
    assert fields.files["input_reference"].content == PNG_BYTES
    assert fields.files["input_reference"].content_type == "application/octet-stream"


def test_quotes_backslashes_and_line_breaks_in_names_come_back_as_sent() -> None:
    """httpx writes '"' as %22 and a backslash as a quoted pair (HTML5 form encoding); curl and
    older clients escape a quote with a backslash; RFC 5987 `filename*` carries UTF-8."""
    content_type, body = sdk_body({}, {"input_reference": ('say "hi" \\ bye.png', PNG_BYTES, "image/png")})
    assert read_multipart(content_type, body).files["input_reference"].filename == 'say "hi" \\ bye.png'
    boundary = b"b0undary"
    body = form(
        boundary,
        b'Content-Disposition: form-data; name="a"; filename="x \\"y\\".png"\r\n\r\n1',
        b"Content-Disposition: form-data; name=b; filename*=UTF-8''%C3%A9t%C3%A9.png\r\n\r\n2",
    )
    files = read_multipart("multipart/form-data; boundary=b0undary", body).files
    assert (files["a"].filename, files["b"].filename) == ('x "y".png', "été.png")


def test_a_quoted_boundary_transport_padding_preamble_and_epilogue_are_fine() -> None:
    body = b"preamble\r\n--a b:c\r\n" + field("prompt", b"p") + b"\r\n--a b:c--  \r\nepilogue"
    assert read_multipart('multipart/form-data; boundary="a b:c"', body).values == {"prompt": "p"}
    padded = b"--x \t\r\n" + field("prompt", b"p") + b"\r\n--x--"
    assert read_multipart("multipart/form-data; boundary=x", padded).values == {"prompt": "p"}


def test_the_boundary_inside_a_file_without_its_line_break_is_data() -> None:
    content = b"--edge\r\n" + b"x--edge" + b"\r\n--edg"
    body = form(b"edge", b'Content-Disposition: form-data; name="f"; filename="f"\r\n\r\n' + content[8:])
    assert read_multipart("multipart/form-data; boundary=edge", body).files["f"].content == content[8:]


# --- bounds -----------------------------------------------------------------------------------------


def tiny_parts_body(size: int) -> bytes:
    """The review's body: as many one-byte fields as fit in `size` bytes."""
    one = b"--t\r\n" + field("x", b"y") + b"\r\n"
    return one * (size // len(one)) + b"--t--\r\n"


def test_4_mb_of_tiny_parts_is_refused_after_reading_the_first_64() -> None:
    """The parser yields each part as it reads it: it reads MAX_PARTS of the ~70,000 parts, and
    stops within the first few kilobytes of the 4 MB, so the rest costs nothing."""
    body = tiny_parts_body(4 * 1024 * 1024)
    read: list[int] = []

    def read_every_part() -> None:
        for part in iter_form_parts(body, b"t"):
            read.append(part.end)

    with pytest.raises(InvalidRequest) as refused:
        read_every_part()
    assert len(read) == MAX_PARTS
    assert read[-1] < 64 * 60 < len(body) // 1000
    assert (refused.value.status, refused.value.code) == (400, "invalid_value")
    assert f"more than {MAX_PARTS} parts" in refused.value.message


def test_64_parts_are_fine() -> None:
    body = form(b"t", *(field(f"f{index}", b"v") for index in range(MAX_PARTS)))
    assert len(read_multipart("multipart/form-data; boundary=t", body).values) == MAX_PARTS


def test_a_field_over_64_kib_is_refused_at_the_bound_but_a_file_may_be_larger() -> None:
    at_bound = form(b"t", field("prompt", b"p" * MAX_FIELD_BYTES))
    assert (
        len(read_multipart("multipart/form-data; boundary=t", at_bound).values["prompt"]) == MAX_FIELD_BYTES
    )
    over = form(b"t", field("prompt", b"p" * (MAX_FIELD_BYTES + 1)))
    error = refusal(read_multipart, "multipart/form-data; boundary=t", over)
    assert (error.status, error.code, error.param) == (400, "invalid_value", "prompt")
    assert "64 KiB" in error.message
    big_file = b"\x89PNG" + b"\0" * (4 * MAX_FIELD_BYTES)
    as_file = form(b"t", b'Content-Disposition: form-data; name="f"; filename="f.png"\r\n\r\n' + big_file)
    assert read_multipart("multipart/form-data; boundary=t", as_file).files["f"].content == big_file


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ("multipart/form-data", b"--x\r\n", "needs a boundary"),
        ("multipart/form-data; boundary=" + "b" * 71, b"", "boundary must be"),
        ("multipart/form-data; boundary=x", b"no boundary anywhere", "does not start with the boundary"),
        (
            "multipart/form-data; boundary=x",
            form(b"x", field("a", b"1"), close=False)[:-2],
            "closing boundary",
        ),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\n" + b"X-Pad: " + b"p" * MAX_PART_HEADER_BYTES,
            "headers",
        ),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n", "blank line"),
        (
            "multipart/form-data; boundary=x",
            b"--xjunk\r\n" + field("a", b"1") + b"\r\n--x--",
            "boundary line",
        ),
        ("multipart/form-data; boundary=x", form(b"x", b"no colon here\r\n\r\nv"), "header line"),
        ("multipart/form-data; boundary=x", form(b"x", b"Content-Disposition: inline\r\n\r\nv"), "form-data"),
        ("multipart/form-data; boundary=x", form(b"x", field("prompt", b"\xff\xfe")), "not UTF-8"),
    ],
    ids=[
        "no-boundary",
        "boundary-too-long",
        "no-first-boundary",
        "no-closing-boundary",
        "headers-too-long",
        "headers-never-end",
        "junk-after-boundary",
        "header-without-colon",
        "not-form-data",
        "field-not-utf8",
    ],
)
def test_malformed_forms_are_400_in_plain_words(content_type: str, body: bytes, says: str) -> None:
    error = refusal(read_multipart, content_type, body)
    assert (error.status, error.code) == (400, "invalid_value")
    assert says in error.message


def test_nested_json_metadata_in_a_form_is_invalid_json() -> None:
    nested = "[" * 10_000 + "]" * 10_000
    body = form(b"t", field("prompt", b"p"), field("metadata", nested.encode()))
    error = refusal(read_multipart, "multipart/form-data; boundary=t", body)
    assert (error.status, error.code, error.param) == (400, "invalid_json", "metadata")
    assert (
        error.message == f"Field 'metadata' nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."
    )


def test_a_boundary_from_the_content_type_header_is_read_exactly() -> None:
    assert multipart_boundary('multipart/form-data; charset=utf-8; boundary="a=b"') == b"a=b"
    assert refusal(multipart_boundary, 'multipart/form-data; boundary="q;q"').code == "invalid_value"
    assert multipart_boundary("multipart/form-data; BOUNDARY=abc; charset=utf-8") == b"abc"


# --- JSON -------------------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_json_as_deep_as_the_bound_is_read_and_one_more_level_is_refused() -> None:
    assert isinstance(parse_json_document(nested(MAX_JSON_DEPTH)), dict)
    error = refusal(parse_json_document, nested(MAX_JSON_DEPTH + 1))
    assert (error.status, error.code) == (400, "invalid_json")
    assert "more than 32 levels deep" in error.message


def test_a_nesting_deep_enough_to_exhaust_pythons_recursion_is_400() -> None:
    for hostile in (b"[" * 1_000_000, b'{"a":' * 200_000, nested(100_000)):
        error = refusal(parse_json_document, hostile)
        assert (error.status, error.code) == (400, "invalid_json")


def test_brackets_inside_strings_do_not_count_towards_depth() -> None:
    text = json.dumps({"prompt": "[" * 500 + '\\"{{{' + "\\", "list": [[["ok"]]]}).encode()
    assert not json_depth_exceeds(text, MAX_JSON_DEPTH)
    assert parse_json_document(text)["list"] == [[["ok"]]]
    # An escaped quote does not end the string; a real quote after it does.
    assert json_depth_exceeds(b'["\\"", ' + b"[" * 40 + b"]" * 40 + b"]", MAX_JSON_DEPTH)


def test_an_unclosed_string_is_invalid_json_not_a_hang() -> None:
    error = refusal(parse_json_document, b'{"prompt": "\\"\\"' + b"[" * 50 + b"\\")
    assert error.code == "invalid_json"


@pytest.mark.parametrize(
    "number",
    [b"1" * 5000, b"-" + b"9" * 101, b"1." + b"5" * 200, b"1e" + b"9" * 200],
    ids=["5000-digits", "101-digits", "long-fraction", "long-exponent"],
)
def test_an_overlong_number_is_refused_in_the_products_words(number: bytes) -> None:
    error = refusal(parse_json_document, b'{"seconds": ' + number + b"}")
    assert (error.status, error.code) == (400, "invalid_json")
    assert error.message == "The request body has a number longer than 100 characters."


def test_ordinary_numbers_still_parse() -> None:
    assert parse_json_document(b'{"seconds": 8, "x": -1.5e3, "big": ' + b"9" * 100 + b"}") == {
        "seconds": 8,
        "x": -1500.0,
        "big": int("9" * 100),
    }


@pytest.mark.parametrize("raw", [b'{"prompt": "caf\xe9"}', b"\xff\xfe{\x00}\x00", b'{"a": "\xed\xa0\x80"}'])
def test_a_body_that_is_not_utf8_says_so(raw: bytes) -> None:
    error = refusal(parse_json_document, raw)
    assert (error.status, error.code, error.message) == (
        400,
        "invalid_json",
        "The request body is not UTF-8 JSON.",
    )


def test_broken_json_names_where_without_pythons_words() -> None:
    error = refusal(parse_json_document, b'{"prompt": "p",\n "seconds": }')
    assert error.message == "The request body is not valid JSON (line 2, column 13)."


def test_a_utf8_byte_order_mark_is_tolerated() -> None:
    assert parse_json_document(b'\xef\xbb\xbf{"prompt": "p"}') == {"prompt": "p"}


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def random_document(rng: random.Random, depth: int) -> Any:
    """A spine `depth` levels deep, with shallow siblings, lists and objects mixed at random."""
    if depth == 0:
        return rng.choice(["[{", '"]}"', 7, None])
    children = [random_document(rng, depth - 1)]
    for _ in range(rng.randint(0, 2)):
        children.insert(
            rng.randint(0, len(children)), random_document(rng, rng.randint(0, min(depth - 1, 3)))
        )
    return children if rng.random() < 0.5 else {f"k{index}": child for index, child in enumerate(children)}


def test_the_depth_scan_agrees_with_the_true_depth_of_many_documents() -> None:
    rng = random.Random(20261126)  # noqa: S311 - a reproducible test corpus, not a secret
    depths = []
    for _ in range(500):
        document = random_document(rng, rng.randint(28, 36))
        depths.append(depth_of(document))
        text = json.dumps(document).encode()
        assert json_depth_exceeds(text, MAX_JSON_DEPTH) == (depths[-1] > MAX_JSON_DEPTH), text
    assert min(depths) <= MAX_JSON_DEPTH < max(depths)  # both sides of the bound were exercised


def test_a_body_cut_off_deep_inside_is_refused_for_its_depth() -> None:
    error = refusal(parse_json_document, b'{"a": ' + b"[" * 5_000_000)
    assert error.message == "The request body nests arrays and objects more than 32 levels deep."
