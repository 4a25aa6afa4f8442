#!/usr/bin/env bash
# Installs the Debian packages that the Android demo checks (tests/android) need:
#   kotlin (kotlinc 1.3 + kotlin-stdlib), junit4 (+ hamcrest), a Java runtime,
#   aapt (aapt2) and android-framework-res (framework-res.apk to link the manifest and resources).
# Idempotent: when everything is present it changes nothing and does not touch apt.
# Without apt-get (not Debian/Ubuntu) or without root/sudo it says so and exits 0: the tests then
# skip, each naming the package it needs.
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"

present() {
    command -v kotlinc >/dev/null && command -v java >/dev/null && command -v aapt2 >/dev/null &&
        [ -f /usr/share/java/junit4.jar ] && [ -f /usr/share/java/hamcrest-core.jar ] &&
        [ -f /usr/share/java/kotlin-stdlib.jar ] &&
        [ -f /usr/share/android-framework-res/framework-res.apk ]
}

if present; then
    echo "install-android-tools: already installed (kotlinc, java, junit4, aapt2, framework-res.apk)"
    exit 0
fi
apt_install install-android-tools "the Android checks" kotlin junit4 default-jre-headless aapt android-framework-res || exit 0
if ! present; then
    echo "install-android-tools: installed the packages but a tool is still missing" >&2
    exit 1
fi
