#!/usr/bin/env bash
# Install the Chromium that the browser test drives, from Debian's packages; idempotent.
# Never downloads a browser any other way (no `playwright install`).
set -euo pipefail

if [ -x /usr/bin/chromium ] && { [ -x /usr/bin/chromedriver ] || [ -x /usr/bin/chromium-driver ]; }; then
    echo "install-browser: chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-browser: chromium is missing and this user cannot run apt-get" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
