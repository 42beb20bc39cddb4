"""Checking real answers against the project's own API reference, `docs/api.md`, as well as the
generated OpenAPI document: a change made to the code and the document together, but not to the
reference that users read, is still caught.

Read from the reference's tables: the Video object's fields and their types ("string", "integer
or null", `"video"`, ...) and the Errors table's (status, type, code) rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from tests.conftest import PROJECT_DIR

REFERENCE = PROJECT_DIR / "docs" / "api.md"
_TICKED = re.compile(r"`([^`]+)`")
_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "object": dict}


def _table_after(heading: str) -> Iterator[list[str]]:
    """The cells of each row of the first table after `heading` (header and rule skipped)."""
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows = 0
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows += 1
        if rows > 2:  # after the header and its --- rule
            yield [cell.strip() for cell in line.strip().strip("|").split("|")]


@cache
def video_fields() -> dict[str, str]:
    """Field name -> its type as the reference writes it (one row may name several fields)."""
    fields: dict[str, str] = {}
    for names, kind, _meaning in _table_after("## The Video object"):
        for name in _TICKED.findall(names):
            fields[name] = kind
    assert fields, "docs/api.md has no Video object table"
    return fields


@cache
def error_rows() -> frozenset[tuple[int, str, str]]:
    """The documented (status, type, code) triples."""
    rows: set[tuple[int, str, str]] = set()
    for status, kind, codes, _when in _table_after("## Errors"):
        (error_type,) = _TICKED.findall(kind)
        rows.update((int(status), error_type, code) for code in _TICKED.findall(codes))
    assert rows, "docs/api.md has no Errors table"
    return frozenset(rows)


def _matches(value: Any, kind: str) -> bool:
    if kind.startswith('`"'):
        return bool(value == kind.strip('`"'))
    base, _, nullable = kind.partition(" or ")
    if value is None:
        return nullable == "null"
    expected = _TYPES[base]
    return isinstance(value, expected) and not isinstance(value, bool)


def assert_video_in_reference(video: dict[str, Any], what: str) -> None:
    documented = video_fields()
    assert set(video) == set(documented), (
        f"{what}: fields differ from docs/api.md's Video object: "
        f"undocumented {sorted(set(video) - set(documented))}, missing {sorted(set(documented) - set(video))}"
    )
    wrong = {name: video[name] for name, kind in documented.items() if not _matches(video[name], kind)}
    assert not wrong, f"{what}: values not of the types docs/api.md gives: {wrong}"


def assert_error_in_reference(status: int, body: dict[str, Any], what: str) -> None:
    error = body["error"]
    row = (status, error["type"], error["code"])
    assert row in error_rows(), f"{what}: {row} is not a row of docs/api.md's Errors table"


def assert_in_reference(status: int, body: Any, what: str) -> None:
    """Whatever of `body` the reference describes: a Video, a list of them, or an error."""
    if not isinstance(body, dict):
        return
    if body.get("object") == "video":
        assert_video_in_reference(body, what)
    elif body.get("object") == "list" and all(item.get("object") == "video" for item in body.get("data", [])):
        for item in body["data"]:
            assert_video_in_reference(item, what)
    elif isinstance(body.get("error"), dict) and status >= 400:
        assert_error_in_reference(status, body, what)
