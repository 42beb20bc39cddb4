"""Indexing the app loads no heavy package that only some calls need (cold start, issue 10).

A cold worker imports function_app, so every blueprint and the modules they import, before its
first invocation. The packages below are imported where they are used instead (gateway.azure_sdk
for the stores, gateway.blobs for the Blob SDK, gateway.clients for azure.identity, gateway.urls
for requests, gateway.images for Pillow); bench/coldstart.py measures what that saves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFERRED = ("azure.core", "azure.data.tables", "azure.storage.blob", "azure.identity", "requests", "PIL")


def test_importing_the_app_loads_none_of_the_deferred_packages() -> None:
    script = (
        "import json, sys, function_app; "
        f"print(json.dumps([name for name in {DEFERRED!r} if name in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_DIR,
        env={"PATH": "", "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_store_loads_the_sdk_at_its_first_storage_call() -> None:
    """The deferred names resolve to the SDK's own (the stores catch the SDK's exceptions)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import UpdateMode

    from gateway import azure_sdk as sdk

    assert sdk.ResourceNotFoundError is ResourceNotFoundError
    assert sdk.UpdateMode.REPLACE is UpdateMode.REPLACE
