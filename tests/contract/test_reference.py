"""The reference check itself (tests/contract/reference.py): what it reads from docs/api.md, and
that it refuses what the reference does not say. Every contract test runs it on real answers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.reference import assert_in_reference, error_rows, video_fields


def documented_video() -> dict[str, Any]:
    """A Video with every documented field, each of a documented type."""
    samples = {"string": "x", "integer": 1, "object": {}}
    video: dict[str, Any] = {}
    for name, kind in video_fields().items():
        video[name] = "video" if kind == '`"video"`' else samples[kind.partition(" or ")[0]]
    return video


def test_the_reference_tables_are_read() -> None:
    assert {"id", "status", "video_url", "provider", "options"} <= set(video_fields())
    assert video_fields()["completed_at"] == "integer or null"
    assert (429, "rate_limit_error", "rate_limit_exceeded") in error_rows()
    assert (404, "not_found_error", "app_not_found") in error_rows()  # one row, several codes


def test_a_video_as_documented_passes() -> None:
    assert_in_reference(200, documented_video(), "video")
    assert_in_reference(200, {"object": "list", "data": [documented_video()]}, "list")


@pytest.mark.parametrize(
    "change",
    [
        {"undocumented_field": 1},  # a field users are not told about
        {"progress": "50"},  # a type other than the documented one
        {"provider": None},  # null where the reference promises a value
        {"created_at": None},
    ],
)
def test_a_video_unlike_the_reference_fails(change: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_in_reference(200, {**documented_video(), **change}, "video")


def test_a_missing_field_fails() -> None:
    video = documented_video()
    del video["estimated_cost"]
    with pytest.raises(AssertionError, match="estimated_cost"):
        assert_in_reference(200, video, "video")


def test_an_error_not_in_the_reference_table_fails() -> None:
    known = {
        "error": {"type": "invalid_request_error", "code": "invalid_value", "message": "m", "param": None}
    }
    assert_in_reference(400, known, "known")
    with pytest.raises(AssertionError, match="Errors table"):
        assert_in_reference(400, {"error": {**known["error"], "code": "made_up"}}, "unknown code")
    with pytest.raises(AssertionError, match="Errors table"):
        assert_in_reference(404, known, "documented code, other status")
