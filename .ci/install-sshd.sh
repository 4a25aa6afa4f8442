#!/usr/bin/env bash
# Installs OpenSSH's server and client so tests/runtime/test_remote_bench.py can run `mdx bench --host`
# against a private sshd on 127.0.0.1 (the test starts and stops it; nothing listens otherwise).
# Idempotent; without apt-get or root it says so and exits 0, and the test skips.
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"

if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then
    echo "install-sshd: already installed (/usr/sbin/sshd, $(command -v ssh))"
    exit 0
fi
apt_install install-sshd "the mdx bench --host test" openssh-server openssh-client || exit 0
