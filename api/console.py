"""The browser console's static files (console/), served by the gateway itself at /api/console.

Only the files found under console/ when the first request came are served, by their exact
relative name: a path that is not one of them (`..`, an absolute path, a backslash, a NUL, any
encoding of those) is simply not in the table and answers 404, so nothing outside console/ can be
reached. The files are part of the deployment, so they are read once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from api.http import api_errors
from gateway.errors import NotFound
from gateway.settings import StorageSettings, get_settings

bp = df.Blueprint()

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
INDEX = "index.html"
# What may be served, by extension; text types get "; charset=utf-8" from the worker.
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".txt": "text/plain",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
}
# No more than a console's worth of files is held in memory.
MAX_FILES = 64
MAX_FILE_BYTES = 1024 * 1024


@functools.cache
def console_files() -> dict[str, tuple[str, bytes]]:
    """Relative POSIX name -> (mimetype, bytes) of every servable file under console/."""
    files: dict[str, tuple[str, bytes]] = {}
    root = CONSOLE_DIR.resolve()
    for path in sorted(root.rglob("*")):
        mimetype = CONTENT_TYPES.get(path.suffix.lower())
        # Symlinks could point outside console/; hidden files are not the console's.
        if mimetype is None or path.is_symlink() or not path.is_file():
            continue
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if len(files) >= MAX_FILES or path.stat().st_size > MAX_FILE_BYTES:
            raise RuntimeError(f"console/ holds more than a console: {relative}")
        files[relative.as_posix()] = (mimetype, path.read_bytes())
    return files


def blob_origin(storage: StorageSettings) -> str | None:
    """The origin the videos' SAS URLs point at (Blob Storage), or None when it cannot be told."""
    if storage.connection_string:
        fields: dict[str, str] = {}
        for pair in storage.connection_string.split(";"):
            name, separator, value = pair.partition("=")
            if separator:
                fields[name.strip().lower()] = value.strip()
        if fields.get("blobendpoint"):
            return _origin(fields["blobendpoint"])
        account = fields.get("accountname")
        if account:
            protocol = fields.get("defaultendpointsprotocol", "https").lower()
            suffix = fields.get("endpointsuffix", "core.windows.net")
            return _origin(f"{protocol}://{account}.blob.{suffix}")
    if storage.blob_service_uri:
        return _origin(storage.blob_service_uri)
    return None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    # A CSP source may not carry characters that end or split a directive.
    if any(char in parts.netloc for char in " ;,'\"\\") or parts.username or parts.password:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


@functools.cache
def security_headers() -> dict[str, str]:
    """The headers every console answer carries (settings change only with a restart)."""
    # Videos play, and their thumbnails show as posters, from read-only SAS URLs on Blob
    # Storage: that origin and no other https one.
    storage = blob_origin(get_settings().storage)
    media = " ".join(source for source in ("'self'", "blob:", storage) if source)
    images = " ".join(source for source in ("'self'", "blob:", "data:", storage) if source)
    policy = "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            f"media-src {media}",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def _serve(name: str) -> func.HttpResponse:
    found = console_files().get(name)
    if found is None:
        raise NotFound("No such console file.", code="not_found", headers=security_headers())
    mimetype, body = found
    return func.HttpResponse(
        body, status_code=200, headers=security_headers(), mimetype=mimetype, charset="utf-8"
    )


@bp.route(route="console", methods=["GET", "HEAD"])
@api_errors
def console_index(req: func.HttpRequest) -> func.HttpResponse:
    return _serve(INDEX)


@bp.route(route="console/{*path}", methods=["GET", "HEAD"])
@api_errors
def console_file(req: func.HttpRequest) -> func.HttpResponse:
    # Exact names only: "", "..", "/etc/passwd", "a\\b" and "x\x00" are no key of the table.
    return _serve(req.route_params.get("path") or INDEX)
