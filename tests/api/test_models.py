"""The model catalog over HTTP (`GET /api/v1/models`), and what it refuses before any quota is
taken; against the local stack, whose catalog has a model at every provider."""

from __future__ import annotations

import base64

import requests

from tests.conftest import RunningStack
from tests.contract.document import assert_matches_document

# A 1x1 PNG: the check must come before the image is even looked at.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_the_catalog_is_listed_in_the_openai_shape_with_each_models_capabilities(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = requests.get(f"{stack.api}/v1/models", headers=stack.headers(app.api_key), timeout=30)

    assert response.status_code == 200
    assert_matches_document("GET", "/v1/models", response)
    body = response.json()
    assert body["object"] == "list"
    models = {model["id"]: model for model in body["data"]}
    # One model per provider of the local stack, each owned by its account.
    assert {models[name]["owned_by"] for name in ("sora-2", "sora-2-openai", "veo-3.1", "veo-3.1-fast")} == {
        "azure-openai",
        "openai",
        "aimlapi",
        "geminigen",
    }
    assert models["sora-2"] == {
        "id": "sora-2",
        "object": "model",
        "created": 0,
        "owned_by": "azure-openai",
        "sizes": ["720x1280", "1280x720"],
        "seconds": ["4", "8", "12"],
        "image_input": True,
        "remix": True,
        "price_per_second": 0.1,
        "options": {},
    }
    assert (models["veo-3.1"]["image_input"], models["veo-3.1"]["remix"]) == (False, False)
    assert models["veo-3.1"]["seconds"] == ["4", "6", "8"]
    assert models["sora-2-pro"]["price_per_second"]["1792x1024"] == 0.5


def test_one_model_is_retrieved_and_an_unknown_one_is_404(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    found = requests.get(f"{stack.api}/v1/models/veo-3.1", headers=stack.headers(app.api_key), timeout=30)
    missing = requests.get(f"{stack.api}/v1/models/sora-9", headers=stack.headers(app.api_key), timeout=30)

    assert found.status_code == 200
    assert_matches_document("GET", "/v1/models/{model_id}", found)
    assert (found.json()["id"], found.json()["owned_by"]) == ("veo-3.1", "aimlapi")
    assert missing.status_code == 404
    assert_matches_document("GET", "/v1/models/{model_id}", missing)
    assert missing.json()["error"]["code"] == "model_not_found"


def test_each_model_lists_the_options_it_takes_as_json_schemas(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = requests.get(f"{stack.api}/v1/models", headers=stack.headers(app.api_key), timeout=30)

    assert_matches_document("GET", "/v1/models", response)
    options = {model["id"]: model["options"] for model in response.json()["data"]}
    # The local catalog: Gemini's Veo 3.0 narrows person_generation to two of the three values.
    assert set(options["veo-3.0"]) == {"negative_prompt", "person_generation"}
    assert options["veo-3.0"]["person_generation"]["type"] == "string"
    assert options["veo-3.0"]["person_generation"]["enum"] == ["allow_all", "allow_adult"]
    negative = options["veo-3.0"]["negative_prompt"]
    assert (negative["type"], negative["minLength"], negative["maxLength"]) == ("string", 1, 1000)
    for model in ("veo-3.1", "veo-3.1-fal"):
        assert set(options[model]) == {"negative_prompt", "generate_audio"}, model
        assert options[model]["generate_audio"]["type"] == "boolean"
    for model in ("sora-2", "sora-2-pro", "sora-2-openai", "veo-3.1-fast"):
        assert options[model] == {}, model
    one = requests.get(f"{stack.api}/v1/models/veo-3.0", headers=stack.headers(app.api_key), timeout=30)
    assert one.json()["options"] == options["veo-3.0"]


def test_models_need_an_app_key(stack: RunningStack) -> None:
    for path in ("/v1/models", "/v1/models/sora-2"):
        anonymous = requests.get(f"{stack.api}{path}", timeout=30)
        wrong = requests.get(f"{stack.api}{path}", headers=stack.headers("sgw_not_a_key"), timeout=30)
        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_an_image_for_a_model_without_image_input_is_400_and_takes_no_quota(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    as_url = stack.client.create_video(
        app.api_key,
        {
            "prompt": "a heron",
            "model": "veo-3.1",
            "input_reference": "data:image/png;base64," + base64.b64encode(PNG).decode(),
        },
    )
    as_file = requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(app.api_key),
        data={"prompt": "a heron", "model": "veo-3.1-fast"},
        files={"input_reference": ("first.png", PNG, "image/png")},
        timeout=60,
    )

    for refused in (as_url, as_file):
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_value"
        assert refused.json()["error"]["param"] == "input_reference"
        assert "does not take an input image" in refused.json()["error"]["message"]
    assert stack.client.usage(app.api_key)["used"]["hour"] == 0


def test_a_remix_of_a_video_whose_model_cannot_remix_is_400_and_takes_no_quota(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    created = stack.client.create_video(app.api_key, {"prompt": "a heron at dawn", "model": "veo-3.1"})
    assert created.status_code == 202, created.text
    assert created.json()["provider"] == "aimlapi"
    source = stack.client.wait_finished(app.api_key, created.json()["id"], timeout=120)
    assert source["status"] == "completed", source
    used = stack.client.usage(app.api_key)["used"]["hour"]

    remix = requests.post(
        f"{stack.api}/v1/videos/{source['id']}/remix",
        headers=stack.headers(app.api_key),
        json={"prompt": "the same heron at dusk"},
        timeout=60,
    )

    assert remix.status_code == 400, remix.text
    assert remix.json()["error"]["code"] == "invalid_value"
    assert "cannot be remixed" in remix.json()["error"]["message"]
    assert stack.client.usage(app.api_key)["used"]["hour"] == used


def test_every_provider_of_the_local_catalog_makes_a_video(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    wanted = {
        "sora-2": "azure-openai",
        "sora-2-openai": "openai",
        "veo-3.1": "aimlapi",
        "veo-3.1-fast": "geminigen",
    }
    ids = {}
    for model in wanted:
        created = stack.client.create_video(
            app.api_key, {"prompt": f"a heron by {model}", "model": model, "size": "1280x720"}
        )
        assert created.status_code == 202, created.text
        ids[model] = created.json()["id"]

    for model, provider in wanted.items():
        done = stack.client.wait_finished(app.api_key, ids[model], timeout=120)
        assert (done["status"], done["provider"], done["size"]) == ("completed", provider, "1280x720"), done
        content = requests.get(done["video_url"], timeout=30)
        assert content.content[4:8] == b"ftyp"  # an MP4 in our own storage
