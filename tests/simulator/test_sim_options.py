"""The per-request option fields (gateway.video_options) as each simulated provider takes them, and
what `/_sim/created` records of them. Raw HTTP against the shared simulator.

Documented, in our words (sources as in the adapters' and simulator modules' docstrings):

- Gemini API, Veo: `negativePrompt` is a string; `personGeneration` is `allow_all` for text alone
  and `allow_adult` with an image (Veo 3.x in the EU, UK, CH and MENA: `allow_adult` only);
  `dont_allow` is Veo 2's. Veo 3.x on the Gemini API always makes sound.
- fal: Veo 3.1 inputs have `negative_prompt` (string) and `generate_audio` (boolean); Kling v2.x
  inputs have `negative_prompt`. Validation errors are 422 `{"detail": [{loc, msg, type, input}]}`.
- AI/ML API: the google/veo-3.1 schemas have `negative_prompt` (string) and `generate_audio`
  (boolean, default true); validation errors are 400 "Body validation error!".

Assumed (the simulator's choices, not in the sources):

- Gemini refuses `generateAudio` with 400 INVALID_ARGUMENT: the google-genai SDK refuses
  `generate_audio` in Gemini-API mode, so the API is taken not to know the field.
- Gemini takes `allow_adult` for text too (the EU rule implies it is a valid text value) and
  refuses `dont_allow` for Veo 3.x; regions are not modelled, so `allow_all` is taken everywhere.
- fal's inputs are pydantic models in lax mode (a string "false" is a boolean; error types
  `string_type`, `bool_type`, `bool_parsing`), and a field a model lacks is ignored.
- AI/ML API's type errors read as zod's ("<field>: Expected boolean, received string").
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from sorasim import SoraSimulator
from tests.simulator.support import png_bytes

# The shared simulator's default keys (SimulatorConfig).
GEMINI_KEY = {"x-goog-api-key": "sim-gemini-key"}
FAL_KEY = {"Authorization": "Key sim-fal-key"}
AIMLAPI_KEY = {"Authorization": "Bearer sim-aimlapi-key"}
VEO3 = "veo-3.0-fast-generate-001"
VEO2 = "veo-2.0-generate-001"
KLING_T2V = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"


def created(sim: SoraSimulator, needle: str) -> dict[str, Any]:
    answer = requests.get(f"{sim.url}/_sim/created", params={"prompt_contains": needle}, timeout=5)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def gemini_create(
    sim: SoraSimulator, prompt: str, parameters: dict[str, Any], *, model: str = VEO3, image: bool = False
) -> requests.Response:
    instance: dict[str, Any] = {"prompt": prompt}
    if image:
        data = base64.b64encode(png_bytes(16, 9)).decode()
        instance["image"] = {"inlineData": {"mimeType": "image/png", "data": data}}
    body = {"instances": [instance], "parameters": {"durationSeconds": 8, **parameters}}
    url = f"{sim.url}/v1beta/models/{model}:predictLongRunning"
    return requests.post(url, json=body, headers=GEMINI_KEY, timeout=10)


def fal_submit(sim: SoraSimulator, model: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{sim.url}/{model}", json=body, headers=FAL_KEY, timeout=10)


def aimlapi_create(sim: SoraSimulator, body: dict[str, Any]) -> requests.Response:
    full = {"model": "google/veo-3.1-t2v", "duration": 4, **body}
    return requests.post(f"{sim.url}/v2/video/generations", json=full, headers=AIMLAPI_KEY, timeout=10)


def assert_google_invalid(response: requests.Response, naming: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert naming in error["message"]


# -- gemini ------------------------------------------------------------------------------------


@pytest.mark.parametrize("audio", [True, False])
def test_gemini_refuses_generate_audio(sim: SoraSimulator, audio: bool) -> None:
    # Either value: the field itself is unknown there (see the module docstring: an assumption).
    response = gemini_create(sim, "with sound #opt-audio", {"generateAudio": audio})
    assert_google_invalid(response, "generateAudio")
    assert created(sim, "#opt-audio")["jobs_created"] == 0


@pytest.mark.parametrize(
    ("model", "image", "persons", "accepted"),
    [
        (VEO3, False, "allow_all", True),  # documented for text
        (VEO3, False, "allow_adult", True),  # the EU value, so valid for text (assumed)
        (VEO3, True, "allow_adult", True),  # documented for an image
        (VEO3, True, "allow_all", False),  # documented for text alone
        (VEO3, False, "dont_allow", False),  # Veo 2's value
        (VEO2, False, "dont_allow", True),
        (VEO2, True, "dont_allow", True),
        (VEO2, True, "allow_all", False),
        (VEO3, False, "ALLOW_ALL", False),  # the values are lower case
    ],
)
def test_gemini_person_generation_follows_the_docs_table(
    sim: SoraSimulator, model: str, image: bool, persons: str, accepted: bool
) -> None:
    # Veo 2 makes 720p only; 720p is the default, so both models take these parameters.
    response = gemini_create(
        sim, "people #opt-persons", {"personGeneration": persons}, model=model, image=image
    )
    if accepted:
        assert response.status_code == 200, response.text
        assert created(sim, "#opt-persons")["options"] == [{"personGeneration": persons}]
    else:
        assert_google_invalid(response, "personGeneration")
        assert created(sim, "#opt-persons")["jobs_created"] == 0


def test_gemini_negative_prompt_must_be_a_string(sim: SoraSimulator) -> None:
    response = gemini_create(sim, "typed #opt-gemini-type", {"negativePrompt": ["blur"]})
    assert_google_invalid(response, "negativePrompt")
    assert created(sim, "#opt-gemini-type")["jobs_created"] == 0


# -- fal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field", "value", "kind"),
    [
        ("fal-ai/veo3.1", "negative_prompt", 7, "string_type"),
        ("fal-ai/veo3.1", "generate_audio", "maybe", "bool_parsing"),
        ("fal-ai/veo3.1", "generate_audio", [True], "bool_type"),
        ("fal-ai/veo3.1/fast", "generate_audio", 2, "bool_type"),
        (KLING_T2V, "negative_prompt", {"text": "blur"}, "string_type"),
    ],
)
def test_fal_refuses_a_wrong_type_as_a_422_detail(
    sim: SoraSimulator, model: str, field: str, value: Any, kind: str
) -> None:
    response = fal_submit(sim, model, {"prompt": "typed #opt-fal-type", field: value})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert (detail["loc"], detail["type"], detail["input"]) == (["body", field], kind, value)
    assert detail["msg"].startswith("Input should be a valid ")
    assert created(sim, "#opt-fal-type")["jobs_created"] == 0


@pytest.mark.parametrize("value", [False, "false", "off", 0])
def test_fal_reads_a_boolean_as_pydantic_lax_mode_does(sim: SoraSimulator, value: Any) -> None:
    response = fal_submit(sim, "fal-ai/veo3.1", {"prompt": "lax #opt-fal-lax", "generate_audio": value})
    assert response.status_code == 200, response.text
    # Recorded as sent, so a test can tell a boolean from a string.
    assert created(sim, "#opt-fal-lax")["options"] == [{"generate_audio": value}]


def test_fal_kling_ignores_generate_audio_but_the_record_shows_it(sim: SoraSimulator) -> None:
    # Kling's input has no generate_audio: fal ignores unknown fields, which is why the adapter
    # refuses to send it; the record makes an adapter that sent it anyway visible.
    body = {"prompt": "kling #opt-kling", "negative_prompt": "rain", "generate_audio": "not a flag"}
    response = fal_submit(sim, KLING_T2V, body)
    assert response.status_code == 200, response.text
    assert created(sim, "#opt-kling")["options"] == [
        {"negative_prompt": "rain", "generate_audio": "not a flag"}
    ]


# -- aimlapi -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("generate_audio", "true", "generate_audio: Expected boolean, received string"),
        ("generate_audio", 1, "generate_audio: Expected boolean, received number"),
        ("negative_prompt", False, "negative_prompt: Expected string, received boolean"),
        ("negative_prompt", None, "negative_prompt: Expected string, received null"),
    ],
)
def test_aimlapi_refuses_a_wrong_type_in_its_400_shape(
    sim: SoraSimulator, field: str, value: Any, detail: str
) -> None:
    response = aimlapi_create(sim, {"prompt": "typed #opt-aiml-type", field: value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"message", "path", "requestId", "statusCode", "timestamp"}
    assert body["message"] == f"Body validation error!\n{detail}"
    assert body["statusCode"] == 400
    assert created(sim, "#opt-aiml-type")["jobs_created"] == 0


# -- /_sim/created -----------------------------------------------------------------------------


def test_created_records_each_jobs_native_options_in_creation_order(
    sim: SoraSimulator, http: requests.Session
) -> None:
    needle = "#opt-record"
    # An OpenAI-protocol job carries no options: it records {}.
    azure = http.post(f"{sim.url}/openai/v1/videos", json={"prompt": f"azure {needle}"}, timeout=10)
    assert azure.status_code == 200, azure.text
    gemini = gemini_create(
        sim, f"gemini {needle}", {"negativePrompt": "fog", "personGeneration": "allow_adult"}
    )
    fal = fal_submit(sim, "fal-ai/veo3.1", {"prompt": f"fal {needle}", "generate_audio": False})
    aimlapi = aimlapi_create(sim, {"prompt": f"aimlapi {needle}", "negative_prompt": "snow"})
    refused = aimlapi_create(sim, {"prompt": f"refused {needle}", "generate_audio": "yes"})
    statuses = [gemini.status_code, fal.status_code, aimlapi.status_code, refused.status_code]
    assert statuses == [200, 200, 200, 400], refused.text

    record = created(sim, needle)
    assert record["jobs_created"] == 4  # the refused create made no job and left no record
    assert record["options"] == [
        {},
        {"negativePrompt": "fog", "personGeneration": "allow_adult"},
        {"generate_audio": False},
        {"negative_prompt": "snow"},
    ]
    # Only the matching jobs: another needle sees only its own.
    assert created(sim, "gemini #opt-record")["options"] == [record["options"][1]]


def test_reset_forgets_the_recorded_options(sim: SoraSimulator) -> None:
    assert (
        fal_submit(sim, "fal-ai/veo3.1", {"prompt": "#opt-reset", "negative_prompt": "x"}).status_code == 200
    )
    assert created(sim, "#opt-reset")["options"] == [{"negative_prompt": "x"}]
    sim.reset()
    assert created(sim, "#opt-reset") == {"prompt_contains": "#opt-reset", "jobs_created": 0, "options": []}
