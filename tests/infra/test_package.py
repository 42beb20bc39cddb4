"""The code package deploy.sh publishes: the app, less what .funcignore leaves out."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import pytest

from scripts.package import build_package, deployable_files, is_ignored, read_funcignore
from tests.infra.bicep import PROJECT_DIR


def test_package_holds_the_app_and_nothing_local(tmp_path: Path) -> None:
    output = tmp_path / "app.zip"
    build_package(output, PROJECT_DIR)
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
    # The console is served by the app itself, so it deploys with it.
    assert {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "gateway/settings.py",
        "console/index.html",
    } <= names
    tops = {name.split("/", 1)[0] for name in names}
    for local in (
        "tests",
        "devhost",
        "sorasim",
        "bench",
        "infra",
        "scripts",
        "cli",
        ".test-output",
        "node_modules",
        ".venv",
        ".git",
    ):
        assert local not in tops, f"{local}/ must not be deployed"
    assert "local.settings.json" not in names
    assert "local.settings.sample.json" not in names
    assert "pyproject.toml" not in names  # the command line's packaging, not the app's
    assert not [name for name in names if ".egg-info" in name]
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    # Every Python package the app imports is in it.
    for package in ("api", "activities", "orchestrators", "gateway"):
        assert f"{package}/__init__.py" in names


def test_funcignore_patterns_match_like_gitignore() -> None:
    patterns = ["tests", ".git*", "docs/", "bench/out", "*.log"]
    assert is_ignored(PurePosixPath("tests"), patterns, is_dir=True)
    assert is_ignored(PurePosixPath("a/tests"), patterns, is_dir=True)
    assert is_ignored(PurePosixPath(".gitignore"), patterns, is_dir=False)
    assert is_ignored(PurePosixPath("docs"), patterns, is_dir=True)
    assert not is_ignored(PurePosixPath("docs"), patterns, is_dir=False)
    assert is_ignored(PurePosixPath("bench/out"), patterns, is_dir=True)
    assert not is_ignored(PurePosixPath("x/bench/out"), patterns, is_dir=True)
    assert is_ignored(PurePosixPath("gateway/debug.log"), patterns, is_dir=False)
    assert not is_ignored(PurePosixPath("gateway/settings.py"), patterns, is_dir=False)


def test_packaging_refuses_what_is_not_an_app(tmp_path: Path) -> None:
    (tmp_path / ".funcignore").write_text("!keep\n", encoding="utf-8")
    with pytest.raises(ValueError, match="negations"):
        read_funcignore(tmp_path)
    (tmp_path / ".funcignore").write_text("", encoding="utf-8")
    (tmp_path / "host.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"function_app\.py"):
        build_package(tmp_path / "out" / "app.zip", tmp_path)


def test_the_zip_never_contains_itself(tmp_path: Path) -> None:
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    output = tmp_path / "app.zip"
    build_package(output, tmp_path)
    build_package(output, tmp_path)  # a second run finds the first zip in the tree
    with zipfile.ZipFile(output) as archive:
        assert sorted(archive.namelist()) == ["function_app.py", "host.json", "requirements.txt"]
    assert PurePosixPath("app.zip") in deployable_files(tmp_path)
