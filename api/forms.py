"""Reading a request's fields from JSON or multipart/form-data (what the openai SDK sends).

The parsing itself, bounded in depth, parts and bytes, lives in `api.bodies`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from api.bodies import iter_form_parts, multipart_boundary, parse_json_document, parse_json_object
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

# A 10 MiB image plus the other fields and multipart framing.
MAX_BODY_BYTES = 11 * 1024 * 1024


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class RequestFields:
    values: dict[str, Any]
    files: dict[str, UploadedFile] = field(default_factory=dict)


def read_fields(req: func.HttpRequest) -> RequestFields:
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB.")
    content_type = str(req.headers.get("content-type", "application/json"))
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("application/json", ""):
        return RequestFields(values=parse_json_object(body, max_bytes=MAX_BODY_BYTES))
    if media_type == "multipart/form-data":
        return read_multipart(content_type, body)
    raise UnsupportedMediaType(
        f"Unsupported content type '{media_type}'; send application/json or multipart/form-data.",
        code="unsupported_media_type",
    )


def read_multipart(content_type: str, body: bytes) -> RequestFields:
    """The fields and files of a multipart/form-data body; `metadata[key]` parts form one object."""
    boundary = multipart_boundary(content_type)
    values: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    metadata: dict[str, str] = {}
    for part in iter_form_parts(body, boundary):
        name = part.name
        if name is None:
            continue  # not a form field (no name): nothing of ours
        if part.filename is not None:
            files[name] = UploadedFile(
                part.filename, part.content_type or "application/octet-stream", part.content
            )
        elif name.startswith("metadata[") and name.endswith("]"):
            metadata[name[len("metadata[") : -1]] = _text(name, part.content)
        else:
            values[name] = _text(name, part.content)
    if metadata:
        values["metadata"] = metadata
    elif isinstance(values.get("metadata"), str):
        values["metadata"] = parse_json_document(
            values["metadata"].encode("utf-8"), what="Field 'metadata'", param="metadata"
        )
    return RequestFields(values=values, files=files)


def _text(name: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"Field '{name}' is not UTF-8 text.", param=name) from None
