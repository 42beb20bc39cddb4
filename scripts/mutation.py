"""`make mutation`: mutate the core rules with mutmut and print the kill rate per module.

    python scripts/mutation.py            # a fresh run (20 to 30 minutes on 2 cores), then the table
    python scripts/mutation.py --again    # after adding tests: re-check what the last run missed
    python scripts/mutation.py --report   # the table of the last run only

What is mutated and which tests run is configured in pyproject.toml ([tool.mutmut]). One Azurite
(in memory) serves every mutant's storage tests (tests/conftest.py reads SHARED_AZURITE_PORTS).
Mutants listed in scripts/mutation_equivalent.txt are ones no test can tell apart from the code
(see the reasons there): they are left out of the rate and counted apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from devhost.azurite import Azurite  # noqa: E402 - after the project is importable

MUTANTS = PROJECT_DIR / "mutants"
EQUIVALENT = PROJECT_DIR / "scripts" / "mutation_equivalent.txt"
# The rules under test, by module; (file, functions) - no functions: all of the file's.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "quota": ("gateway/quota.py", ()),
    "apps and keys": ("gateway/apps.py", ()),
    "idempotency": ("gateway/idempotency.py", ()),
    "submissions": ("gateway/submissions.py", ()),
    "SAS minting": ("gateway/blobs.py", ("xǁVideoAssetsǁread_url", "xǁ_SasSignerǁ")),
    "URL safety": ("gateway/urls.py", ()),
    "validation": ("gateway/validation.py", ()),
    "video options": ("gateway/video_options.py", ()),
    "polling policy": ("gateway/polling.py", ()),
    "orchestrator": ("orchestrators/generate_video.py", ()),
}
# mutmut's exit codes (mutmut.stats.status_by_exit_code): what counts as killed.
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}
STATUS = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}


def run(names: list[str] | None = None) -> int:
    """mutmut with one shared Azurite, fresh or (`names`) for those mutants of the last run only;
    mutmut's own exit code."""
    if names is None:
        shutil.rmtree(MUTANTS, ignore_errors=True)
    # The tests run in mutants/, a copy without node_modules: the ones starting an Azurite of
    # their own (the user-delegation SAS tests: HTTPS, OAuth) find it through this link.
    MUTANTS.mkdir(exist_ok=True)
    if not (MUTANTS / "node_modules").exists():
        (MUTANTS / "node_modules").symlink_to(PROJECT_DIR / "node_modules")
    with tempfile.TemporaryDirectory(prefix="mutation-azurite-") as state:
        azurite = Azurite(PROJECT_DIR, Path(state), in_memory=True)
        azurite.start()
        try:
            ports = ",".join(str(azurite.ports[name]) for name in ("blob", "queue", "table"))
            env = {**os.environ, "SHARED_AZURITE_PORTS": ports}
            mutmut = Path(sys.executable).parent / "mutmut"
            command = [str(mutmut), "run", "--max-children", str(os.cpu_count() or 2), *(names or [])]
            return subprocess.call(command, env=env)  # noqa: S603 - this environment's own mutmut
        finally:
            azurite.stop()


def equivalent() -> dict[str, str]:
    """Mutant name -> why it is equivalent, from `name  # reason` lines."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        name, _, reason = line.partition("#")
        if name.strip():
            found[name.strip()] = reason.strip()
    return found


def missed() -> list[str]:
    """The mutants of the last run that were not killed (and are not listed as equivalent)."""
    explained = equivalent()
    return [name for name, code in mutants() if code not in KILLED and name not in explained]


def mutants(path: str | None = None) -> list[tuple[str, int | None]]:
    """(name, mutmut's exit code) of the last run's mutants in scope, of one file or all."""
    found = []
    for file, functions in MODULES.values():
        if path is not None and file != path:
            continue
        meta = json.loads((MUTANTS / f"{file}.meta").read_text())["exit_code_by_key"]
        for name, code in sorted(meta.items(), key=lambda item: _natural(item[0])):
            function = name.split(".")[-1].rsplit("__mutmut_", 1)[0]
            if not functions or function.startswith(functions):
                found.append((name, code))
    return found


def report() -> None:
    """Print the kill rate per module and the mutants that were not killed."""
    explained = equivalent()
    print(f"{'module':<16}{'mutants':>8}{'killed':>8}{'missed':>8}{'equiv.':>8}{'kill rate':>11}")
    survivors = []
    for label, (path, _) in MODULES.items():
        counts: Counter[str] = Counter()
        for name, code in mutants(path):
            if name in explained:
                counts["equivalent"] += 1
            elif code in KILLED:
                counts["killed"] += 1
            else:
                counts["missed"] += 1
                survivors.append(f"  {name}  ({STATUS.get(code, f'exit {code}')})")
        killed, missed_, same = counts["killed"], counts["missed"], counts["equivalent"]
        rate = 100.0 * killed / (killed + missed_) if killed + missed_ else 100.0
        print(f"{label:<16}{killed + missed_ + same:>8}{killed:>8}{missed_:>8}{same:>8}{rate:>10.1f}%")
    print(f"\nsurvivors ({len(survivors)}; `.venv/bin/mutmut show NAME` shows one):")
    print("\n".join(survivors) or "  none")


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number or 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--again", action="store_true", help="re-check what the last run did not kill")
    parser.add_argument("--report", action="store_true", help="only print the table of the last run")
    arguments = parser.parse_args()
    if not arguments.report and run(missed() if arguments.again else None) != 0:
        return 1
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
