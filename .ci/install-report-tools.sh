#!/usr/bin/env bash
# Installs Debian's chromium so tests/cli/test_report.py can render report.html headless
# (test_report_html_renders_in_headless_chromium; it skips, saying so, when chromium is absent).
# Idempotent: when chromium is present it changes nothing and does not touch apt.
# Without apt-get (not Debian/Ubuntu) or without root/passwordless sudo it says so and exits 0.
# Measured on Debian 12 (bookworm): apt-get update ~1 s with a warm cache, install ~35 s, ~290 MB.
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"

if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    echo "install-report-tools: chromium already installed ($(command -v chromium || command -v chromium-browser))"
    exit 0
fi
apt_install install-report-tools "the headless render test" chromium || exit 0
