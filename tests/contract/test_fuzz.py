"""Schema-driven fuzzing of every operation in the document, against a stack of its own.

Schemathesis generates valid and invalid requests from `openapi_document()`; every answer must be
no 5xx and exactly what the document says (status, headers, content type, body). The run is
bounded (a few dozen examples per operation) and deterministic (fixed seed, derandomized).

The stack is this module's own: generous plan limits so accepted creates and remixes never run
out of quota. Requests are authenticated as a `pro` app or with the admin key, and path ids are
often swapped for real ones so the success paths get fuzzed, not only the 404s.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from schemathesis import checks

from tests.conftest import RunningStack, stack_until_jobs_end
from tests.contract.document import DOCUMENT, assert_matches_document
from tests.contract.support import bearer, create

UNLIMITED = (
    '{"free": null, "pro": {"hour": 100000, "day": 100000}, "business": {"hour": 100000, "day": 100000}}'
)
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261121,
        "generation": {
            "mode": "all",  # valid and invalid requests
            "max-examples": 30,
            "deterministic": True,
            "database": "none",  # no examples carried over from earlier runs
            # Credentials are ours to inject; generated ones would only ever be 401s.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
    }
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# Fields whose URLs the gateway resolves and fetches or POSTs to: kept on loopback, see `_safe`.
URL_FIELDS = frozenset({"webhook_url", "image_url", "input_reference"})
DISCARD = "http://127.0.0.1:9/"  # nothing listens on the discard port


@dataclass
class FuzzTarget:
    stack: RunningStack
    app_key: str
    app_id: str  # an app whose plan and key the management operations may change
    video_id: str  # completed: retrieve, download, remix
    doomed_ids: list[str]  # for DELETE, which may remove them

    def auth(self, case: schemathesis.Case) -> dict[str, str]:
        # An undocumented method on the path is sent as its documented ones are.
        operations = [op for method, op in DOCUMENT["paths"][case.path].items() if method != "parameters"]
        security = DOCUMENT["paths"][case.path].get(case.method.lower(), operations[0])["security"]
        schemes = {name for requirement in security for name in requirement}
        if "adminKey" in schemes:
            return {"x-admin-key": self.stack.admin_key}
        return bearer(self.app_key) if schemes else {}

    def use_real_ids(self, case: schemathesis.Case) -> None:
        """Two cases in three get a real id instead of the generated one (chosen by its hash,
        so the run stays deterministic)."""
        parameters = case.path_parameters or {}
        for name, value in list(parameters.items()):
            if zlib.crc32(repr(value).encode()) % 3 == 0:
                continue
            if name == "app_id":
                parameters[name] = self.app_id
            elif name == "video_id":
                pool = self.doomed_ids if case.method.upper() == "DELETE" else [self.video_id]
                parameters[name] = pool[zlib.crc32(repr(value).encode()) % len(pool)]


def _safe(value: Any) -> Any:
    """The body with every URL the gateway would resolve or contact moved onto loopback.

    The gateway resolves webhook and image hosts (DNS leaves this machine) and, with the local
    stack's ALLOW_LOCAL_URLS, would reach private addresses: a generated URL keeps its text as a
    path under a loopback port where nothing listens. `data:` URLs never leave the process.
    """
    if isinstance(value, dict):
        return {
            key: _loopback(item) if key in URL_FIELDS and isinstance(item, str) else _safe(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_safe(item) for item in value]
    return value


def _loopback(url: str) -> str:
    return url if url.startswith("data:") else DISCARD + quote(url, safe="")


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with stack_until_jobs_end(tmp_path_factory.mktemp("fuzz-stack"), PLAN_LIMITS=UNLIMITED) as stack:
        client = stack.client
        app = client.create_app("pro", name="fuzz")
        managed = client.create_app("pro", name="fuzz managed")
        started = [create(stack, app.api_key, json={"prompt": f"Fuzz source {n}"}) for n in range(3)]
        assert all(response.status_code == 202 for response in started), [r.text for r in started]
        ids = [response.json()["id"] for response in started]
        for video_id in ids[:2]:
            client.wait_for(app.api_key, video_id, ("completed",))
        # One completed and one in flight (or just finished) to delete.
        yield FuzzTarget(stack, app.api_key, managed.id, ids[0], ids[1:])


@SCHEMA.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    fuzz_target.use_real_ids(case)
    if case.body is not None:
        case.body = _safe(case.body)
    response = case.call(base_url=fuzz_target.stack.api, headers=fuzz_target.auth(case), timeout=60)
    if not _documented(case):
        if case.method.upper() == "OPTIONS":
            # A CORS preflight, from no allowed origin (api/cors.py): refused, in the error shape.
            assert response.status_code == 403, f"OPTIONS {case.path}: {response.status_code}"
            assert response.json()["error"]["code"] == "origin_not_allowed"
            return
        # The coverage phase also tries methods the path does not have: the host answers 404,
        # as the Functions host's router does (Azure/azure-functions-host#10098).
        assert response.status_code == 404, f"{case.method} {case.path}: {response.status_code}"
        return
    case.validate_response(response, checks=CHECKS)
    # The suite's own checker too: the same document, read independently of schemathesis.
    assert_matches_document(case.method, case.path, response)


def _documented(case: schemathesis.Case) -> bool:
    return case.method.lower() in DOCUMENT["paths"][case.path]


def test_fuzzing_covers_every_operation() -> None:
    operations = {(operation.method.upper(), operation.path) for operation in _all_operations()}
    documented = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == documented


def _all_operations() -> Iterator[Any]:
    for result in SCHEMA.get_all_operations():
        yield result.ok()


def test_loopback_rewrite_keeps_urls_off_the_network() -> None:
    body = {"webhook_url": "https://8.8.8.8/x", "input_reference": {"image_url": "http://example.com/a.png"}}
    safe = _safe(body)

    assert safe["webhook_url"].startswith(DISCARD)
    assert safe["input_reference"]["image_url"].startswith(DISCARD)
    assert _safe({"input_reference": {"image_url": "data:image/png;base64,AA=="}})["input_reference"] == {
        "image_url": "data:image/png;base64,AA=="
    }
    assert requests.utils.urlparse(safe["webhook_url"]).hostname == "127.0.0.1"
