#!/usr/bin/env bash
# Makes sure the browser tests have Debian's Chromium: installs it with apt-get where that works
# (a fresh Debian machine or CI, as root or with passwordless sudo), else says what to install.
# It never fails set-up: without a browser the browser tests fail with the same message.
set -euo pipefail

if [[ -n ${CHROMIUM_PATH:-} && -x ${CHROMIUM_PATH} ]] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    sudo_cmd=(unavailable)
  fi
fi

if command -v apt-get >/dev/null 2>&1 && [[ ${sudo_cmd[0]:-} != unavailable ]]; then
  echo "Installing Debian's chromium for the browser tests (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq >/dev/null
  # fonts-liberation: readable text in the screenshots the browser tests save.
  "${sudo_cmd[@]}" apt-get install -y -qq chromium fonts-liberation >/dev/null
  command -v chromium >/dev/null 2>&1 && exit 0
fi

cat >&2 <<'MSG'
warning: no Chromium for the browser tests (tests/browser), and it could not be installed here.
Install Debian's chromium (sudo apt-get install chromium), or any Chromium/Chrome and point
CHROMIUM_PATH at its executable. Until then the browser tests fail with this message.
MSG
