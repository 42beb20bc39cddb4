"""Request bodies as plain field maps, whether they came as JSON or as multipart/form-data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sorasim.errors import ApiError

# `input_reference[image_url]` is how form encoders (the OpenAI SDK included) flatten objects.
_NESTED_KEY = re.compile(r"^(?P<outer>[^\[\]]+)\[(?P<inner>[^\[\]]+)\]$")


@dataclass(frozen=True)
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes


async def read_fields(request: web.Request) -> dict[str, Any]:
    """The body's fields; files become `UploadedFile`, nested form keys become dicts."""
    content_type = request.content_type
    if content_type == "application/json":
        return await _read_json(request)
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _read_form(request)
    if not request.body_exists:
        return {}
    raise ApiError(
        415,
        f"Unsupported content type '{content_type}'. Send application/json or multipart/form-data.",
        code="unsupported_content_type",
    )


async def _read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "The body of your request is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The JSON body of your request must be an object.", code="invalid_json")
    return body


async def _read_form(request: web.Request) -> dict[str, Any]:
    form = await request.post()
    fields: dict[str, Any] = {}
    for key, raw in form.items():
        value: Any
        if isinstance(raw, web.FileField):
            value = UploadedFile(raw.filename, raw.content_type, raw.file.read())
        elif isinstance(raw, bytes):
            value = raw.decode("utf-8", errors="replace")
        else:
            value = raw
        nested = _NESTED_KEY.match(key)
        if nested:
            outer = fields.setdefault(nested["outer"], {})
            if isinstance(outer, dict):
                outer.setdefault(nested["inner"], value)
        else:
            fields.setdefault(key, value)
    return fields
