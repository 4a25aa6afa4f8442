#!/usr/bin/env bash
# Installs Debian's nodejs and npm so `make web-deps` can run `npm ci --prefix web` (LiteRT.js, pinned by
# web/package-lock.json), which `mdx export web` copies into the page and tests/web/ needs.
# Chromium for those tests comes from .ci/install-report-tools.sh.
# Idempotent: when npm is present it changes nothing and does not touch apt.
# Without apt-get or root it says so and exits 0, and the web page tests skip.
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"

if command -v npm >/dev/null && command -v node >/dev/null; then
    echo "install-web-tools: node $(node --version) and npm $(npm --version) already installed"
    exit 0
fi
apt_install install-web-tools "the web page tests" nodejs npm || exit 0
