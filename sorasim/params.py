"""Validation of create and remix requests, with OpenAI's error codes and `param` names."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sorasim.errors import ApiError, invalid_value
from sorasim.forms import UploadedFile
from sorasim.images import ImageError, ImageInfo, image_info
from sorasim.jobs import VideoSpec

# What each model accepts, as on Azure: Sora 2 makes 720p video only, Sora 2 Pro also the
# 1024x1792 / 1792x1024 sizes; both take 4, 8 or 12 seconds.
SECONDS = ("4", "8", "12")
SIZES_BY_MODEL: dict[str, tuple[str, ...]] = {
    "sora-2": ("720x1280", "1280x720"),
    "sora-2-pro": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
}
MODELS = tuple(SIZES_BY_MODEL)
SIZES = SIZES_BY_MODEL["sora-2-pro"]
DEFAULT_MODEL, DEFAULT_SECONDS, DEFAULT_SIZE = MODELS[0], SECONDS[0], SIZES[0]

BLOCK_MARKER = "#sim:blocked"

CREATE_FIELDS = frozenset({"prompt", "model", "seconds", "size", "input_reference"})
REMIX_FIELDS = frozenset({"prompt"})


@dataclass(frozen=True)
class CreateRequest:
    spec: VideoSpec
    input_reference: ImageInfo | None
    """Dimensions of an uploaded or inline reference image; None when absent or given by URL/file id."""


def parse_create(fields: Mapping[str, Any]) -> CreateRequest:
    _reject_unknown(fields, CREATE_FIELDS)
    prompt = _prompt(fields)
    model = _choice(fields, "model", MODELS, DEFAULT_MODEL)
    seconds = _seconds(fields)
    size = _choice(fields, "size", SIZES, DEFAULT_SIZE)
    if size not in SIZES_BY_MODEL[model]:
        raise invalid_value(
            "size",
            f"Invalid value: '{size}'. Supported values for model '{model}' are: "
            f"{_listing(SIZES_BY_MODEL[model])}.",
        )
    reference = _input_reference(fields.get("input_reference"))
    if reference is not None and reference.size != size:
        raise invalid_value(
            "input_reference",
            f"The input_reference image is {reference.size} but the requested size is {size}; "
            "the reference image must match the requested width and height.",
        )
    return CreateRequest(VideoSpec(prompt=prompt, model=model, seconds=seconds, size=size), reference)


def parse_remix_prompt(fields: Mapping[str, Any]) -> str:
    _reject_unknown(fields, REMIX_FIELDS)
    return _prompt(fields)


def check_content_policy(prompt: str) -> None:
    if BLOCK_MARKER in prompt:
        raise ApiError(
            400,
            "Your request was rejected as a result of our safety system. "
            "Your prompt may contain content that is not allowed by our safety system.",
            code="content_policy_violation",
            param="prompt",
        )


def _reject_unknown(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in fields:
        if name not in allowed:
            raise ApiError(400, f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)


def _prompt(fields: Mapping[str, Any]) -> str:
    if "prompt" not in fields or fields["prompt"] is None:
        raise ApiError(
            400, "Missing required parameter: 'prompt'.", code="missing_required_parameter", param="prompt"
        )
    prompt = fields["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_value("prompt", "Invalid 'prompt': expected a non-empty string.")
    return prompt


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise invalid_value(name, f"Invalid value: '{value}'. Supported values are: {_listing(allowed)}.")
    return value


def _seconds(fields: Mapping[str, Any]) -> str:
    value = fields.get("seconds")
    if value is None:
        return DEFAULT_SECONDS
    # Integers are accepted as well as the documented strings; booleans are not numbers here.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or text.strip() not in SECONDS:
        supported = _listing(SECONDS)
        raise invalid_value("seconds", f"Invalid value: '{value}'. Supported values are: {supported}.")
    return text.strip()


def _input_reference(value: Any) -> ImageInfo | None:
    if value is None:
        return None
    if isinstance(value, UploadedFile):
        return _image(value.data)
    if isinstance(value, dict) and len(value) == 1:
        image_url = value.get("image_url")
        if isinstance(image_url, str):
            return _image_from_url(image_url)
        if isinstance(value.get("file_id"), str):
            return None  # a previously uploaded file: nothing to inspect locally
    raise invalid_value(
        "input_reference",
        "input_reference must be an uploaded image file or an object with exactly one of "
        "'image_url' or 'file_id'.",
    )


def _image_from_url(url: str) -> ImageInfo | None:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise invalid_value("input_reference", "input_reference data URLs must be base64-encoded.")
        try:
            return _image(base64.b64decode(payload, validate=True))
        except binascii.Error:
            raise invalid_value("input_reference", "input_reference data URL is not valid base64.") from None
    if url.startswith(("https://", "http://")):
        return None  # the simulator never fetches anything, so a remote image is taken on trust
    raise invalid_value("input_reference", "input_reference image_url must be an http(s) or data URL.")


def _image(data: bytes) -> ImageInfo:
    try:
        return image_info(data)
    except ImageError as error:
        raise invalid_value(
            "input_reference", f"input_reference must be a JPEG, PNG or WebP image ({error})."
        ) from None


def _listing(values: tuple[str, ...]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
