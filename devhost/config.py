"""Settings for the local stack, layered as `func start` does: sample < local.settings.json < environment."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

SAMPLE_FILE = "local.settings.sample.json"
LOCAL_FILE = "local.settings.json"


def load_values(project_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merged `Values`: the sample's defaults, then local.settings.json, then the environment."""
    values: dict[str, str] = {}
    for name in (SAMPLE_FILE, LOCAL_FILE):
        path = project_dir / name
        if path.is_file():
            document = json.loads(path.read_text(encoding="utf-8"))
            values.update({key: str(value) for key, value in document.get("Values", {}).items()})
    env = os.environ if environ is None else environ
    values.update({key: env[key] for key in values.keys() & env.keys()})
    return values


def flag(values: Mapping[str, str], key: str, default: bool) -> bool:
    raw = values.get(key, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}
