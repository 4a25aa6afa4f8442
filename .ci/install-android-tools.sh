#!/usr/bin/env bash
# Installs the Debian packages that the Android demo checks (tests/android) need:
#   kotlin (kotlinc 1.3 + kotlin-stdlib), junit4 (+ hamcrest), a Java runtime,
#   aapt (aapt2) and android-framework-res (framework-res.apk to link the manifest and resources).
# Idempotent: when everything is present it changes nothing and does not touch apt.
# Without apt-get (not Debian/Ubuntu) or without root/sudo it says so and exits 0: the tests then
# skip, each naming the package it needs.
set -euo pipefail

PACKAGES=(kotlin junit4 default-jre-headless aapt android-framework-res)

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
if ! command -v apt-get >/dev/null; then
    echo "install-android-tools: no apt-get here; install ${PACKAGES[*]} by hand or the Android checks will skip"
    exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-android-tools: not root and no passwordless sudo; the Android checks will skip"
        exit 0
    fi
fi

started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
if ! present; then
    echo "install-android-tools: installed ${PACKAGES[*]} but a tool is still missing" >&2
    exit 1
fi
echo "install-android-tools: installed ${PACKAGES[*]} in $((SECONDS - started)) s"
