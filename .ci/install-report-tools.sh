#!/usr/bin/env bash
# Installs Debian's chromium so tests/cli/test_report.py can render report.html headless
# (test_report_html_renders_in_headless_chromium; it skips, saying so, when chromium is absent).
# Idempotent: when chromium is present it changes nothing and does not touch apt.
# Without apt-get (not Debian/Ubuntu) or without root/passwordless sudo it says so and exits 0.
# Measured on Debian 12 (bookworm): apt-get update ~1 s with a warm cache, install ~35 s, ~290 MB.
set -euo pipefail

if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    echo "install-report-tools: chromium already installed ($(command -v chromium || command -v chromium-browser))"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-report-tools: no apt-get here; install chromium by hand or the headless render test will skip"
    exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-report-tools: not root and no passwordless sudo; the headless render test will skip"
        exit 0
    fi
fi

started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends chromium >/dev/null
echo "install-report-tools: installed $(chromium --version 2>/dev/null) in $((SECONDS - started)) s"
