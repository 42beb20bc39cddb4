"""Bounded parsers for request bodies: JSON and multipart/form-data.

Every request body is hostile until read. These parsers do work linear in the body's size and
stop at the first bound crossed, with an error in the product's words: Python's own exception
text (codec positions, recursion, `sys.set_int_max_str_digits`) never reaches a client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gateway.errors import InvalidRequest, PayloadTooLarge

# Deeper than any body this API takes (metadata is one level), far below where Python's parser
# would exhaust its recursion budget.
MAX_JSON_DEPTH = 32
# The longest number any field needs is a few digits; Python refuses past 4300 on its own, in
# words that speak of interpreter settings.
MAX_NUMBER_CHARS = 100
# A form has a handful of fields (prompt, model, seconds, size, user, metadata[...] up to 16, a
# file); 64 leaves room for clients that send extra ones and still bounds the work per body.
MAX_PARTS = 64
# A prompt of MAX_PROMPT_CHARS (4000 by default) is at most 16 KB of UTF-8; files are bounded by
# the whole body only.
MAX_FIELD_BYTES = 64 * 1024
# Content-Disposition with a long file name plus Content-Type; no client needs more.
MAX_PART_HEADER_BYTES = 8 * 1024
# RFC 2046 caps a boundary at 70 characters.
MAX_BOUNDARY_CHARS = 70

# A JSON string from its opening quote to its closing one, or to the end of the body when it is
# never closed: always matching once started keeps the scan linear (retrying from each quote of an
# unclosed string would be quadratic). Possessive, so no backtracking either.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# Depth does not care which kind of bracket: both become one pair of characters.
_BRACKET_KINDS = bytes.maketrans(b"[{]}", b"(())")


class _NumberTooLong(Exception):
    """Raised from inside json.loads: unwinds the parse at the first overlong number."""


def parse_json_document(raw: bytes, *, what: str = "The request body", param: str | None = None) -> Any:
    """`raw` parsed as UTF-8 JSON of bounded depth and number length, or a 400 `invalid_json`."""

    def refuse(reason: str) -> InvalidRequest:
        return InvalidRequest(f"{what} {reason}", code="invalid_json", param=param)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("is not UTF-8 JSON.") from None
    if not text.strip():
        raise refuse("is empty; send a JSON object.")
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise refuse(f"nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.")
    try:
        # A UTF-8 byte order mark is not JSON, but some tools write one: it says nothing wrong.
        return json.loads(text.removeprefix("\ufeff"), parse_int=_bounded_int, parse_float=_bounded_float)
    except _NumberTooLong:
        raise refuse(f"has a number longer than {MAX_NUMBER_CHARS} characters.") from None
    except json.JSONDecodeError as error:
        # Line and column are the client's own coordinates; the decoder's wording is not shown.
        raise refuse(f"is not valid JSON (line {error.lineno}, column {error.colno}).") from None
    except RecursionError:
        # Defence in depth: the depth scan should leave nothing this deep to the parser.
        raise refuse(f"nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.") from None
    except ValueError:
        raise refuse("is not valid JSON.") from None


def parse_json_object(raw: bytes, *, max_bytes: int) -> dict[str, Any]:
    """A request body that must be one JSON object of at most `max_bytes`."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {_readable(max_bytes)}.")
    body = parse_json_document(raw)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether a balanced run of brackets outside strings nests deeper than `limit`, without parsing.

    Removing every adjacent open-close pair takes away exactly the innermost level, so what is left
    after `limit` rounds still holds a pair only when some container sat deeper. Each round is one
    C-speed `replace` over the brackets alone.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # every ordinary body: too few brackets to nest that deep, even in strings
    structure = _JSON_STRING.sub(b"", raw).translate(_BRACKET_KINDS, _NOT_BRACKETS)
    for _ in range(limit):
        shallower = structure.replace(b"()", b"")
        if len(shallower) == len(structure):
            break
        structure = shallower
    # Openers never closed (a cut-off body) all nest inside one another: they count as well.
    return b"()" in structure or structure.count(b"(") > limit


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(digits)


def _bounded_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return float(literal)


def _readable(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"


# --- multipart/form-data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FormPart:
    """One part of a form: a field (no filename) or a file."""

    name: str | None
    filename: str | None
    content_type: str | None
    content: bytes
    end: int  # where in the body this part's data ends: how far the parser has read


_BOUNDARY_PARAM = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]*))', re.IGNORECASE)
# RFC 2046's bchars: digits, letters and '()+_,-./:=? (space only inside, never last).
_BOUNDARY_CHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]")
# A quoted value runs to its closing quote or, left open, to the end: one pass, no retries.
_HEADER_PARAM = re.compile(
    r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[^;\s]*)',
    re.DOTALL,
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# Browsers and httpx (the openai SDK) write these three characters of a name this way (WHATWG).
_FORM_ESCAPES = re.compile(r"%0A|%0D|%22", re.IGNORECASE)
_FORM_UNESCAPED = {"%0a": "\n", "%0d": "\r", "%22": '"'}


