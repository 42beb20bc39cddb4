"""Turning a create request's fields into a `VideoSpec`, or a 400 naming the field.

Sizes and durations are checked against what the chosen model accepts (`Settings.models`), so a
request the upstream would refuse is refused here, before it takes a quota slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.catalog import shape_of
from gateway.errors import InvalidRequest
from gateway.settings import ModelOptions, Settings
from gateway.video_options import OptionValue, parse_requested

# The aliases' words, and the shape each names (`gateway.catalog.shape_of` of the model's sizes).
ASPECT_RATIOS = {"16:9": "16:9", "landscape": "16:9", "9:16": "9:16", "portrait": "9:16"}
RESOLUTIONS = {"720p": "720p", "small": "720p", "1080p": "1080p", "large": "1080p"}
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
    # Per-request options the model declares (gateway.video_options): part of what was asked.
    options: dict[str, OptionValue] = field(default_factory=dict)


def parse_video_spec(fields: Mapping[str, Any], settings: Settings, *, image: bool = False) -> VideoSpec:
    """`image`: whether the request carries an input image (some options depend on it)."""
    model = _model(fields, settings.allowed_models)
    options = settings.models[model]
    return VideoSpec(
        prompt=prompt_of(fields, settings),
        model=model,
        seconds=_seconds(fields, model, options),
        size=_size(fields, model, options),
        metadata=metadata_of(fields.get("metadata")),
        user=user_of(fields.get("user")),
        options=parse_requested(fields, model, settings.catalog[model].options, image=image),
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


def _model(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> str:
    """The requested model; without one, the catalog's first (OpenAI's own default, sora-2, is
    retired, and a deployment's first model is the one its operator put first)."""
    value = fields.get("model")
    if value is None:
        return allowed[0]
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest(
            f"Invalid 'model': {value!r}. Expected one of: {', '.join(allowed)}.", param="model"
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
        shaped, name = _size_from_shape(aspect, resolution, options)
        if shaped is None:
            raise InvalidRequest(
                f"Invalid '{name}': {fields.get(name)!r}. {model} makes these sizes: {', '.join(options.sizes)}.",
                param=name,
            )
        if size is not None and size != shaped:
            raise InvalidRequest(
                "'size' conflicts with 'aspect_ratio'/'resolution'; send one or the other.",
                code="conflicting_parameters",
                param="size",
            )
        size = shaped
    if size is None:
        size = default_size(options.sizes)
    if not isinstance(size, str) or size not in options.sizes:
        raise InvalidRequest(
            f"Invalid 'size': {size!r}. {model} makes these sizes: {', '.join(options.sizes)}.", param="size"
        )
    return size


def default_size(sizes: tuple[str, ...]) -> str:
    """OpenAI's default, portrait 720p, where the model makes it; else the model's first size."""
    return "720x1280" if "720x1280" in sizes else sizes[0]


def _size_from_shape(aspect: Any, resolution: Any, options: ModelOptions) -> tuple[str | None, str]:
    """The model's own size of that shape (portrait and 720p where a half is not given); or None
    and the alias at fault: the resolution when the model makes the aspect ratio at another one."""
    ratio = _alias("aspect_ratio", aspect, ASPECT_RATIOS, default="9:16")
    level = _alias("resolution", resolution, RESOLUTIONS, default="720p")
    shapes = {shape_of(size): size for size in options.sizes}
    if (ratio, level) in shapes:
        return shapes[(ratio, level)], ""
    if aspect is None:
        return None, "resolution"
    if resolution is None or not any(made == ratio for made, _ in shapes):
        return None, "aspect_ratio"
    return None, "resolution"


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
