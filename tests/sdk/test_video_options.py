"""Per-request video options through the official `openai` SDK (`extra_body`), at every model of
the local stack's catalog that declares some: the video completes, and the provider received each
option under its own wire name (the simulator records what each create carried).

The wire names are the providers' documented ones: the Gemini API's `negativePrompt` and
`personGeneration` parameters, and fal's Veo input and the AI/ML API's Veo schema, which use the
gateway's own names (`negative_prompt`, `generate_audio`).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from openai import BadRequestError, OpenAI
from openai.types import Model

from tests.conftest import RunningStack
from tests.mp4 import boxes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GEMINI_NAMES = {"negative_prompt": "negativePrompt", "person_generation": "personGeneration"}
# A value of each option, unlike any default (Veo makes sound unless told, people unless told).
VALUES: dict[str, Any] = {"negative_prompt": "blurry, text overlays", "generate_audio": False}


def asked_for(model: Model) -> dict[str, Any]:
    """Every option the model declares, with a value that is nobody's default."""
    declared: dict[str, Any] = (model.model_extra or {})["options"]
    asked = {name: VALUES[name] for name in declared if name in VALUES}
    if "person_generation" in declared:
        asked["person_generation"] = declared["person_generation"]["enum"][-1]
    return asked


def received(stack: RunningStack, marker: str) -> list[dict[str, Any]]:
    return stack.upstream_options_for(marker)


def check_one_model(stack: RunningStack, model: Model) -> str:
    """ "ok: ..." or why not; one app per model, so the quota fits any catalog."""
    asked = asked_for(model)
    marker = f"options-{uuid.uuid4().hex}"
    app = stack.client.create_app("pro")
    try:
        with OpenAI(base_url=f"{stack.api}/v1", api_key=app.api_key, max_retries=0, timeout=60) as client:
            video = client.videos.create_and_poll(
                model=model.id, prompt=f"A heron in reeds {marker}", seconds="4", extra_body=asked
            )
            content = client.videos.download_content(video.id).read()
        assert video.status == "completed", video.error
        assert boxes(content)[0][0] == "ftyp"
        assert (video.model_extra or {})["options"] == asked
        provider = (video.model_extra or {})["provider"]
        names = GEMINI_NAMES if provider == "gemini" else {name: name for name in asked}
        assert received(stack, marker) == [{names[name]: value for name, value in asked.items()}]
    except Exception as error:  # reported per model below, so one failure hides no other
        return f"{type(error).__name__}: {error}"
    return f"ok: {model.owned_by} got {sorted(asked)}"


def test_every_model_with_options_passes_them_to_its_provider(stack: RunningStack) -> None:
    reader = stack.client.create_app("pro")
    with OpenAI(base_url=f"{stack.api}/v1", api_key=reader.api_key, max_retries=0, timeout=60) as client:
        models = [model for model in client.models.list() if (model.model_extra or {})["options"]]
    # The sample catalog declares options at the Gemini API, fal and (first route) the AI/ML API.
    assert {model.id for model in models} >= {"veo-3.0", "veo-3.1", "veo-3.1-fal"}

    with ThreadPoolExecutor(max_workers=len(models)) as pool:
        outcomes = dict(
            zip([m.id for m in models], pool.map(lambda m: check_one_model(stack, m), models), strict=True)
        )
    for model_id, outcome in outcomes.items():
        print(f"{model_id}: {outcome}")
    assert {
        model_id: outcome for model_id, outcome in outcomes.items() if not outcome.startswith("ok:")
    } == {}


def test_an_option_a_model_does_not_take_is_a_400_that_costs_nothing(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    client = OpenAI(base_url=f"{stack.api}/v1", api_key=app.api_key, max_retries=0, timeout=60)
    # The Gemini API's Veo always makes sound: the catalog gives veo-3.0 no audio switch.
    with client, pytest.raises(BadRequestError) as refused:
        client.videos.create(
            model="veo-3.0", prompt="A heron", seconds="4", extra_body={"generate_audio": False}
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == (
        "unsupported_parameter",
        "generate_audio",
    )
    assert stack.client.usage(app.api_key)["used"] == {"hour": 0, "day": 0}