def multipart_boundary(content_type: str) -> bytes:
    match = _BOUNDARY_PARAM.search(content_type)
    boundary = (match[1] if match[1] is not None else match[2]) if match else ""
    if not boundary:
        raise InvalidRequest("multipart/form-data needs a boundary.", code="invalid_value")
    if len(boundary) > MAX_BOUNDARY_CHARS or not _BOUNDARY_CHARS.fullmatch(boundary):
        raise InvalidRequest(
            f"The multipart boundary must be 1 to {MAX_BOUNDARY_CHARS} letters, digits or "
            "'()+_,-./:=? characters.",
            code="invalid_value",
        )
    return boundary.encode("ascii")


def iter_form_parts(body: bytes, boundary: bytes) -> Iterator[FormPart]:
    """The parts of a multipart/form-data body, in order, each bounded as it is reached.

    One forward pass: every search starts where the last one ended, and a field's search stops at
    its size bound, so a body costs time linear in its length and a refusal comes as soon as the
    bound is crossed, not after reading the rest.
    """
    delimiter = b"--" + boundary
    # Every delimiter after the first follows the previous part's data and its CRLF (RFC 2046).
    next_delimiter = b"\r\n" + delimiter
    position = _first_delimiter(body, delimiter)
    count = 0
    while True:
        position += len(delimiter)
        if body.startswith(b"--", position):
            return  # the close delimiter; anything after it is an epilogue, ignored
        position = _after_line_end(body, position)
        count += 1
        if count > MAX_PARTS:
            raise InvalidRequest(f"The form has more than {MAX_PARTS} parts.", code="invalid_value")
        headers_end = body.find(b"\r\n\r\n", position - 2, position + MAX_PART_HEADER_BYTES)
        if headers_end < 0:
            raise _unreadable_headers(body, position)
        name, filename, content_type = _part_headers(body[position:headers_end])
        data_start = headers_end + 4
        if filename is None:
            data_end = body.find(
                next_delimiter, data_start, data_start + MAX_FIELD_BYTES + len(next_delimiter)
            )
            if data_end < 0 and len(body) - data_start > MAX_FIELD_BYTES:
                raise InvalidRequest(
                    f"Form field '{name or ''}' is longer than {MAX_FIELD_BYTES // 1024} KiB; "
                    "only files may be larger.",
                    code="invalid_value",
                    param=name,
                )
        else:
            data_end = body.find(next_delimiter, data_start)
        if data_end < 0:
            raise InvalidRequest("The multipart body ends before its closing boundary.", code="invalid_value")
        yield FormPart(name, filename, content_type, body[data_start:data_end], data_end)
        position = data_end + 2


def _first_delimiter(body: bytes, delimiter: bytes) -> int:
    if body.startswith(delimiter):
        return 0
    # A preamble is allowed before the first delimiter; clients do not send one, so keep it short.
    found = body.find(b"\r\n" + delimiter, 0, MAX_PART_HEADER_BYTES)
    if found < 0:
        raise InvalidRequest(
            "The multipart body does not start with the boundary from its Content-Type.",
            code="invalid_value",
        )
    return found + 2


def _after_line_end(body: bytes, position: int) -> int:
    """Past the CRLF that ends a delimiter line (after any transport padding of spaces and tabs)."""
    line_end = body.find(b"\r\n", position, position + 256)
    if line_end < 0 or body[position:line_end].strip(b" \t"):
        raise InvalidRequest("The multipart body has a malformed boundary line.", code="invalid_value")
    return line_end + 2


def _unreadable_headers(body: bytes, position: int) -> InvalidRequest:
    if len(body) - position > MAX_PART_HEADER_BYTES:
        return InvalidRequest(
            f"A form part's headers are longer than {MAX_PART_HEADER_BYTES // 1024} KiB.",
            code="invalid_value",
        )
    return InvalidRequest("A form part has no blank line after its headers.", code="invalid_value")


def _part_headers(block: bytes) -> tuple[str | None, str | None, str | None]:
    """(name, filename, content type) from one part's header block; other headers are ignored."""
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    # Clients send UTF-8 in quoted names and file names (RFC 7578 4.2); never fail on them.
    for line in block.decode("utf-8", "replace").split("\r\n"):
        header, colon, value = line.partition(":")
        if not colon:
            if line.strip():
                raise InvalidRequest("A form part has a malformed header line.", code="invalid_value")
            continue
        header = header.strip().lower()
        if header == "content-disposition":
            disposition, params = _disposition(value)
            if disposition != "form-data":
                raise InvalidRequest(
                    "Every part of a multipart/form-data body must be 'Content-Disposition: form-data'.",
                    code="invalid_value",
                )
            name = params.get("name")
            filename = params.get("filename*", params.get("filename"))
        elif header == "content-type":
            content_type = value.split(";", 1)[0].strip().lower() or None
    return name, filename, content_type


def _disposition(value: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _HEADER_PARAM.finditer(";" + rest):
        key, raw = match[1].lower(), match[2]
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        if key == "filename*":
            raw = _extended_value(raw)
        params[key] = _FORM_ESCAPES.sub(lambda escape: _FORM_UNESCAPED[escape[0].lower()], raw)
    return kind.strip().lower(), params


def _extended_value(raw: str) -> str:
    """RFC 5987's charset''percent-encoded form (UTF-8 only; anything else is kept as sent)."""
    charset, _, encoded = raw.partition("''")
    if charset.lower() != "utf-8" or not encoded:
        return raw
    return unquote(encoded, errors="replace")
