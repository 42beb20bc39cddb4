"""The benchmarks under bench/ still run against today's code: each module imports, and the
pure one (polling, in virtual time) runs a small simulation to its verdict. The others start
stacks or processes and are run by `make bench`, not here."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
BENCHES = sorted(path.stem for path in (PROJECT_DIR / "bench").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", BENCHES)
def test_every_benchmark_module_imports(name: str) -> None:
    assert importlib.import_module(f"bench.{name}").__doc__


def test_the_polling_benchmark_runs_to_its_verdict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.polling", "--jobs", "100"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "checks ratio adaptive/fixed" in result.stdout
