"""The local stack's settings layering: sample < local.settings.json < environment, as `func start`."""

from __future__ import annotations

import json
from pathlib import Path

from devhost.config import flag, load_values


def write_values(path: Path, values: dict[str, str]) -> None:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def test_local_settings_override_the_sample_and_the_environment_overrides_both(tmp_path: Path) -> None:
    write_values(tmp_path / "local.settings.sample.json", {"A": "sample", "B": "sample", "C": "sample"})
    write_values(tmp_path / "local.settings.json", {"B": "local", "C": "local"})

    values = load_values(tmp_path, environ={"C": "env", "UNRELATED": "x"})

    assert values == {"A": "sample", "B": "local", "C": "env"}


def test_the_sample_alone_is_enough(tmp_path: Path) -> None:
    write_values(tmp_path / "local.settings.sample.json", {"A": "1"})
    assert load_values(tmp_path, environ={}) == {"A": "1"}


def test_flags_read_like_app_settings() -> None:
    values = {"ON": "true", "OFF": "0", "EMPTY": ""}
    assert flag(values, "ON", False) is True
    assert flag(values, "OFF", True) is False
    assert flag(values, "EMPTY", True) is True
    assert flag(values, "MISSING", False) is False
