"""The request schemas of the OpenAPI document come from the model catalog, and say exactly what
the gateway's own validation accepts: same models, and per model the same sizes, durations and
image input. Checked for the local stack's catalog (every provider kind) and the built-in one."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from api.openapi import openapi_document
from devhost.config import load_values
from gateway.catalog import CatalogModel
from gateway.errors import InvalidRequest
from gateway.settings import Settings
from gateway.validation import parse_video_spec
from tests.conftest import PROJECT_DIR

BUILT_IN = Settings.from_env(
    {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k", "GEMINIGEN_API_KEY": "k"}
)
STACK = Settings.from_env(load_values(PROJECT_DIR))  # the settings the stacks under test run with


def create_schema(catalog: Mapping[str, CatalogModel], media: str) -> Draft202012Validator:
    document = openapi_document(catalog)
    schema = document["paths"]["/v1/videos"]["post"]["requestBody"]["content"][media]["schema"]
    # The fields reference the Metadata component: resolve against the whole document.
    return Draft202012Validator({**schema, "components": document["components"]})


def test_the_model_field_lists_the_catalog_and_defaults_to_its_first() -> None:
    for catalog in (STACK.catalog, BUILT_IN.catalog):
        document = openapi_document(catalog)
        body = document["paths"]["/v1/videos"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        model = body["properties"]["model"]
        assert model["enum"] == list(catalog)
        assert model["default"] == next(iter(catalog))
        assert body["properties"]["size"]["enum"] == list(
            dict.fromkeys(size for entry in catalog.values() for size in entry.sizes)
        )
    # The built-in catalog's document names no retired model anywhere.
    assert "sora" not in str(openapi_document(BUILT_IN.catalog)).lower().replace("sora video gateway", "")


def _validation_accepts(fields: dict[str, Any], settings: Settings) -> bool:
    try:
        parse_video_spec(fields, settings)
    except InvalidRequest:
        return False
    return True


def _sizes_and_seconds(catalog: Mapping[str, CatalogModel]) -> tuple[list[str], list[str]]:
    sizes = list(dict.fromkeys(size for model in catalog.values() for size in model.sizes))
    seconds = list(dict.fromkeys(value for model in catalog.values() for value in model.seconds))
    return sizes, seconds


@pytest.mark.parametrize("which", ["stack", "built-in"])
def test_the_document_accepts_exactly_what_validation_accepts(which: str) -> None:
    settings = STACK if which == "stack" else BUILT_IN
    catalog = settings.catalog
    schema = create_schema(catalog, "application/json")
    sizes, seconds = _sizes_and_seconds(catalog)
    checked = 0
    for model, size, duration in itertools.product([None, *catalog], sizes, seconds):
        fields: dict[str, Any] = {"prompt": "p", "size": size, "seconds": duration}
        if model is not None:
            fields["model"] = model
        documented = schema.is_valid(fields)
        assert documented == _validation_accepts(fields, settings), (fields, documented)
        checked += 1
    assert checked >= len(catalog) * 2


def test_a_model_without_image_input_is_documented_as_taking_none() -> None:
    catalog = STACK.catalog
    takes = [model for model in catalog.values() if model.image_input]
    refuses = [model for model in catalog.values() if not model.image_input]
    assert takes  # the local catalog has both kinds
    assert refuses
    schema = create_schema(catalog, "application/json")
    for model in catalog.values():
        body = {
            "prompt": "p",
            "model": model.id,
            "input_reference": {"image_url": "data:image/png;base64,AA=="},
        }
        assert schema.is_valid(body) == model.image_input, model.id


# Each option's values worth trying: ones some model takes, and ones no model does.
OPTION_VALUES: dict[str, list[Any]] = {
    "negative_prompt": ["blurry, text overlays", "   ", "x" * 1000, "x" * 1001],
    "generate_audio": [True, False],
    "person_generation": ["allow_all", "allow_adult", "dont_allow", "everyone"],
}


def _validation_accepts_with_image(fields: dict[str, Any], settings: Settings) -> bool:
    try:
        parse_video_spec(fields, settings, image=True)
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize("which", ["stack", "built-in"])
def test_the_document_takes_exactly_the_options_validation_takes(which: str) -> None:
    settings = STACK if which == "stack" else BUILT_IN
    schema = create_schema(settings.catalog, "application/json")
    image = {"image_url": "data:image/png;base64,AA=="}
    verdicts: set[tuple[bool, bool]] = set()
    for model in [None, *settings.catalog]:
        for name, values in OPTION_VALUES.items():
            for value in values:
                fields: dict[str, Any] = {"prompt": "p", name: value}
                if model is not None:
                    fields["model"] = model
                documented = schema.is_valid(fields)
                assert documented == _validation_accepts(fields, settings), (fields, documented)
                verdicts.add(
                    (name in settings.catalog[model or settings.allowed_models[0]].options, documented)
                )
                if model is not None and settings.catalog[model].image_input:
                    with_image = {**fields, "input_reference": image}
                    assert schema.is_valid(with_image) == _validation_accepts_with_image(fields, settings), (
                        with_image
                    )
    # Both catalogs have models that take options and models that take none.
    assert verdicts == {(True, True), (True, False), (False, False)}


def test_a_model_that_narrows_a_choice_is_documented_with_its_own_values() -> None:
    # The local catalog's veo-3.0 takes person_generation allow_all and allow_adult only.
    schema = create_schema(STACK.catalog, "application/json")
    image = {"image_url": "data:image/png;base64,AA=="}

    assert schema.is_valid({"prompt": "p", "model": "veo-3.0", "person_generation": "allow_all"})
    assert not schema.is_valid({"prompt": "p", "model": "veo-3.0", "person_generation": "dont_allow"})
    # With an image, allow_all is for text alone.
    assert not schema.is_valid(
        {"prompt": "p", "model": "veo-3.0", "person_generation": "allow_all", "input_reference": image}
    )
    assert schema.is_valid(
        {"prompt": "p", "model": "veo-3.0", "person_generation": "allow_adult", "input_reference": image}
    )
    assert not schema.is_valid({"prompt": "p", "model": "sora-2", "negative_prompt": "rain"})
