"""The served document is the one the code builds, a valid OpenAPI 3.1 document, and complete."""

from __future__ import annotations

import re

import requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from api.openapi import openapi_document
from tests.conftest import PROJECT_DIR, RunningStack
from tests.contract.document import DOCUMENT, assert_matches_document

API_MD = PROJECT_DIR.parent / "shared" / "API.md"
# "`GET /api/v1/videos/{id}/content?variant=...`" and the like, as API.md writes endpoints.
ENDPOINT = re.compile(r"`(GET|POST|PATCH|DELETE) /api(/[^`?\s]*)")


def test_served_document_is_the_built_one(stack: RunningStack) -> None:
    response = requests.get(f"{stack.api}/openapi.json", timeout=10)

    assert response.status_code == 200
    assert response.json() == openapi_document()
    assert_matches_document("GET", "/openapi.json", response)


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)


def _api_md_endpoints(text: str) -> set[tuple[str, str]]:
    # API.md names the path parameter `{id}`; the document names it after what it identifies.
    return {
        (method.lower(), path.replace("/videos/{id}", "/videos/{video_id}"))
        for method, path in ENDPOINT.findall(text)
    }


def test_every_endpoint_of_api_md_is_documented() -> None:
    # CI runs with shared/ beside the clone, as here.
    assert API_MD.exists(), f"{API_MD} not found"
    endpoints = _api_md_endpoints(API_MD.read_text())
    documented = {
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }

    assert len(endpoints) >= 13
    assert endpoints <= documented, f"missing from the document: {sorted(endpoints - documented)}"


def test_every_error_response_is_the_openai_error_body() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    target = response.get("$ref", "")
                    assert target.startswith("#/components/responses/"), f"{method} {path} {status}"
                    body = DOCUMENT["components"]["responses"][target.rsplit("/", 1)[1]]["content"]
                    assert body["application/json"]["schema"]["$ref"].endswith(("/Error", "/RateLimitError"))


def test_management_paths_need_the_admin_key_and_video_paths_an_app_key() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            schemes = {name for requirement in operation["security"] for name in requirement}
            if path.startswith("/v1/manage/"):
                assert schemes == {"adminKey"}, path
            elif path.startswith("/v1/"):
                assert schemes == {"bearer", "apiKey"}, path
            else:
                assert schemes == set(), path
