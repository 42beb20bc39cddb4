"""The browser console's static files at /api/console, served by the gateway itself; against the
local stack. Traversal attempts go out as raw request lines (http.client), since an HTTP library
would normalise `..` away before the gateway ever saw it."""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import PROJECT_DIR, RunningStack

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def csp(response: requests.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as directive -> sources (each directive once)."""
    policy = response.headers["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice in {policy!r}"
        directives[name] = sources
    return directives


def blob_origin(stack: RunningStack) -> str:
    endpoint = re.search(r"BlobEndpoint=([^;]+)", stack.storage_connection_string)
    assert endpoint is not None
    parts = urlsplit(endpoint.group(1))
    return f"{parts.scheme}://{parts.netloc}"


def raw_get(stack: RunningStack, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """`method path` sent exactly as written, to the stack's loopback port."""
    origin = urlsplit(stack.api)
    assert origin.hostname == "127.0.0.1"
    connection = http.client.HTTPConnection(origin.hostname, origin.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_security_headers(response: requests.Response, stack: RunningStack) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    directives = csp(response)
    assert directives == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:", blob_origin(stack)],
        "media-src": ["'self'", "blob:", blob_origin(stack)],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
    }
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    # Videos play only from this deployment's storage, not from any https origin.
    assert "https:" not in directives["media-src"]
    assert "https:" not in directives["img-src"]
    assert "*" not in policy


def test_the_index_is_served_with_every_security_header(stack: RunningStack) -> None:
    for path in ("/console", "/console/", "/console/index.html"):
        response = requests.get(f"{stack.api}{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.content == (PROJECT_DIR / "console" / "index.html").read_bytes()
        assert_security_headers(response, stack)
    page = response.text
    assert page.lower().startswith("<!doctype html>")
    assert '<html lang="en">' in page
    assert 'name="viewport"' in page
    assert "<title>Video gateway console</title>" in page
    # Nothing inline and nothing from another origin: the CSP would block it anyway.
    assert "<style" not in page
    assert not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert not re.search(r"""(?:src|href)="(?:https?:)?//""", page)
    assert 'src="/api/console/app.js"' in page
    assert 'href="/api/console/app.css"' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("app.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8")],
)
def test_the_assets_are_served_with_their_content_types(
    stack: RunningStack, name: str, content_type: str
) -> None:
    response = requests.get(f"{stack.api}/console/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.content == (PROJECT_DIR / "console" / name).read_bytes()
    assert_security_headers(response, stack)


def test_head_answers_the_headers_without_the_body(stack: RunningStack) -> None:
    status, headers, body = raw_get(stack, "/api/console/app.js", method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_other_methods_are_refused_by_the_host(stack: RunningStack) -> None:
    # The Functions host answers a method no function takes with 404 (its router matches on it).
    for method in ("POST", "PUT", "DELETE"):
        response = requests.request(method, f"{stack.api}/console/app.js", timeout=10)
        assert response.status_code == 404, method


def test_an_unknown_file_is_404_in_the_openai_error_shape(stack: RunningStack) -> None:
    for name in ("missing.js", "app.js.bak", "APP.JS", "app.js/"):
        response = requests.get(f"{stack.api}/console/{name}", timeout=10)
        assert response.status_code == 404, name
        error = response.json()["error"]
        assert error["type"] == "not_found_error"
        assert error["code"] == "not_found"
        assert set(error) >= {"message", "type", "param", "code"}
        assert response.headers["X-Content-Type-Options"] == "nosniff"


OUTSIDE = [PROJECT_DIR / "function_app.py", PROJECT_DIR / "local.settings.sample.json"]
TRAVERSALS = [
    "/api/console/../function_app.py",
    "/api/console/..%2ffunction_app.py",
    "/api/console/..%2Flocal.settings.sample.json",
    "/api/console/%2e%2e/function_app.py",
    "/api/console/%2e%2e%2ffunction_app.py",
    "/api/console/%252e%252e%252ffunction_app.py",
    "/api/console/..%5cfunction_app.py",
    "/api/console/..\\function_app.py",
    "/api/console/%2fwork%2fmain%2ffunction_app.py",
    "/api/console//etc/passwd",
    "/api/console/" + "%2F" + str(PROJECT_DIR / "function_app.py").lstrip("/").replace("/", "%2F"),
    "/api/console/app.js%00.html",
    "/api/console/./../api/console.py",
    "/api/console/..%c0%affunction_app.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_console_folder_is_served(stack: RunningStack, path: str) -> None:
    status, _headers, body = raw_get(stack, path)
    for outside in [*OUTSIDE, PROJECT_DIR / "api" / "console.py"]:
        assert outside.read_bytes()[:200] not in body, path
    assert b"/etc/passwd" not in body
    assert b"root:" not in body
    # Each reaches the console function (the dev host forwards the path as sent) and is its 404.
    assert status == 404, path
    assert b'"type":"not_found_error"' in body, path


def test_the_served_files_are_exactly_the_console_folder() -> None:
    from api.console import console_files

    expected = {
        path.relative_to(PROJECT_DIR / "console").as_posix()
        for path in Path(PROJECT_DIR / "console").rglob("*")
        if path.is_file()
    }
    assert set(console_files()) == expected


@pytest.mark.parametrize(
    ("connection_string", "blob_service_uri", "origin"),
    [
        ("AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/a;", None, "http://127.0.0.1:10000"),
        (
            "DefaultEndpointsProtocol=https;AccountName=vgw;AccountKey=k;EndpointSuffix=core.windows.net",
            None,
            "https://vgw.blob.core.windows.net",
        ),
        (None, "https://vgw.blob.core.windows.net/", "https://vgw.blob.core.windows.net"),
        (None, "https://x.blob.core.windows.net;script-src *", None),
        ("AccountKey=k", None, None),
    ],
)
def test_media_src_names_the_storage_origin_of_the_settings(
    connection_string: str | None, blob_service_uri: str | None, origin: str | None
) -> None:
    from api.console import blob_origin as settings_blob_origin
    from gateway.settings import StorageSettings

    storage = StorageSettings(connection_string, blob_service_uri, "https://t.table.core.windows.net", None)
    assert settings_blob_origin(storage) == origin
