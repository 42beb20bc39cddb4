"""Index the function app as Azure would, and list its functions; exit 1 if the worker refuses it.

`make index-check` runs this in a virtual environment built only from requirements.txt (what the
remote build installs), so an import that only the development tools satisfy fails here too.
Indexing is azure-functions-runtime's own loader, the code Azure runs for Python 3.13 apps.

    python scripts/index_app.py [SCRIPT]     (SCRIPT: function_app.py by default)
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, so the project root (the app's directory) goes on the path as in Azure.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.functions import AppIndexError, IndexedFunction, index_app


def describe(function: IndexedFunction) -> str:
    trigger = function.trigger
    route = str(trigger.get("route") or function.name) if function.trigger_type == "httpTrigger" else "-"
    methods = ",".join(str(m).upper() for m in trigger.get("methods") or []) or "-"
    auth = str(trigger.get("authLevel") or "-").lower()
    return f"{function.name:<28} {function.trigger_type:<22} {route:<34} {methods:<18} {auth}"


def main(argv: list[str]) -> int:
    script = argv[1] if len(argv) > 1 else "function_app.py"
    try:
        index = index_app(script)
    except AppIndexError as refused:
        print(f"{script}: the worker refuses the app (no function would start): {refused}", file=sys.stderr)
        return 1
    functions = sorted(index.all, key=lambda f: (f.trigger_type, f.name))
    print(f"{'function':<28} {'trigger':<22} {'route':<34} {'methods':<18} auth")
    for function in functions:
        print(describe(function))
    print(f"{script}: {len(functions)} functions indexed by azure-functions-runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
