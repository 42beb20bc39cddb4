"""Cross-origin access: only the origins in CORS_ALLOWED_ORIGINS (the test stack allows one)
may read answers or pass a preflight; against the local stack, as a browser would send them."""

from __future__ import annotations

import pytest
import requests

from gateway.errors import SettingsError
from gateway.settings import Settings
from tests.conftest import ALLOWED_ORIGIN, RunningStack

OTHER_ORIGIN = "http://127.0.0.1:5174"


def _preflight(stack: RunningStack, path: str, origin: str, method: str, headers: str) -> requests.Response:
    return requests.options(
        f"{stack.api}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=30,
    )


def test_an_allowed_origin_passes_the_preflight_with_the_headers_it_asked_for(stack: RunningStack) -> None:
    asked = "authorization, content-type, idempotency-key, x-stainless-retry-count"
    response = _preflight(stack, "/v1/videos", ALLOWED_ORIGIN, "POST", asked)
    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) >= {"GET", "POST", "DELETE"}
    assert response.headers["Access-Control-Allow-Headers"] == asked
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response.headers
    # Any path of the API, management included.
    managed = _preflight(stack, "/v1/manage/apps/app_x/keys", ALLOWED_ORIGIN, "POST", "x-admin-key")
    assert managed.status_code == 204


def test_other_origins_and_odd_preflights_are_refused_in_the_openai_shape(stack: RunningStack) -> None:
    for origin, method, headers in (
        (OTHER_ORIGIN, "GET", "authorization"),
        (ALLOWED_ORIGIN + "/", "GET", "authorization"),  # not the exact origin
        (ALLOWED_ORIGIN, "PUT", "authorization"),  # a method the API never takes
        (ALLOWED_ORIGIN, "GET", "authorization, bad header"),
    ):
        response = _preflight(stack, "/v1/videos", origin, method, headers)
        assert response.status_code == 403, (origin, method)
        assert response.json()["error"]["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Methods" not in response.headers
    # Refused to another origin, the answer carries nothing a browser would let it read.
    assert (
        "Access-Control-Allow-Origin" not in _preflight(stack, "/v1/videos", OTHER_ORIGIN, "GET", "").headers
    )


def test_answers_to_an_allowed_origin_are_readable_errors_included(stack: RunningStack) -> None:
    allowed = requests.get(
        f"{stack.api}/v1/usage", headers={**stack.headers(), "Origin": ALLOWED_ORIGIN}, timeout=30
    )
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    exposed = {name.strip().lower() for name in allowed.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "openai-poll-after-ms", "x-ratelimit-remaining-hour"} <= exposed
    assert "Origin" in allowed.headers["Vary"]
    # A 401 too: a page must be able to tell its user the key is wrong.
    unauthorized = requests.get(
        f"{stack.api}/v1/usage",
        headers={"Authorization": "Bearer nope", "Origin": ALLOWED_ORIGIN},
        timeout=30,
    )
    assert unauthorized.status_code == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    other = requests.get(
        f"{stack.api}/v1/usage", headers={**stack.headers(), "Origin": OTHER_ORIGIN}, timeout=30
    )
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    # The console's own origin needs no CORS, and is not given any.
    same = requests.get(
        f"{stack.api}/v1/usage", headers={**stack.headers(), "Origin": stack.origin}, timeout=30
    )
    assert "Access-Control-Allow-Origin" not in same.headers


def test_a_method_a_path_lacks_is_404_as_the_functions_host_answers_it(stack: RunningStack) -> None:
    # The catch-all OPTIONS route must not turn such requests into 405s: the host routes by
    # method too, and answers 404 (Azure/azure-functions-host#10098).
    assert requests.put(f"{stack.api}/v1/videos", timeout=30).status_code == 404
    assert requests.get(f"{stack.api}/v1/nothing-here", timeout=30).status_code == 404


def test_the_setting_takes_exact_origins_only() -> None:
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k"}
    assert Settings.from_env(base).cors_allowed_origins == frozenset()
    parsed = Settings.from_env({**base, "CORS_ALLOWED_ORIGINS": "https://A.example.com, http://[::1]:3000"})
    assert parsed.cors_allowed_origins == {"https://a.example.com", "http://[::1]:3000"}
    for bad in ("*", "https://a.example.com/", "a.example.com", "https://a.example.com/path", "null"):
        with pytest.raises(SettingsError, match="CORS_ALLOWED_ORIGINS"):
            Settings.from_env({**base, "CORS_ALLOWED_ORIGINS": bad})
