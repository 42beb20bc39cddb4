"""Per-request video options: the extras some models take beyond prompt, size and duration.

The gateway has one vocabulary of them, below. The catalog declares which a model takes (and, for
a choice, which values), each adapter declares which its protocol carries (`VIDEO_OPTIONS` in its
module, checked at start-up), and a request may send only what its model declares, validated here
like every other field before it takes a quota slot.

Requests send them as top-level fields (`extra_body` in the `openai` SDK), as JSON values or as
multipart form text ("true" / "false" for a flag).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, SettingsError

OptionValue = str | bool
# Choices as the catalog declares them: a choice option's allowed values, () for the others.
DeclaredOptions = Mapping[str, tuple[str, ...]]

TEXT, FLAG, CHOICE = "text", "flag", "choice"
_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class OptionSpec:
    name: str
    kind: str  # TEXT, FLAG or CHOICE
    description: str
    choices: tuple[str, ...] = ()  # every value the gateway knows, for a CHOICE
    max_chars: int = 0  # for TEXT

    def schema(self, choices: tuple[str, ...] = ()) -> dict[str, Any]:
        """The option's JSON Schema, with a model's own choices when it narrows them."""
        if self.kind == FLAG:
            return {"type": "boolean", "description": self.description}
        if self.kind == CHOICE:
            return {"type": "string", "enum": list(choices or self.choices), "description": self.description}
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_chars,
            "description": self.description,
        }


# Veo's prompt limit is 1,024 tokens; a negative prompt is a short list of things to avoid.
MAX_NEGATIVE_PROMPT_CHARS = 1000
# Google's values: allow_all is for text alone, allow_adult for image inputs (Veo 3.x takes only
# allow_adult in the EU, UK, CH and MENA), dont_allow is Veo 2's.
PERSONS_WITH_IMAGE = ("allow_adult", "dont_allow")

OPTIONS: Mapping[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec(
            "negative_prompt",
            TEXT,
            "What the video should not show.",
            max_chars=MAX_NEGATIVE_PROMPT_CHARS,
        ),
        OptionSpec("generate_audio", FLAG, "Whether the video has a sound track (default: the model's own)."),
        OptionSpec(
            "person_generation",
            CHOICE,
            "Whether people may appear: allow_all, allow_adult (adults only) or dont_allow. "
            "With an input image, allow_all is refused.",
            choices=("allow_all", "allow_adult", "dont_allow"),
        ),
    )
}


def parse_declared(where: str, value: Any) -> dict[str, tuple[str, ...]]:
    """A catalog entry's `options`: a list of option names, or an object of name -> true (the
    option as the gateway knows it) or a list of the values allowed (for a choice)."""
    if value is None:
        return {}
    if isinstance(value, list):
        value = dict.fromkeys(value, True)
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: options must be a list of option names or an object")
    declared: dict[str, tuple[str, ...]] = {}
    for name, allowed in value.items():
        spec = OPTIONS.get(name) if isinstance(name, str) else None
        if spec is None:
            raise SettingsError(f"{where} declares option {name!r}; the gateway knows {', '.join(OPTIONS)}")
        if allowed is True:
            declared[name] = spec.choices
            continue
        if spec.kind != CHOICE or not isinstance(allowed, list) or not allowed:
            form = "true or a non-empty list of its values" if spec.kind == CHOICE else "true"
            raise SettingsError(f"{where}: option {name} must be {form}")
        unknown = [item for item in allowed if item not in spec.choices]
        if unknown:
            raise SettingsError(
                f"{where}: option {name} lists {unknown}; its values are {', '.join(spec.choices)}"
            )
        declared[name] = tuple(dict.fromkeys(allowed))
    return declared


def parse_requested(
    fields: Mapping[str, Any], model: str, declared: DeclaredOptions, *, image: bool
) -> dict[str, OptionValue]:
    """The options a create request sends, checked against what its model declares."""
    requested: dict[str, OptionValue] = {}
    for name, spec in OPTIONS.items():
        raw = fields.get(name)
        if raw is None:
            continue
        if name not in declared:
            takes = ", ".join(declared) or "none"
            raise InvalidRequest(
                f"Model '{model}' does not take '{name}' (its options: {takes}; GET /v1/models).",
                code="unsupported_parameter",
                param=name,
            )
        requested[name] = _value(spec, raw, declared[name])
    if image and requested.get("person_generation") == "allow_all":
        raise InvalidRequest(
            "'person_generation' allow_all is for text alone; with an input image send "
            f"{' or '.join(PERSONS_WITH_IMAGE)}.",
            code="invalid_value",
            param="person_generation",
        )
    return requested


def _value(spec: OptionSpec, raw: Any, choices: tuple[str, ...]) -> OptionValue:
    name = spec.name
    if spec.kind == FLAG:
        # Multipart sends text; JSON sends a boolean.
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise InvalidRequest(f"Invalid '{name}': {raw!r}. Expected true or false.", param=name)
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name)
    if spec.kind == CHOICE:
        if raw not in choices:
            raise InvalidRequest(
                f"Invalid '{name}': {raw!r}. Expected one of: {', '.join(choices)}.", param=name
            )
        return raw
    if len(raw) > spec.max_chars:
        raise InvalidRequest(
            f"'{name}' is too long: {len(raw)} characters, at most {spec.max_chars}.", param=name
        )
    return raw
