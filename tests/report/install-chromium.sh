#!/usr/bin/env bash
# Install Debian's Chromium for tests/test_snakemake_report.py (headless browser check of
# the `snakemake --report` HTML). Idempotent: does nothing when chromium is already there.
# Needs root (or sudo) and Debian's package archive; nothing else is downloaded.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: $(chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-chromium: need root or sudo to install chromium" >&2; exit 1; }
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "install-chromium: installed $(chromium --version 2>/dev/null)"
