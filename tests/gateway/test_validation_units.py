"""Create-request validation (gateway/validation.py), pure: fields in, a VideoSpec or a 400 out.

tests/api/test_validation.py sends the same kinds of bodies through the running gateway.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.settings import Settings
from gateway.validation import VideoSpec, parse_video_spec

# A deployment that still names its Sora deployments the old way: the per-model rules are those
# of MODEL_OPTIONS' defaults, which exercise every rule (sizes, durations, aliases) per model.
BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AZURE_OPENAI_ENDPOINT": "https://x.invalid",
    "SORA_DEPLOYMENTS": '{"sora-2": "sora-2", "sora-2-pro": "sora-2-pro"}',
}
DEFAULTS = Settings.from_env(BASE)


def settings(**values: str) -> Settings:
    return Settings.from_env({**BASE, **values})


def refused(fields: dict[str, Any], using: Settings = DEFAULTS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as error:
        parse_video_spec(fields, using)
    assert error.value.status == 400
    return error.value


def test_defaults_are_sora_2_four_seconds_portrait() -> None:
    assert parse_video_spec({"prompt": "p"}, DEFAULTS) == VideoSpec(
        prompt="p", model="sora-2", seconds="4", size="720x1280"
    )


# --- sizes and durations per model -----------------------------------------------------------------


@pytest.mark.parametrize("size", ["720x1280", "1280x720"])
def test_sora_2_makes_its_720p_sizes(size: str) -> None:
    assert parse_video_spec({"prompt": "p", "size": size}, DEFAULTS).size == size


@pytest.mark.parametrize("size", ["1024x1792", "1792x1024"])
def test_sora_2_refuses_the_pro_sizes_naming_size(size: str) -> None:
    error = refused({"prompt": "p", "model": "sora-2", "size": size})
    assert (error.code, error.param) == ("invalid_value", "size")
    assert "720x1280, 1280x720" in error.message


@pytest.mark.parametrize("size", ["720x1280", "1280x720", "1024x1792", "1792x1024"])
def test_sora_2_pro_makes_all_four_sizes(size: str) -> None:
    assert parse_video_spec({"prompt": "p", "model": "sora-2-pro", "size": size}, DEFAULTS).size == size


def test_an_unknown_size_is_refused_for_every_model() -> None:
    for model in ("sora-2", "sora-2-pro"):
        assert refused({"prompt": "p", "model": model, "size": "640x480"}).param == "size"


@pytest.mark.parametrize("seconds", ["4", "8", "12", 4, 12, " 8 "])
def test_the_documented_durations_are_accepted_as_strings_or_integers(seconds: Any) -> None:
    assert parse_video_spec({"prompt": "p", "seconds": seconds}, DEFAULTS).seconds == str(seconds).strip()


@pytest.mark.parametrize("seconds", ["5", 10, "4.0", True, [4]])
def test_other_durations_are_refused_naming_seconds(seconds: Any) -> None:
    error = refused({"prompt": "p", "seconds": seconds})
    assert (error.code, error.param) == ("invalid_value", "seconds")


def test_durations_are_per_model_too() -> None:
    table = {
        "sora-2": {"sizes": ["720x1280"], "seconds": ["4"]},
        "sora-2-pro": {"sizes": ["720x1280"], "seconds": ["4", "8"]},
    }
    narrow = settings(MODEL_OPTIONS=json.dumps(table))
    assert refused({"prompt": "p", "model": "sora-2", "seconds": "8"}, narrow).param == "seconds"
    assert parse_video_spec({"prompt": "p", "model": "sora-2-pro", "seconds": "8"}, narrow).seconds == "8"


def test_allowed_sizes_narrow_every_model_and_move_the_default() -> None:
    landscape = settings(ALLOWED_SIZES="1280x720,1792x1024", ALLOWED_SECONDS="8,12")
    spec = parse_video_spec({"prompt": "p"}, landscape)
    assert (spec.size, spec.seconds) == ("1280x720", "8")  # the first each model still takes
    assert refused({"prompt": "p", "size": "720x1280"}, landscape).param == "size"
    assert refused({"prompt": "p", "model": "sora-2-pro", "size": "1024x1792"}, landscape).param == "size"


# --- aliases ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"aspect_ratio": "16:9"}, "1280x720"),
        ({"aspect_ratio": "landscape", "resolution": "720p"}, "1280x720"),
        ({"aspect_ratio": "PORTRAIT"}, "720x1280"),
        ({"resolution": "small"}, "720x1280"),
        ({"model": "sora-2-pro", "resolution": "1080p"}, "1024x1792"),
        ({"model": "sora-2-pro", "aspect_ratio": "16:9", "resolution": "large"}, "1792x1024"),
        ({"aspect_ratio": "16:9", "size": "1280x720"}, "1280x720"),  # agreeing is fine
    ],
)
def test_aspect_ratio_and_resolution_pick_the_size(fields: dict[str, Any], size: str) -> None:
    assert parse_video_spec({"prompt": "p", **fields}, DEFAULTS).size == size


def test_1080p_for_sora_2_names_the_resolution() -> None:
    error = refused({"prompt": "p", "aspect_ratio": "16:9", "resolution": "1080p"})
    assert (error.code, error.param) == ("invalid_value", "resolution")
    assert "sora-2 makes these sizes: 720x1280, 1280x720" in error.message


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"aspect_ratio": "16:9", "resolution": "1080p"}, "1920x1080"),
        ({"resolution": "large"}, "1080x1920"),
        ({"aspect_ratio": "landscape"}, "1280x720"),
    ],
)
def test_the_aliases_pick_the_models_own_size_of_that_shape(fields: dict[str, Any], size: str) -> None:
    # Veo's 1080p is 1920x1080; Sora 2 Pro's was 1792x1024: the alias follows the catalog.
    veo = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k"})
    assert parse_video_spec({"prompt": "p", **fields}, veo).size == size


def test_a_shape_the_deployment_does_not_make_names_the_aspect_ratio() -> None:
    landscape_only = settings(ALLOWED_SIZES="1280x720")
    assert refused({"prompt": "p", "aspect_ratio": "9:16", "resolution": "720p"}, landscape_only).param == (
        "aspect_ratio"
    )
    assert refused({"prompt": "p", "aspect_ratio": "9:16"}, landscape_only).param == "aspect_ratio"


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"aspect_ratio": "4:3"}, "invalid_value", "aspect_ratio"),
        ({"resolution": "4k"}, "invalid_value", "resolution"),
        ({"aspect_ratio": 16}, "invalid_value", "aspect_ratio"),
        ({"size": "720x1280", "aspect_ratio": "16:9"}, "conflicting_parameters", "size"),
        ({"seconds": "4", "duration": 8}, "conflicting_parameters", "duration"),
        ({"duration": 10}, "invalid_value", "duration"),
    ],
)
def test_bad_or_conflicting_aliases_are_named(fields: dict[str, Any], code: str, param: str) -> None:
    error = refused({"prompt": "p", **fields})
    assert (error.code, error.param) == (code, param)


def test_duration_stands_in_for_seconds() -> None:
    assert parse_video_spec({"prompt": "p", "duration": 12}, DEFAULTS).seconds == "12"
    assert parse_video_spec({"prompt": "p", "seconds": "8", "duration": 8}, DEFAULTS).seconds == "8"


# --- model, prompt, metadata, user ---------------------------------------------------------------


def test_models_are_those_allowed() -> None:
    assert refused({"prompt": "p", "model": "sora-3"}).param == "model"
    assert refused({"prompt": "p", "model": "sora-2-pro"}, settings(ALLOWED_MODELS="sora-2")).param == "model"
    only_pro = settings(ALLOWED_MODELS="sora-2-pro")
    assert parse_video_spec({"prompt": "p"}, only_pro).model == "sora-2-pro"  # the default moves too


@pytest.mark.parametrize(
    ("prompt", "code"),
    [
        (None, "missing_required_parameter"),
        ("   ", "invalid_value"),
        (42, "invalid_value"),
        ("x" * 11, "invalid_value"),
    ],
    ids=["missing", "blank", "not-a-string", "too-long"],
)
def test_the_prompt_is_required_non_blank_and_bounded(prompt: Any, code: str) -> None:
    fields = {} if prompt is None else {"prompt": prompt}
    error = refused(fields, settings(MAX_PROMPT_CHARS="10"))
    assert (error.code, error.param) == (code, "prompt")


def test_a_prompt_at_the_limit_is_accepted() -> None:
    assert parse_video_spec({"prompt": "x" * 10}, settings(MAX_PROMPT_CHARS="10")).prompt == "x" * 10


@pytest.mark.parametrize(
    "metadata",
    [["a"], {"a": 1}, {str(n): "v" for n in range(17)}, {"k" * 513: "v"}, {"a": "v" * 513}],
    ids=["list", "non-string-value", "17-keys", "long-key", "long-value"],
)
def test_bad_metadata_is_refused(metadata: Any) -> None:
    assert refused({"prompt": "p", "metadata": metadata}).param == "metadata"


def test_metadata_and_user_within_limits_are_kept() -> None:
    metadata = {str(n): "v" * 512 for n in range(16)}
    spec = parse_video_spec({"prompt": "p", "metadata": metadata, "user": "u" * 256}, DEFAULTS)
    assert (spec.metadata, spec.user) == (metadata, "u" * 256)


@pytest.mark.parametrize("user", [7, "u" * 257])
def test_a_bad_user_is_refused(user: Any) -> None:
    assert refused({"prompt": "p", "user": user}).param == "user"


def test_without_a_model_the_catalogs_first_is_made_at_portrait_720p_and_its_shortest_duration() -> None:
    # OpenAI's default model (sora-2) is retired: the default is whatever the operator lists first.
    built_in = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k"}
    )
    assert parse_video_spec({"prompt": "p"}, built_in) == VideoSpec(
        prompt="p", model="veo-3.1", seconds="4", size="720x1280"
    )
    assert refused({"prompt": "p", "model": "sora-2"}, built_in).param == "model"


SORA_2_SIZES = "sora-2 makes these sizes: 720x1280, 1280x720."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Missing required parameter: 'prompt'."),
        ({"prompt": " "}, "'prompt' must be a non-empty string."),
        (
            {"prompt": "p", "model": "sora-3"},
            "Invalid 'model': 'sora-3'. Expected one of: sora-2, sora-2-pro.",
        ),
        ({"prompt": "p", "seconds": "4", "duration": 8}, "'seconds' and its alias 'duration' disagree."),
        ({"prompt": "p", "seconds": True}, "Invalid 'seconds': True."),
        ({"prompt": "p", "duration": "5"}, "Invalid 'duration': '5'. sora-2 takes one of: 4, 8, 12."),
        ({"prompt": "p", "resolution": "1080p"}, f"Invalid 'resolution': '1080p'. {SORA_2_SIZES}"),
        (
            {"prompt": "p", "size": "1280x720", "aspect_ratio": "9:16"},
            "'size' conflicts with 'aspect_ratio'/'resolution'; send one or the other.",
        ),
        ({"prompt": "p", "size": "640x480"}, f"Invalid 'size': '640x480'. {SORA_2_SIZES}"),
        (
            {"prompt": "p", "aspect_ratio": "square"},
            "Invalid 'aspect_ratio': 'square'. Expected one of: 16:9, landscape, 9:16, portrait.",
        ),
        ({"prompt": "p", "metadata": []}, "'metadata' must be an object of string keys and values."),
        ({"prompt": "p", "metadata": {str(n): "v" for n in range(17)}}, "'metadata' holds at most 16 keys."),
        (
            {"prompt": "p", "metadata": {"k": 1}},
            "'metadata' keys and values must be strings of at most 512 characters.",
        ),
        ({"prompt": "p", "user": 7}, "'user' must be a string of at most 256 characters."),
    ],
)
def test_a_refusal_says_what_is_wrong_and_what_is_accepted(fields: dict[str, Any], message: str) -> None:
    assert refused(fields).message == message


def test_a_too_long_prompt_names_its_length_and_the_limit() -> None:
    error = refused({"prompt": "p" * 11}, settings(MAX_PROMPT_CHARS="10"))
    assert error.message == "'prompt' is too long: 11 characters, at most 10."


@pytest.mark.parametrize("seconds", [4.0, ["4"], None])
def test_seconds_must_be_text_or_a_whole_number(seconds: Any) -> None:
    fields = {"prompt": "p", "seconds": seconds}
    if seconds is None:  # absent: the default
        assert parse_video_spec(fields, DEFAULTS).seconds == "4"
    else:
        assert refused(fields).message == f"Invalid 'seconds': {seconds!r}."


def test_a_metadata_key_at_the_limit_is_kept() -> None:
    metadata = {"k" * 512: "v"}
    assert parse_video_spec({"prompt": "p", "metadata": metadata}, DEFAULTS).metadata == metadata
