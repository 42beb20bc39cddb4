"""Reading a request's fields from JSON or multipart/form-data (what the openai SDK sends)."""

from __future__ import annotations

import email.parser
import email.policy
import json
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from api.http import json_body
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
        return RequestFields(values=json_body(req))
    if media_type == "multipart/form-data":
        return _multipart(content_type, body)
    raise UnsupportedMediaType(
        f"Unsupported content type '{media_type}'; send application/json or multipart/form-data.",
        code="unsupported_media_type",
    )


def _multipart(content_type: str, body: bytes) -> RequestFields:
    if "boundary=" not in content_type:
        raise InvalidRequest("multipart/form-data needs a boundary.", code="invalid_value")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidRequest("The multipart body could not be read.", code="invalid_value")
    values: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    metadata: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = UploadedFile(filename, part.get_content_type(), content)
        elif name.startswith("metadata[") and name.endswith("]"):
            metadata[name[len("metadata[") : -1]] = _text(name, content)
        else:
            values[name] = _text(name, content)
    if metadata:
        values["metadata"] = metadata
    elif isinstance(values.get("metadata"), str):
        values["metadata"] = _json_field("metadata", values["metadata"])
    return RequestFields(values=values, files=files)


def _text(name: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidRequest(f"Field '{name}' is not UTF-8 text.", param=name) from error


def _json_field(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise InvalidRequest(f"Field '{name}' must be JSON.", param=name) from error
