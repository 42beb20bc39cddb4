"""Bad create requests: each gets its 4xx, OpenAI error shape and `param`; none counts."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import RunningStack

LONG_PROMPT = "x" * 4001
CASES: list[tuple[str, Any, int, str, str | None]] = [
    # (case, JSON body, status, code, param)
    ("no prompt", {"model": "sora-2"}, 400, "missing_required_parameter", "prompt"),
    ("blank prompt", {"prompt": "   "}, 400, "invalid_value", "prompt"),
    ("prompt not a string", {"prompt": 42}, 400, "invalid_value", "prompt"),
    ("prompt too long", {"prompt": LONG_PROMPT}, 400, "invalid_value", "prompt"),
    ("unknown model", {"prompt": "p", "model": "sora-3"}, 400, "invalid_value", "model"),
    ("seconds not allowed", {"prompt": "p", "seconds": "5"}, 400, "invalid_value", "seconds"),
    ("seconds a bool", {"prompt": "p", "seconds": True}, 400, "invalid_value", "seconds"),
    ("duration not allowed", {"prompt": "p", "duration": 10}, 400, "invalid_value", "duration"),
    (
        "seconds and duration disagree",
        {"prompt": "p", "seconds": "4", "duration": 8},
        400,
        "conflicting_parameters",
        "duration",
    ),
    ("unknown size", {"prompt": "p", "size": "640x480"}, 400, "invalid_value", "size"),
    # Azure's Sora 2 makes 720p only: the larger sizes are Sora 2 Pro's.
    ("pro size for sora-2", {"prompt": "p", "size": "1792x1024"}, 400, "invalid_value", "size"),
    (
        "pro size for sora-2, named",
        {"prompt": "p", "model": "sora-2", "size": "1024x1792"},
        400,
        "invalid_value",
        "size",
    ),
    ("1080p for sora-2", {"prompt": "p", "resolution": "1080p"}, 400, "invalid_value", "resolution"),
    (
        "large landscape for sora-2",
        {"prompt": "p", "aspect_ratio": "16:9", "resolution": "large"},
        400,
        "invalid_value",
        "resolution",
    ),
    ("unknown aspect ratio", {"prompt": "p", "aspect_ratio": "4:3"}, 400, "invalid_value", "aspect_ratio"),
    ("unknown resolution", {"prompt": "p", "resolution": "4k"}, 400, "invalid_value", "resolution"),
    (
        "size against aspect ratio",
        {"prompt": "p", "size": "720x1280", "aspect_ratio": "16:9"},
        400,
        "conflicting_parameters",
        "size",
    ),
    ("metadata not an object", {"prompt": "p", "metadata": ["a"]}, 400, "invalid_value", "metadata"),
    ("metadata value not a string", {"prompt": "p", "metadata": {"a": 1}}, 400, "invalid_value", "metadata"),
    (
        "too many metadata keys",
        {"prompt": "p", "metadata": {str(i): "v" for i in range(17)}},
        400,
        "invalid_value",
        "metadata",
    ),
    (
        "metadata value too long",
        {"prompt": "p", "metadata": {"a": "v" * 513}},
        400,
        "invalid_value",
        "metadata",
    ),
    ("user not a string", {"prompt": "p", "user": 7}, 400, "invalid_value", "user"),
    # Per-request options: only those the model declares (the sample catalog's), with their values.
    (
        "option the model does not take",
        {"prompt": "p", "model": "sora-2", "negative_prompt": "rain"},
        400,
        "unsupported_parameter",
        "negative_prompt",
    ),
    (
        "audio switch on the Gemini API's Veo",
        {"prompt": "p", "model": "veo-3.0", "generate_audio": False},
        400,
        "unsupported_parameter",
        "generate_audio",
    ),
    (
        "audio not a flag",
        {"prompt": "p", "model": "veo-3.1", "generate_audio": "loud"},
        400,
        "invalid_value",
        "generate_audio",
    ),
    (
        "negative prompt too long",
        {"prompt": "p", "model": "veo-3.1", "negative_prompt": "x" * 1001},
        400,
        "invalid_value",
        "negative_prompt",
    ),
    (
        "person choice the model does not offer",
        {"prompt": "p", "model": "veo-3.0", "person_generation": "dont_allow"},
        400,
        "invalid_value",
        "person_generation",
    ),
    (
        "everyone from an image",
        {
            "prompt": "p",
            "model": "veo-3.0",
            "person_generation": "allow_all",
            "input_reference": {"image_url": "data:image/png;base64,AAAA"},
        },
        400,
        "invalid_value",
        "person_generation",
    ),
    ("body is a list", ["prompt"], 400, "invalid_json", None),
]


@pytest.fixture(scope="module")
def app_key(stack: RunningStack) -> str:
    return stack.client.create_app("pro").api_key


@pytest.mark.parametrize(("case", "body", "status", "code", "param"), CASES, ids=[case[0] for case in CASES])
def test_bad_bodies_are_refused_with_the_field_named(
    stack: RunningStack, app_key: str, case: str, body: Any, status: int, code: str, param: str | None
) -> None:
    response = stack.client.create_video(app_key, body)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"]


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b"prompt=hello", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"--x\r\n", "multipart/form-data", 400, "invalid_value"),
        (b"x" * (12 * 1024 * 1024), "application/json", 413, "payload_too_large"),
    ],
    ids=["broken json", "empty", "not utf-8", "form-urlencoded", "multipart without boundary", "too large"],
)
def test_unreadable_bodies_are_4xx(
    stack: RunningStack, app_key: str, raw: bytes, content_type: str, status: int, code: str
) -> None:
    response = requests.post(
        f"{stack.api}/v1/videos",
        data=raw,
        headers={**stack.headers(app_key), "Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_nothing_refused_counted(stack: RunningStack) -> None:
    """Every refused body, sent by an app of this test's own: none takes a slot (so the check
    stands alone, whatever else ran before it)."""
    app = stack.client.create_app("pro")
    for _case, body, status, _code, _param in CASES:
        assert stack.client.create_video(app.api_key, body).status_code == status
    assert stack.client.usage(app.api_key)["used"] == {"hour": 0, "day": 0}


@pytest.mark.parametrize(
    ("body", "size", "seconds"),
    [
        ({"prompt": "p", "aspect_ratio": "16:9"}, "1280x720", "4"),
        (
            {"prompt": "p", "model": "sora-2-pro", "aspect_ratio": "portrait", "resolution": "large"},
            "1024x1792",
            "4",
        ),
        (
            {
                "prompt": "p",
                "model": "sora-2-pro",
                "resolution": "1080p",
                "aspect_ratio": "landscape",
                "duration": 8,
            },
            "1792x1024",
            "8",
        ),
        ({"prompt": "p", "seconds": 12, "size": "720x1280"}, "720x1280", "12"),
    ],
)
def test_aliases_resolve_to_size_and_seconds(
    stack: RunningStack, body: dict[str, Any], size: str, seconds: str
) -> None:
    app = stack.client.create_app("pro")
    response = stack.client.create_video(app.api_key, body)
    assert response.status_code == 202, response.text
    assert (response.json()["size"], response.json()["seconds"]) == (size, seconds)


def test_multipart_create_with_metadata(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    response = requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(app.api_key),
        files={
            "prompt": (None, "A fox in the snow"),
            "seconds": (None, "8"),
            "metadata[campaign]": (None, "winter"),
            "user": (None, "user-42"),
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["prompt"], body["seconds"], body["metadata"]) == (
        "A fox in the snow",
        "8",
        {"campaign": "winter"},
    )
    assert body["estimated_cost"] == {"amount": 0.8, "currency": "USD"}
