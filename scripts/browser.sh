#!/usr/bin/env bash
# Make sure Debian's headless Chromium and its chromedriver are installed (the staff console browser tests).
# Packages only: no browser is ever downloaded by a test tool.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "browser: need root to apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "browser: installing chromium chromium-driver"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
