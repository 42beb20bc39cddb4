"""`POST /v1/videos`: real answers, each checked against the document."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack
from tests.contract.document import assert_matches_document, pointer, schema_errors
from tests.contract.support import assert_error, create, tiny_png
from tests.gateway_client import AppCredentials

VIDEOS = "/v1/videos"
JSON_BODY = pointer("paths", VIDEOS, "post", "requestBody", "content", "application/json", "schema")
FORM_BODY = pointer("paths", VIDEOS, "post", "requestBody", "content", "multipart/form-data", "schema")


def used(stack: RunningStack, app: AppCredentials) -> int:
    return int(stack.client.usage(app.api_key)["used"]["hour"])


def test_json_create_is_202_with_location_retry_after_and_quota_headers(
    stack: RunningStack, pro_app: AppCredentials
) -> None:
    response = create(
        stack,
        pro_app.api_key,
        json={
            "prompt": "A lighthouse at dawn",
            "model": "sora-2-pro",
            "seconds": 8,
            "size": "1280x720",
            "metadata": {"order": "42"},
            "user": "end-user-7",
        },
    )

    video = assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/videos/{video['id']}"
    assert (video["status"], video["seconds"], video["size"]) == ("queued", "8", "1280x720")
    assert video["metadata"] == {"order": "42"}
    assert response.headers["x-ratelimit-remaining-hour"] == str(
        int(response.headers["x-ratelimit-limit-hour"]) - 1
    )


def test_multipart_create_like_the_openai_sdk(stack: RunningStack, pro_app: AppCredentials) -> None:
    fields = {"prompt": "A paper boat", "seconds": "4", "size": "720x1280", "metadata[team]": "blue"}
    response = create(stack, pro_app.api_key, files={name: (None, value) for name, value in fields.items()})

    video = assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text
    assert video["metadata"] == {"team": "blue"}


def test_aliases_pick_seconds_and_size(stack: RunningStack, pro_app: AppCredentials) -> None:
    body = {
        "prompt": "A city",
        "model": "sora-2-pro",
        "duration": 8,
        "aspect_ratio": "16:9",
        "resolution": "1080p",
    }
    response = create(stack, pro_app.api_key, json=body)

    video = assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text
    assert (video["seconds"], video["size"]) == ("8", "1792x1024")


def test_estimated_cost_is_an_amount_in_usd_for_an_allowed_model_and_size(
    stack: RunningStack, pro_app: AppCredentials
) -> None:
    # API.md: estimated_cost is {"amount", "currency": "USD"}; sora-2 at 1280x720 is allowed by default.
    response = create(
        stack, pro_app.api_key, json={"prompt": "A tall tower", "model": "sora-2", "size": "1280x720"}
    )

    video = assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text
    assert video["estimated_cost"]["currency"] == "USD"


def test_image_to_video_from_a_multipart_file(stack: RunningStack, pro_app: AppCredentials) -> None:
    files = {
        "prompt": (None, "The picture comes alive"),
        "input_reference": ("ref.png", tiny_png(), "image/png"),
    }
    response = create(stack, pro_app.api_key, files=files)

    assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text


def test_image_to_video_from_a_json_data_url(stack: RunningStack, pro_app: AppCredentials) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    body = {"prompt": "The picture comes alive", "input_reference": {"image_url": data_url}}
    response = create(stack, pro_app.api_key, json=body)

    assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text


# (id, request, status, code, param); API.md names the 400 codes but not those of 413/415.
REJECTIONS: list[tuple[str, dict[str, Any], int, str | None, str | None]] = [
    (
        "invalid_json",
        {"data": b"{", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
        None,
    ),
    ("missing_prompt", {"json": {"model": "sora-2"}}, 400, "missing_required_parameter", "prompt"),
    ("blank_prompt", {"json": {"prompt": "   "}}, 400, "invalid_value", "prompt"),
    ("long_prompt", {"json": {"prompt": "x" * 4001}}, 400, "invalid_value", "prompt"),
    ("unknown_model", {"json": {"prompt": "p", "model": "sora-3"}}, 400, "invalid_value", "model"),
    ("bad_seconds", {"json": {"prompt": "p", "seconds": "5"}}, 400, "invalid_value", "seconds"),
    ("bad_size", {"json": {"prompt": "p", "size": "640x480"}}, 400, "invalid_value", "size"),
    (
        "bad_aspect_ratio",
        {"json": {"prompt": "p", "aspect_ratio": "4:3"}},
        400,
        "invalid_value",
        "aspect_ratio",
    ),
    (
        "seconds_vs_duration",
        {"json": {"prompt": "p", "seconds": "8", "duration": 4}},
        400,
        "conflicting_parameters",
        None,
    ),
    (
        "size_vs_aspect_ratio",
        {"json": {"prompt": "p", "size": "1280x720", "aspect_ratio": "9:16"}},
        400,
        "conflicting_parameters",
        None,
    ),
    (
        "too_much_metadata",
        {"json": {"prompt": "p", "metadata": {f"k{i}": "v" for i in range(17)}}},
        400,
        "invalid_value",
        "metadata",
    ),
    (
        "long_metadata_value",
        {"json": {"prompt": "p", "metadata": {"k": "v" * 513}}},
        400,
        "invalid_value",
        "metadata",
    ),
    (
        "webhook_not_http",
        {"json": {"prompt": "p", "webhook_url": "ftp://127.0.0.1/hook"}},
        400,
        "invalid_value",
        "webhook_url",
    ),
    (
        "option_the_model_does_not_take",
        {"json": {"prompt": "p", "model": "sora-2", "negative_prompt": "rain"}},
        400,
        "unsupported_parameter",
        "negative_prompt",
    ),
    (
        "option_of_another_model",
        {"json": {"prompt": "p", "model": "veo-3.0", "generate_audio": False}},
        400,
        "unsupported_parameter",
        "generate_audio",
    ),
    (
        "choice_the_model_does_not_take",
        {"json": {"prompt": "p", "model": "veo-3.0", "person_generation": "dont_allow"}},
        400,
        "invalid_value",
        "person_generation",
    ),
    (
        "blank_negative_prompt",
        {"json": {"prompt": "p", "model": "veo-3.1", "negative_prompt": " "}},
        400,
        "invalid_value",
        "negative_prompt",
    ),
    (
        "flag_not_true_or_false",
        {"files": {"prompt": (None, "p"), "model": (None, "veo-3.1-fal"), "generate_audio": (None, "maybe")}},
        400,
        "invalid_value",
        "generate_audio",
    ),
    (
        "allow_all_with_an_image",
        {
            "files": {
                "prompt": (None, "p"),
                "model": (None, "veo-3.0"),
                "person_generation": (None, "allow_all"),
                "input_reference": ("ref.png", tiny_png(), "image/png"),
            }
        },
        400,
        "invalid_value",
        "person_generation",
    ),
    (
        "plain_text",
        {"data": b"prompt=x", "headers": {"Content-Type": "text/plain"}},
        415,
        None,
        None,
    ),
    (
        "too_large",
        {
            "data": b'{"prompt": "' + b"x" * (12 * 1024 * 1024) + b'"}',
            "headers": {"Content-Type": "application/json"},
        },
        413,
        None,
        None,
    ),
    (
        "not_an_image",
        {"files": {"prompt": (None, "p"), "input_reference": ("ref.png", b"not an image", "image/png")}},
        415,
        None,
        "input_reference",
    ),
    (
        "gif_image",
        {
            "files": {
                "prompt": (None, "p"),
                "input_reference": ("ref.gif", b"GIF89a" + b"\x00" * 64, "image/gif"),
            }
        },
        415,
        None,
        "input_reference",
    ),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "param"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejections_are_documented_errors_and_never_count(
    stack: RunningStack,
    pro_app: AppCredentials,
    request_kwargs: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    response = create(stack, pro_app.api_key, **request_kwargs)

    assert_error(response, VIDEOS, status, code, param)
    assert used(stack, pro_app) == 0


# (id, JSON body); each is accepted exactly when the document's JSON body schema allows it.
OPTION_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    (
        "veo_3_0_both_options",
        {"model": "veo-3.0", "negative_prompt": "blurry", "person_generation": "allow_adult"},
    ),
    ("veo_3_1_sound_off", {"model": "veo-3.1", "negative_prompt": "text overlays", "generate_audio": False}),
    ("veo_3_1_fal_sound_on", {"model": "veo-3.1-fal", "generate_audio": True}),
    ("sora_2_with_sound", {"model": "sora-2", "generate_audio": True}),
    ("veo_3_0_with_sound", {"model": "veo-3.0", "generate_audio": True}),
    ("veo_3_0_dont_allow", {"model": "veo-3.0", "person_generation": "dont_allow"}),
    ("veo_3_1_persons", {"model": "veo-3.1", "person_generation": "allow_adult"}),
    ("long_negative_prompt", {"model": "veo-3.1-fal", "negative_prompt": "x" * 1001}),
]


def test_options_the_document_allows_are_accepted_and_those_it_forbids_are_refused(
    stack: RunningStack, pro_app: AppCredentials
) -> None:
    verdicts = []
    for name, fields in OPTION_REQUESTS:
        body = {"prompt": f"A heron ({name})", "seconds": "4", **fields}
        allowed = not schema_errors(JSON_BODY, body)
        response = create(stack, pro_app.api_key, json=body)
        assert_matches_document("POST", VIDEOS, response)
        assert response.status_code == (202 if allowed else 400), (name, response.text)
        if not allowed:
            assert response.json()["error"]["param"] in fields, (name, response.text)
        verdicts.append(allowed)
    # Both kinds were tried; only the accepted ones took quota.
    assert verdicts.count(True) == 3
    assert used(stack, pro_app) == verdicts.count(True)


def test_a_multipart_flag_is_the_text_true_or_false(stack: RunningStack, pro_app: AppCredentials) -> None:
    fields = {"prompt": "A heron in the rain", "model": "veo-3.1-fal", "generate_audio": "false"}
    assert not schema_errors(FORM_BODY, fields)
    assert schema_errors(FORM_BODY, {**fields, "generate_audio": "maybe"})

    response = create(stack, pro_app.api_key, files={name: (None, value) for name, value in fields.items()})

    assert_matches_document("POST", VIDEOS, response)
    assert response.status_code == 202, response.text
    assert response.json()["options"] == {"generate_audio": False}  # read back as the flag it means


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sgw_unknown"}, {"api-key": "sgw_unknown"}])
def test_missing_or_unknown_key_is_401(stack: RunningStack, headers: dict[str, str]) -> None:
    response = requests.post(f"{stack.api}/v1/videos", headers=headers, json={"prompt": "p"}, timeout=30)

    assert_error(response, VIDEOS, 401, "invalid_api_key")


def test_free_plan_is_403(stack: RunningStack) -> None:
    app = stack.client.create_app("free")

    response = create(stack, app.api_key, json={"prompt": "p"})

    assert_error(response, VIDEOS, 403, "plan_not_allowed")


def test_over_quota_is_429_with_retry_after_window_and_quota_headers(
    stack: RunningStack, pro_app: AppCredentials
) -> None:
    limit = int(stack.client.usage(pro_app.api_key)["limits"]["hour"])
    for _ in range(limit):
        accepted = create(stack, pro_app.api_key, json={"prompt": "One of many"})
        assert_matches_document("POST", VIDEOS, accepted)
        assert accepted.status_code == 202, accepted.text

    refused = create(stack, pro_app.api_key, json={"prompt": "One too many"})

    assert_error(refused, VIDEOS, 429, "rate_limit_exceeded")
    assert refused.json()["error"]["window"] == "hour"
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["x-ratelimit-remaining-hour"] == "0"


def test_idempotency_key_replays_the_first_job_and_refuses_another_body(
    stack: RunningStack, pro_app: AppCredentials
) -> None:
    key = {"Idempotency-Key": "contract-idem-1"}
    first = create(stack, pro_app.api_key, json={"prompt": "Once"}, headers=key)
    again = create(stack, pro_app.api_key, json={"prompt": "Once"}, headers=key)
    other = create(stack, pro_app.api_key, json={"prompt": "Twice"}, headers=key)

    assert (
        assert_matches_document("POST", VIDEOS, first)["id"]
        == assert_matches_document("POST", VIDEOS, again)["id"]
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert_error(other, VIDEOS, 409, "idempotency_key_reused")
    assert used(stack, pro_app) == 1
