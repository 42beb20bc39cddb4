"""Hostile request bodies against the running stack: each refused with a 4xx in the OpenAI error
shape, in the product's words, and without taking quota. Bodies are sent raw, as an attacker
would; the clients' own encodings (curl -F) must still be accepted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import RunningStack
from tests.images_support import image_bytes

PYTHON_WORDS = ("Expecting", "codec", "sys.", "set_int_max_str_digits", "recursion", "Traceback", "4300")


@pytest.fixture(scope="module")
def app_key(stack: RunningStack) -> str:
    return stack.client.create_app("pro", name="hostile bodies").api_key


def post(stack: RunningStack, key: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        f"{stack.api}/v1/videos",
        data=body,
        headers={**stack.headers(key), "Content-Type": content_type},
        timeout=120,
    )


def refused(response: requests.Response, status: int, code: str, param: str | None = None) -> str:
    """The error's message, once the answer is checked to be that OpenAI-shaped refusal."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert not any(word in error["message"] for word in PYTHON_WORDS), error["message"]
    return str(error["message"])


def tiny_parts(size: int) -> bytes:
    one = b'--t\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n'
    return one * (size // len(one)) + b"--t--\r\n"


def test_4_mb_of_tiny_multipart_parts_is_400(stack: RunningStack, app_key: str) -> None:
    response = post(stack, app_key, tiny_parts(4 * 1024 * 1024), "multipart/form-data; boundary=t")
    assert "more than 64 parts" in refused(response, 400, "invalid_value")


def test_deeply_nested_json_on_create_is_400(stack: RunningStack, app_key: str) -> None:
    body = b'{"prompt": "p", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    message = refused(post(stack, app_key, body, "application/json"), 400, "invalid_json")
    assert message == "The request body nests arrays and objects more than 32 levels deep."


@pytest.mark.parametrize(("method", "path"), [("POST", "/apps"), ("PATCH", "/apps/{app_id}")])
def test_deeply_nested_json_on_the_management_api_is_400(stack: RunningStack, method: str, path: str) -> None:
    app = stack.client.create_app("free")
    body = b'{"name": "n", "plan": "pro", "x": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}"
    response = stack.client.manage(method, path.format(app_id=app.id), data=body)
    assert "32 levels deep" in refused(response, 400, "invalid_json")
    assert stack.client.manage("GET", f"/apps/{app.id}").json()["plan"] == "free"


def test_deeply_nested_json_metadata_in_a_form_is_400(stack: RunningStack, app_key: str) -> None:
    response = requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(app_key),
        files={"prompt": (None, "p"), "metadata": (None, "[" * 10_000 + "]" * 10_000)},
        timeout=60,
    )
    assert "32 levels deep" in refused(response, 400, "invalid_json", "metadata")


def test_a_huge_integer_is_400_in_the_products_words(stack: RunningStack, app_key: str) -> None:
    body = b'{"prompt": "p", "seconds": ' + b"4" * 5000 + b"}"
    message = refused(post(stack, app_key, body, "application/json"), 400, "invalid_json")
    assert message == "The request body has a number longer than 100 characters."


@pytest.mark.parametrize("body", [b'{"prompt": "caf\xe9"}', '{"prompt": "p"}'.encode("utf-16")])
def test_a_body_that_is_not_utf8_is_400(stack: RunningStack, app_key: str, body: bytes) -> None:
    message = refused(post(stack, app_key, body, "application/json"), 400, "invalid_json")
    assert message == "The request body is not UTF-8 JSON."


def test_a_management_body_over_64_kib_is_413(stack: RunningStack) -> None:
    body = json.dumps({"name": "n", "plan": "pro", "pad": "x" * 70_000}).encode()
    response = stack.client.manage("POST", "/apps", data=body)
    refused(response, 413, "payload_too_large")


def test_curl_form_upload_is_accepted(stack: RunningStack, tmp_path: Path) -> None:
    """curl -F writes its own multipart framing (its boundary, a per-file Content-Type)."""
    app = stack.client.create_app("pro")
    picture = tmp_path / "still.png"
    picture.write_bytes(image_bytes(1280, 720))
    run = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-H",
            f"Authorization: Bearer {app.api_key}",
            "-F",
            "prompt=A still, moving",
            "-F",
            "size=1280x720",
            "-F",
            "metadata[source]=curl",
            "-F",
            f"input_reference=@{picture};type=image/png",
            f"{stack.api}/v1/videos",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body: dict[str, Any] = json.loads(run.stdout)
    assert body.get("status") == "queued", run.stdout
    assert body["metadata"] == {"source": "curl"}
    assert stack.client.wait_finished(app.api_key, body["id"])["status"] == "completed"


def test_nothing_refused_took_quota(stack: RunningStack, app_key: str) -> None:
    assert stack.client.usage(app_key)["used"] == {"hour": 0, "day": 0}
