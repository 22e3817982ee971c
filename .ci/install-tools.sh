#!/usr/bin/env bash
# Install, from Debian's packages and only when missing, the programs the browser, Mermaid
# and PostgreSQL store tests drive: Chromium (never downloaded any other way: no
# `playwright install`), Node.js with npm, and PostgreSQL's server (.ci/postgres.sh starts a
# throwaway one). Idempotent.
set -euo pipefail

missing=()
if [ -x /usr/bin/chromium ] && { [ -x /usr/bin/chromedriver ] || [ -x /usr/bin/chromium-driver ]; }; then
    echo "install-tools: chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
else
    missing+=(chromium chromium-driver fonts-dejavu-core)
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    echo "install-tools: node $(node --version) and npm $(npm --version) already installed"
else
    missing+=(nodejs npm)
fi
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "install-tools: PostgreSQL already installed: $(ls -d /usr/lib/postgresql/*/ | sort -V | tail -1)"
else
    missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-tools: ${missing[*]} missing and this user cannot run apt-get" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-tools: installed ${missing[*]}"
