#!/usr/bin/env bash
# Prints a Python 3.13 interpreter for the project's virtual environment, or says what to install.
# Azure runs Python 3.13 apps on the azure-functions-runtime library pinned in requirements.txt,
# so the local stack and the tests run on 3.13 too.
set -euo pipefail

works() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; }

candidates=()
[[ -n ${PYTHON:-} ]] && candidates+=("$PYTHON")
command -v python3.13 >/dev/null 2>&1 && candidates+=("$(command -v python3.13)")
# pyenv's shim fails unless 3.13 is selected; its installed versions work directly.
for found in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3.13; do
  [[ -x $found ]] && candidates+=("$found")
done

for candidate in "${candidates[@]}"; do
  if works "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

cat >&2 <<'MSG'
No Python 3.13 found. The gateway runs on Python 3.13 (Azure Functions' runtime version control).
Install it, then run make again, for example:
  Debian/Ubuntu:  sudo apt-get install python3.13 python3.13-venv   (or: pyenv install 3.13)
  macOS:          brew install python@3.13
or point the Makefile at one:  make PYTHON=/path/to/python3.13 test
MSG
exit 1
