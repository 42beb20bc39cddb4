"""Per-request video options: the catalog's declarations, the start-up check against the adapters,
and a request's values (pure rules; the stack-level path is tests/pipeline/test_video_options.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.catalog import CatalogModel, parse_catalog
from gateway.errors import InvalidRequest, SettingsError
from gateway.jobs import Job
from gateway.reroute import next_route
from gateway.settings import Settings
from gateway.submissions import Submission
from gateway.validation import VideoSpec, parse_video_spec
from gateway.video_options import MAX_NEGATIVE_PROMPT_CHARS, OPTIONS, parse_declared, parse_requested

ACCOUNTS = ("aimlapi", "fal", "gemini")
SIZES = ["1280x720", "720x1280"]


def catalog(*entries: dict[str, Any]) -> dict[str, CatalogModel]:
    return parse_catalog("MODEL_CATALOG", list(entries), ACCOUNTS)


def model(**changes: Any) -> dict[str, Any]:
    return {"id": "veo", "provider": "gemini", "sizes": SIZES, "seconds": [4, 8], **changes}


def routed(**changes: Any) -> dict[str, Any]:
    return {
        "id": "veo",
        "sizes": SIZES,
        "seconds": [4, 8],
        "options": ["negative_prompt", "generate_audio"],
        "routes": [
            {"provider": "gemini", "provider_model": "veo-3.0", "options": ["negative_prompt"]},
            {"provider": "fal", "provider_model": "fal-ai/veo3.1"},
        ],
        **changes,
    }


# -- what the catalog declares --------------------------------------------------------------------


def test_a_list_names_options_and_an_object_narrows_a_choice() -> None:
    assert parse_declared("here", ["negative_prompt", "person_generation"]) == {
        "negative_prompt": (),
        "person_generation": ("allow_all", "allow_adult", "dont_allow"),
    }
    assert parse_declared("here", {"person_generation": ["allow_adult"], "generate_audio": True}) == {
        "person_generation": ("allow_adult",),
        "generate_audio": (),
    }
    assert parse_declared("here", None) == {}


@pytest.mark.parametrize(
    ("declared", "named"),
    [
        (["seed"], "'seed'"),
        ({"person_generation": ["everyone"]}, "everyone"),
        ({"person_generation": []}, "person_generation"),
        ({"negative_prompt": ["x"]}, "negative_prompt"),
        ({"generate_audio": False}, "generate_audio"),
        ("negative_prompt", "list of option names"),
    ],
)
def test_a_bad_declaration_is_refused_naming_what_is_wrong(declared: Any, named: str) -> None:
    with pytest.raises(SettingsError, match=named) as raised:
        catalog(model(options=declared))
    assert "model 'veo'" in str(raised.value)


def test_a_model_without_routes_carries_its_options_on_its_one_route() -> None:
    veo = catalog(model(options={"negative_prompt": True, "person_generation": ["allow_adult"]}))["veo"]
    assert veo.options == {"negative_prompt": (), "person_generation": ("allow_adult",)}
    (route,) = veo.all_routes
    assert route.options == veo.options


def test_routes_inherit_the_models_options_and_may_narrow_them() -> None:
    veo = catalog(routed())["veo"]
    gemini, fal = veo.routes
    assert set(gemini.options) == {"negative_prompt"}
    assert set(fal.options) == {"negative_prompt", "generate_audio"}


def test_a_route_cannot_take_an_option_its_model_does_not_offer() -> None:
    entry = routed(options=["negative_prompt"])
    entry["routes"][1]["options"] = ["generate_audio"]
    with pytest.raises(SettingsError, match="route 2 option generate_audio"):
        catalog(entry)


def test_a_model_cannot_offer_an_option_no_route_carries() -> None:
    entry = routed()
    entry["routes"][1]["options"] = ["negative_prompt"]
    with pytest.raises(SettingsError, match="offers option generate_audio"):
        catalog(entry)


def test_a_model_cannot_offer_a_choice_no_route_carries() -> None:
    entry = routed(options={"person_generation": ["allow_all", "allow_adult"]})
    for route in entry["routes"]:
        route["options"] = {"person_generation": ["allow_adult"]}
    with pytest.raises(SettingsError, match="allow_all"):
        catalog(entry)


def test_only_routes_that_carry_the_requested_options_fit() -> None:
    veo = catalog(routed())["veo"]
    everything = veo.routes_for("1280x720", "4", image=False)
    assert [route.provider for route in everything] == ["gemini", "fal"]
    silent = veo.routes_for("1280x720", "4", image=False, options={"generate_audio": False})
    assert [route.provider for route in silent] == ["fal"]


def test_a_route_fits_only_the_choices_it_allows() -> None:
    entry = routed(options={"person_generation": ["allow_all", "allow_adult"]})
    entry["routes"] = [
        {
            "provider": "gemini",
            "provider_model": "veo-3.0",
            "options": {"person_generation": ["allow_adult"]},
        },
        {"provider": "aimlapi", "provider_model": "google/veo-3.1-t2v"},
    ]
    veo = catalog(entry)["veo"]
    adults = veo.routes_for("1280x720", "4", image=False, options={"person_generation": "allow_adult"})
    everyone = veo.routes_for("1280x720", "4", image=False, options={"person_generation": "allow_all"})
    assert [route.provider for route in adults] == ["gemini", "aimlapi"]
    assert [route.provider for route in everyone] == ["aimlapi"]


def test_a_job_moves_on_only_to_routes_that_carry_its_options() -> None:
    entry = routed()
    entry["routes"].insert(
        1, {"provider": "aimlapi", "provider_model": "sora", "options": ["negative_prompt"]}
    )
    options: dict[str, str | bool] = {"generate_audio": True}
    stuck = Job(
        id="video_1",
        app_id="app_1",
        model="veo",
        prompt="p",
        seconds="4",
        size="1280x720",
        created_at=0,
        provider="gemini",
        provider_model="veo-3.0",
        options=options,
    )
    route = next_route(stuck, catalog(entry))
    assert route is not None
    assert route.provider == "fal"


# -- the start-up check against the adapters --------------------------------------------------------

PROVIDERS = {
    "aimlapi": {"kind": "aimlapi", "base_url": "https://api.aimlapi.com", "key_setting": "K1"},
    "gemini": {
        "kind": "gemini",
        "base_url": "https://generativelanguage.googleapis.com/v1beta",
        "key_setting": "K2",
    },
    "fal": {"kind": "fal", "base_url": "https://queue.fal.run", "key_setting": "K3"},
}


def settings_with(*entries: dict[str, Any]) -> Settings:
    return Settings.from_env(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "PROVIDERS": json.dumps(PROVIDERS),
            "K1": "key-1",
            "K2": "key-2",
            "K3": "key-3",
            "MODEL_CATALOG": json.dumps(list(entries)),
        }
    )


def test_options_every_adapter_sends_are_accepted_at_start_up() -> None:
    settings = settings_with(
        model(provider_model="veo-3.0-generate-001", options=["negative_prompt", "person_generation"]),
        model(id="fal-veo", provider="fal", provider_model="fal-ai/veo3.1", options=["generate_audio"]),
        model(
            id="kling",
            provider="fal",
            provider_model="fal-ai/kling-video/v2.1/pro",
            options=["negative_prompt"],
        ),
        model(id="aiml", provider="aimlapi", provider_model="google/veo-3.1-t2v", options=["generate_audio"]),
    )
    assert set(settings.catalog["veo"].options) == {"negative_prompt", "person_generation"}


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        # Veo 3.x on the Gemini API always makes sound; its SDK refuses the option there.
        (model(provider_model="veo-3.0-generate-001", options=["generate_audio"]), "gemini adapter"),
        # fal's Kling inputs have no audio switch.
        (
            model(provider="fal", provider_model="fal-ai/kling-video/v2.1/pro", options=["generate_audio"]),
            "fal adapter",
        ),
        # The AI/ML API's options are known for its Veo schemas only.
        (
            model(provider="aimlapi", provider_model="openai/sora-2-t2v", options=["negative_prompt"]),
            "aimlapi",
        ),
        # fal's Veo input has no person_generation.
        (model(provider="fal", provider_model="fal-ai/veo3.1", options=["person_generation"]), "fal adapter"),
    ],
)
def test_an_option_the_adapter_would_not_send_stops_the_start(entry: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as raised:
        settings_with(entry)
    assert "MODEL_CATALOG" in str(raised.value)
    assert "'veo'" in str(raised.value)


def test_a_routes_options_are_checked_against_its_own_adapter() -> None:
    entry = routed()
    del entry["routes"][0]["options"]  # the gemini route would inherit generate_audio
    with pytest.raises(SettingsError, match=r"route 1 \(gemini\).*generate_audio"):
        settings_with(entry)


# -- a request's values ----------------------------------------------------------------------------

DECLARED = {
    "negative_prompt": (),
    "generate_audio": (),
    "person_generation": ("allow_all", "allow_adult"),
}


def test_declared_options_are_read_from_json_and_form_values() -> None:
    fields = {"negative_prompt": "no text", "generate_audio": "false", "person_generation": "allow_adult"}
    assert parse_requested(fields, "veo", DECLARED, image=True) == {
        "negative_prompt": "no text",
        "generate_audio": False,
        "person_generation": "allow_adult",
    }
    assert parse_requested({"generate_audio": True}, "veo", DECLARED, image=False) == {"generate_audio": True}
    assert parse_requested({"prompt": "p"}, "veo", DECLARED, image=False) == {}


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"generate_audio": "maybe"}, "invalid_value", "generate_audio"),
        ({"generate_audio": 1}, "invalid_value", "generate_audio"),
        ({"negative_prompt": ""}, "invalid_value", "negative_prompt"),
        ({"negative_prompt": ["a"]}, "invalid_value", "negative_prompt"),
        ({"negative_prompt": "x" * (MAX_NEGATIVE_PROMPT_CHARS + 1)}, "invalid_value", "negative_prompt"),
        # A value the gateway knows, but not one this model allows.
        ({"person_generation": "dont_allow"}, "invalid_value", "person_generation"),
        ({"person_generation": "ALLOW_ALL"}, "invalid_value", "person_generation"),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(fields: dict[str, Any], code: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_requested(fields, "veo", DECLARED, image=False)
    assert (raised.value.code, raised.value.param) == (code, param)


def test_an_option_the_model_does_not_declare_is_refused_with_what_it_takes() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_requested(
            {"seed_like": 1, "generate_audio": False}, "veo", {"negative_prompt": ()}, image=False
        )
    assert (raised.value.code, raised.value.param) == ("unsupported_parameter", "generate_audio")
    assert "negative_prompt" in str(raised.value)


def test_everyone_is_refused_with_an_input_image() -> None:
    """Google documents allow_all for text-to-video and allow_adult for image inputs."""
    assert parse_requested({"person_generation": "allow_all"}, "veo", DECLARED, image=False)
    with pytest.raises(InvalidRequest) as raised:
        parse_requested({"person_generation": "allow_all"}, "veo", DECLARED, image=True)
    assert raised.value.param == "person_generation"


# -- what the job keeps ------------------------------------------------------------------------------


def test_the_job_record_keeps_the_options_and_leaves_them_out_when_none() -> None:
    asked: dict[str, str | bool] = {"negative_prompt": "no text", "generate_audio": False}
    job = Job(id="video_1", app_id="app", model="veo", prompt="p", seconds="4", size="1280x720", created_at=0)
    with_options = Job(**{**job.__dict__, "options": asked})
    assert "options" not in job.to_entity()
    assert Job.from_entity(with_options.to_entity()).options == asked
    assert Job.from_entity(job.to_entity()).options == {}


def test_options_are_part_of_what_makes_a_request_the_same_request() -> None:
    spec = VideoSpec(prompt="p", model="veo", seconds="4", size="1280x720")
    silent = VideoSpec(
        prompt="p", model="veo", seconds="4", size="1280x720", options={"generate_audio": False}
    )
    assert Submission(spec).fingerprint() != Submission(silent).fingerprint()
    assert Submission(silent).fingerprint() == Submission(VideoSpec(**silent.__dict__)).fingerprint()


# -- what each refusal says -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (
            ["seed"],
            "w declares option 'seed'; the gateway knows negative_prompt, generate_audio, person_generation",
        ),
        (
            {"person_generation": ["everyone", "allow_all"]},
            "w: option person_generation lists ['everyone']; its values are allow_all, allow_adult, dont_allow",
        ),
        (
            {"person_generation": []},
            "w: option person_generation must be true or a non-empty list of its values",
        ),
        ({"negative_prompt": ["x"]}, "w: option negative_prompt must be true"),
        ({"generate_audio": False}, "w: option generate_audio must be true"),
    ],
)
def test_a_bad_declaration_says_what_the_option_takes(declared: Any, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_declared("w", declared)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("fields", "declared", "image", "message"),
    [
        (
            {"generate_audio": "maybe"},
            DECLARED,
            False,
            "Invalid 'generate_audio': 'maybe'. Expected true or false.",
        ),
        ({"negative_prompt": " "}, DECLARED, False, "'negative_prompt' must be a non-empty string."),
        (
            {"negative_prompt": "x" * (MAX_NEGATIVE_PROMPT_CHARS + 1)},
            DECLARED,
            False,
            "'negative_prompt' is too long: 1001 characters, at most 1000.",
        ),
        (
            {"person_generation": "dont_allow"},
            DECLARED,
            False,
            "Invalid 'person_generation': 'dont_allow'. Expected one of: allow_all, allow_adult.",
        ),
        (
            {"person_generation": "allow_all"},
            DECLARED,
            True,
            "'person_generation' allow_all is for text alone; with an input image send allow_adult or dont_allow.",
        ),
        (
            {"generate_audio": True},
            {},
            False,
            "Model 'veo' does not take 'generate_audio' (its options: none; GET /v1/models).",
        ),
        (
            {"generate_audio": True},
            {"negative_prompt": (), "person_generation": ()},
            False,
            "Model 'veo' does not take 'generate_audio' (its options: negative_prompt, person_generation; GET /v1/models).",
        ),
    ],
)
def test_a_refused_option_says_what_is_accepted(
    fields: dict[str, Any], declared: dict[str, tuple[str, ...]], image: bool, message: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_requested(fields, "veo", declared, image=image)
    assert raised.value.message == message
    assert raised.value.code == ("unsupported_parameter" if "does not take" in message else "invalid_value")


def test_flags_read_form_text_in_any_case_and_a_negative_prompt_may_fill_its_limit() -> None:
    assert parse_requested({"generate_audio": " True "}, "veo", DECLARED, image=False) == {
        "generate_audio": True
    }
    assert parse_requested({"generate_audio": "OFF"}, "veo", DECLARED, image=False) == {
        "generate_audio": False
    }
    longest = "x" * MAX_NEGATIVE_PROMPT_CHARS
    assert parse_requested({"negative_prompt": longest}, "veo", DECLARED, image=False) == {
        "negative_prompt": longest
    }


def test_each_option_has_the_json_schema_of_its_kind() -> None:
    assert OPTIONS["generate_audio"].schema() == {
        "type": "boolean",
        "description": "Whether the video has a sound track (default: the model's own).",
    }
    people = OPTIONS["person_generation"]
    assert people.schema() == {
        "type": "string",
        "enum": ["allow_all", "allow_adult", "dont_allow"],
        "description": people.description,
    }
    assert people.schema(("allow_adult",))["enum"] == ["allow_adult"]
    assert OPTIONS["negative_prompt"].schema() == {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NEGATIVE_PROMPT_CHARS,
        "description": "What the video should not show.",
    }


def test_a_create_request_carries_the_options_its_model_declares() -> None:
    settings = settings_with(
        model(provider_model="veo-3.0-generate-001", options=["negative_prompt", "person_generation"])
    )
    fields = {"prompt": "p", "model": "veo", "negative_prompt": "no text", "person_generation": "allow_all"}
    # allow_all is for text alone: a request without an image (the default) may ask for it.
    assert parse_video_spec(fields, settings).options == {
        "negative_prompt": "no text",
        "person_generation": "allow_all",
    }
    with pytest.raises(InvalidRequest):
        parse_video_spec(fields, settings, image=True)
    with pytest.raises(InvalidRequest) as refused:
        parse_video_spec({"prompt": "p", "model": "veo", "generate_audio": True}, settings)
    assert refused.value.message == (
        "Model 'veo' does not take 'generate_audio' (its options: negative_prompt, person_generation; GET /v1/models)."
    )


def test_without_seconds_a_model_makes_4_where_it_can_else_its_first_duration() -> None:
    settings = settings_with(model(seconds=[8, 4]), {**model(seconds=[6, 8]), "id": "veo-long"})
    assert parse_video_spec({"prompt": "p", "model": "veo"}, settings).seconds == "4"
    assert parse_video_spec({"prompt": "p", "model": "veo-long"}, settings).seconds == "6"
