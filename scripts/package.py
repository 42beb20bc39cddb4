"""Build the zip that `az functionapp deployment source config-zip --build-remote true` publishes.

The package is the project root less what `.funcignore` names (as `func azure functionapp publish`
would leave out): the Functions host builds `requirements.txt` remotely, so no dependencies are
bundled. Usage: python3 scripts/package.py OUTPUT.zip [--root DIR]
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
# Never shipped, whatever .funcignore says: build output, local state and secrets.
ALWAYS_EXCLUDED = (".git", ".python_packages", "__pycache__", "*.pyc", "local.settings.json")
# What a deployable Python v2 app must contain.
REQUIRED_FILES = ("function_app.py", "host.json", "requirements.txt")


def read_funcignore(root: Path) -> list[str]:
    """The patterns of `root/.funcignore` (gitignore syntax without negation), plus the fixed ones."""
    path = root / ".funcignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    negated = [pattern for pattern in patterns if pattern.startswith("!")]
    if negated:
        raise ValueError(f".funcignore negations are not supported: {negated}")
    return [*patterns, *ALWAYS_EXCLUDED]


def is_ignored(relative: PurePosixPath, patterns: Iterable[str], *, is_dir: bool) -> bool:
    """gitignore-style match: a pattern without '/' matches any path component, one with '/' the
    path from the root; a trailing '/' matches directories only."""
    for raw in patterns:
        directory_only = raw.endswith("/")
        pattern = raw.strip("/")
        if directory_only and not is_dir:
            continue
        if "/" in raw.rstrip("/"):
            if fnmatch.fnmatchcase(relative.as_posix(), pattern):
                return True
        elif fnmatch.fnmatchcase(relative.name, pattern):
            return True
    return False


def deployable_files(root: Path = ROOT) -> list[PurePosixPath]:
    """Every file the package holds, relative to `root`, sorted."""
    patterns = read_funcignore(root)
    found: list[PurePosixPath] = []
    for current, dirs, files in os.walk(root):
        base = PurePosixPath(Path(current).relative_to(root).as_posix())
        dirs[:] = sorted(
            name
            for name in dirs
            if not is_ignored(base / name, patterns, is_dir=True) and not (Path(current) / name).is_symlink()
        )
        found.extend(
            base / name
            for name in files
            if not is_ignored(base / name, patterns, is_dir=False) and not (Path(current) / name).is_symlink()
        )
    return sorted(found)


def build_package(output: Path, root: Path = ROOT) -> list[PurePosixPath]:
    """Write the zip; returns what it holds. Refuses a tree that is not a deployable app."""
    target = output.resolve()
    # Never zip the zip into itself, should it be written inside the tree.
    files = [relative for relative in deployable_files(root) if (root / relative).resolve() != target]
    missing = [name for name in REQUIRED_FILES if PurePosixPath(name) not in files]
    if missing:
        raise ValueError(f"not a deployable Functions app, missing: {', '.join(missing)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in files:
            archive.write(root / relative, arcname=relative.as_posix())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path, help="zip file to write")
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (default: this repository)")
    args = parser.parse_args(argv)
    files = build_package(args.output, args.root.resolve())
    print(f"{args.output}: {len(files)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
