"""Checking real responses (and webhook deliveries) against the OpenAPI document.

JSON Schema validation resolves the document's own `#/components/...` references: the whole
document is registered as one resource and each schema is validated by a pointer into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import requests
import schemathesis
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from requests.structures import CaseInsensitiveDict

from api.openapi import openapi_document
from devhost.config import load_values
from gateway.settings import Settings
from tests.conftest import PROJECT_DIR
from tests.contract.reference import assert_in_reference

# The document of the stacks under test: they run with the local settings, so with their catalog.
STACK_CATALOG = Settings.from_env(load_values(PROJECT_DIR)).catalog
DOCUMENT = openapi_document(STACK_CATALOG)
_URN = "urn:sora-gateway:openapi"
_REGISTRY: Registry[Any] = Registry().with_resource(_URN, DRAFT202012.create_resource(DOCUMENT))


def pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def resolve(node: dict[str, Any], at: str) -> tuple[dict[str, Any], str]:
    """Follow a local `$ref` (if any): the node and its pointer in the document."""
    while "$ref" in node:
        at = node["$ref"].removeprefix("#")
        node = DOCUMENT
        for part in at.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, at


def schema_errors(schema_pointer: str, instance: Any) -> list[str]:
    validator = Draft202012Validator({"$ref": f"{_URN}#{schema_pointer}"}, registry=_REGISTRY)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def assert_schema(schema_pointer: str, instance: Any, what: str) -> None:
    problems = schema_errors(schema_pointer, instance)
    assert not problems, f"{what} does not match {schema_pointer}:\n  " + "\n  ".join(problems)


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """A header's text as the JSON value its schema describes (integers are sent as digits)."""
    types = schema.get("type", [])
    types = types if isinstance(types, list) else [types]
    if "integer" in types and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def _documented_status(responses: Mapping[str, Any], status: int) -> str | None:
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return key
    return None


def assert_headers(documented: Mapping[str, Any], received: Mapping[str, str], at: str, what: str) -> None:
    for name, header in documented.items():
        header, header_at = resolve(header, f"{at}/{pointer(name)[1:]}")
        value = received.get(name)
        if value is None:
            assert not header.get("required"), f"{what}: documented required header {name!r} is missing"
            continue
        assert_schema(f"{header_at}/schema", _coerce(value, header["schema"]), f"{what}: header {name}")


def _observed(response: requests.Response | schemathesis.Response) -> tuple[int, Mapping[str, str], bytes]:
    """Status, headers (case-insensitive) and body of a `requests` or a schemathesis response."""
    if isinstance(response, requests.Response):
        return response.status_code, response.headers, response.content
    first_values = {name: values[0] for name, values in response.headers.items() if values}
    return response.status_code, CaseInsensitiveDict(first_values), response.content


def assert_matches_document(
    method: str, path_template: str, response: requests.Response | schemathesis.Response
) -> Any:
    """The response is documented for `method path_template`: its status, its required headers
    (each header present matches its schema), its content type and body. Returns the JSON body."""
    status_code, received, raw = _observed(response)
    text = raw[:500].decode(errors="replace")
    what = f"{method.upper()} {path_template} -> {status_code}"
    operation_at = pointer("paths", path_template, method.lower())
    operation = DOCUMENT["paths"].get(path_template, {}).get(method.lower())
    assert operation is not None, f"{method.upper()} {path_template} is not in the document"
    status = _documented_status(operation["responses"], status_code)
    assert status is not None, (
        f"{what}: status not documented ({sorted(operation['responses'])}); body: {text}"
    )
    documented, at = resolve(operation["responses"][status], f"{operation_at}/responses/{status}")
    assert_headers(documented.get("headers", {}), received, f"{at}/headers", what)
    content = documented.get("content")
    if not content:
        return None
    media_type = received.get("content-type", "").split(";", 1)[0].strip().lower()
    assert media_type in content, f"{what}: content type {media_type!r} not documented ({sorted(content)})"
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise AssertionError(f"{what}: body is not JSON: {text!r}") from error
    assert_schema(f"{at}/content/{pointer(media_type)[1:]}/schema", body, what)
    assert_in_reference(status_code, body, what)  # and against the reference users read
    return body


def assert_webhook_matches_document(event: str, headers: Mapping[str, str], body: Any) -> None:
    """A webhook delivery is what `webhooks: {event}` documents: its header parameters and body."""
    operation = DOCUMENT["webhooks"][event]["post"]
    at = pointer("webhooks", event, "post")
    documented = {parameter["name"]: parameter for parameter in operation["parameters"]}
    lowered = {name.lower(): value for name, value in headers.items()}
    for index, (name, parameter) in enumerate(documented.items()):
        value = lowered.get(name.lower())
        assert value is not None or not parameter["required"], f"webhook {event}: header {name} is missing"
        if value is not None:
            assert_schema(f"{at}/parameters/{index}/schema", value, f"webhook {event}: header {name}")
    assert_schema(f"{at}/requestBody/content/application~1json/schema", body, f"webhook {event} body")
