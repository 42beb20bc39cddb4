"""Turning a create request's fields into a `VideoSpec`, or a 400 naming the field.

Sizes and durations are checked against what the chosen model accepts (`Settings.models`), so a
request the upstream would refuse is refused here, before it takes a quota slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InvalidRequest
from gateway.settings import ModelOptions, Settings

ASPECT_RATIOS = {"16:9": "landscape", "landscape": "landscape", "9:16": "portrait", "portrait": "portrait"}
RESOLUTIONS = {"720p": "720p", "small": "720p", "1080p": "1080p", "large": "1080p"}
SIZES_BY_SHAPE = {
    ("landscape", "720p"): "1280x720",
    ("portrait", "720p"): "720x1280",
    ("landscape", "1080p"): "1792x1024",
    ("portrait", "1080p"): "1024x1792",
}
MAX_METADATA_ITEMS = 16
MAX_METADATA_CHARS = 512
MAX_USER_CHARS = 256


@dataclass(frozen=True)
class VideoSpec:
    """A validated request for one video."""

    prompt: str
    model: str
    seconds: str
    size: str
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None


def parse_video_spec(fields: Mapping[str, Any], settings: Settings) -> VideoSpec:
    model = _choice(fields, "model", settings.allowed_models, default="sora-2")
    options = settings.models[model]
    return VideoSpec(
        prompt=prompt_of(fields, settings),
        model=model,
        seconds=_seconds(fields, model, options),
        size=_size(fields, model, options),
        metadata=metadata_of(fields.get("metadata")),
        user=user_of(fields.get("user")),
    )


def prompt_of(fields: Mapping[str, Any], settings: Settings) -> str:
    prompt = fields.get("prompt")
    if prompt is None:
        raise InvalidRequest(
            "Missing required parameter: 'prompt'.", code="missing_required_parameter", param="prompt"
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("'prompt' must be a non-empty string.", param="prompt")
    if len(prompt) > settings.max_prompt_chars:
        raise InvalidRequest(
            f"'prompt' is too long: {len(prompt)} characters, at most {settings.max_prompt_chars}.",
            param="prompt",
        )
    return prompt


def _choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...], *, default: str) -> str:
    value = fields.get(name)
    if value is None:
        value = default if default in allowed else allowed[0]
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(
            f"Invalid '{name}': {value!r}. Expected one of: {', '.join(allowed)}.", param=name
        )
    return value


def _seconds(fields: Mapping[str, Any], model: str, options: ModelOptions) -> str:
    name = "seconds"
    value = fields.get("seconds")
    if value is None and fields.get("duration") is not None:
        name, value = "duration", fields.get("duration")
    elif value is not None and fields.get("duration") is not None and str(fields["duration"]) != str(value):
        raise InvalidRequest(
            "'seconds' and its alias 'duration' disagree.", code="conflicting_parameters", param="duration"
        )
    if value is None:
        value = "4" if "4" in options.seconds else options.seconds[0]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"Invalid '{name}': {value!r}.", param=name)
    text = str(value).strip()
    if text not in options.seconds:
        raise InvalidRequest(
            f"Invalid '{name}': {value!r}. {model} takes one of: {', '.join(options.seconds)}.",
            param=name,
        )
    return text


def _size(fields: Mapping[str, Any], model: str, options: ModelOptions) -> str:
    size = fields.get("size")
    aspect = fields.get("aspect_ratio")
    resolution = fields.get("resolution")
    if aspect is not None or resolution is not None:
        shaped = _size_from_shape(aspect, resolution)
        if size is not None and size != shaped:
            raise InvalidRequest(
                "'size' conflicts with 'aspect_ratio'/'resolution'; send one or the other.",
                code="conflicting_parameters",
                param="size",
            )
        size = shaped
        name = _alias_at_fault(aspect, resolution, options)
    else:
        name = "size"
    if size is None:
        size = "720x1280" if "720x1280" in options.sizes else options.sizes[0]
    if not isinstance(size, str) or size not in options.sizes:
        shown = repr(size) if name == "size" else f"{fields.get(name)!r} (size {size})"
        raise InvalidRequest(
            f"Invalid '{name}': {shown}. {model} makes these sizes: {', '.join(options.sizes)}.",
            param=name,
        )
    return size


def _alias_at_fault(aspect: Any, resolution: Any, options: ModelOptions) -> str:
    """Which alias to name when the size they pick is not one the model makes."""
    if aspect is None:
        return "resolution"
    if resolution is None:
        return "aspect_ratio"
    # Both are valid here. The resolution is at fault when the same shape is made at 720p.
    shape = ASPECT_RATIOS[str(aspect).lower()]
    return "resolution" if SIZES_BY_SHAPE[(shape, "720p")] in options.sizes else "aspect_ratio"


def _size_from_shape(aspect: Any, resolution: Any) -> str:
    shape = _alias("aspect_ratio", aspect, ASPECT_RATIOS, default="portrait")
    level = _alias("resolution", resolution, RESOLUTIONS, default="720p")
    return SIZES_BY_SHAPE[(shape, level)]


def _alias(name: str, value: Any, meanings: dict[str, str], *, default: str) -> str:
    """What an alias value means (case-insensitive), or a 400 listing the accepted values."""
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in meanings:
        raise InvalidRequest(
            f"Invalid '{name}': {value!r}. Expected one of: {', '.join(meanings)}.", param=name
        )
    return meanings[value.lower()]


def metadata_of(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'metadata' must be an object of string keys and values.", param="metadata")
    if len(value) > MAX_METADATA_ITEMS:
        raise InvalidRequest(f"'metadata' holds at most {MAX_METADATA_ITEMS} keys.", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_METADATA_CHARS or len(item) > MAX_METADATA_CHARS:
            raise InvalidRequest(
                f"'metadata' keys and values must be strings of at most {MAX_METADATA_CHARS} characters.",
                param="metadata",
            )
    return dict(value)


def user_of(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_USER_CHARS:
        raise InvalidRequest(f"'user' must be a string of at most {MAX_USER_CHARS} characters.", param="user")
    return value
