"""The served document is the one the code builds, a valid OpenAPI 3.1 document, and complete.

Complete against the project's API reference, `docs/api.md`: each names every endpoint of the other.
The README and the docs link only to what the repository holds, so a fresh clone stands alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from api.openapi import openapi_document
from devhost.config import load_values
from gateway.settings import Settings
from tests.conftest import PROJECT_DIR, RunningStack
from tests.contract.document import DOCUMENT, assert_matches_document

API_REFERENCE = PROJECT_DIR / "docs" / "api.md"
# "`GET /api/v1/videos/{id}/content`" and the like, as the API reference writes endpoints.
ENDPOINT = re.compile(r"`(GET|POST|PATCH|DELETE) /api(/[^`?\s]*)")
# Markdown links and images: "[text](target)"; the target up to a space (a title) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)")


def test_served_document_is_the_built_one(stack: RunningStack) -> None:
    response = requests.get(f"{stack.api}/openapi.json", timeout=10)

    assert response.status_code == 200
    assert response.json() == openapi_document(Settings.from_env(load_values(PROJECT_DIR, stack.env)).catalog)
    assert_matches_document("GET", "/openapi.json", response)


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT, cls=OpenAPIV31SpecValidator)


def _reference_endpoints(text: str) -> set[tuple[str, str]]:
    # The reference names a video's path parameter `{id}`; the document names it `{video_id}`.
    return {
        (method.lower(), path.replace("/videos/{id}", "/videos/{video_id}"))
        for method, path in ENDPOINT.findall(text)
    }


def test_every_endpoint_of_the_api_reference_is_documented() -> None:
    # Both ways: the reference and the document cannot drift apart.
    endpoints = _reference_endpoints(API_REFERENCE.read_text(encoding="utf-8"))
    documented = {
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }

    assert len(endpoints) >= 13
    assert endpoints <= documented, f"in docs/api.md, not in the document: {sorted(endpoints - documented)}"
    assert documented <= endpoints, f"in the document, not in docs/api.md: {sorted(documented - endpoints)}"


def test_every_webhook_event_of_the_document_is_in_the_api_reference() -> None:
    text = API_REFERENCE.read_text(encoding="utf-8")
    assert DOCUMENT["webhooks"]
    for event in DOCUMENT["webhooks"]:
        assert f"`{event}`" in text, f"webhook {event} is not in docs/api.md"


def _prose(page: Path) -> str:
    """A Markdown page less its fenced code blocks (their `#` lines are comments, not headings)."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _prose(page), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_readme_and_the_docs_link_only_to_what_the_repository_holds() -> None:
    pages = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    assert API_REFERENCE in pages
    for page in pages:
        for target in LINK.findall(_prose(page)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # a URL, not a file of the repository
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.is_relative_to(PROJECT_DIR), f"{page.name} links outside the repository: {target}"
            assert linked.exists(), f"{page.name} links to a missing file: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{page.name} links to a missing heading: {target}"


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
