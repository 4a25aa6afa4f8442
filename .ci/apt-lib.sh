# Sourced by the .ci/install-*.sh scripts: install Debian packages, or say why not and let the caller exit 0.
# apt_install LABEL WHAT_SKIPS PACKAGE...: returns 0 after installing, 1 when apt-get or root is missing
# (having printed "LABEL: ...; WHAT_SKIPS will skip"), and fails the script when apt-get itself fails.

apt_install() {
    local label=$1 skips=$2
    shift 2
    if ! command -v apt-get >/dev/null; then
        echo "$label: no apt-get here; install $* by hand or $skips will skip"
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "$label: not root and no passwordless sudo; $skips will skip"
            return 1
        fi
    fi
    local started=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=120 update -qq
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "$@" >/dev/null
    echo "$label: installed $* in $((SECONDS - started)) s"
}
