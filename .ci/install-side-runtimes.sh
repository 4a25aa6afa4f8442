#!/usr/bin/env bash
# Builds the two side environments that cannot live in .venv, so their tests run instead of skipping:
#   .venv-tflite     tflite-runtime 2.14 (its last release, built for numpy 1.x) + numpy<2 + pillow:
#                    tests/runtime/test_tflite_runtime.py and the compatibility table's real loads
#   .venv-mediapipe  MediaPipe Tasks (its own numpy/protobuf pins): tests/integration/test_mediapipe_metadata.py
# Idempotent: an environment whose import check passes is left alone. A failed install says so and
# exits 0 (the tests then skip, naming the environment); CI sets MDX_REQUIRE_SIDE_RUNTIMES=1 to fail instead.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
status=0

build() {  # build NAME IMPORT_CHECK PACKAGES...
    local name=$1 check=$2
    shift 2
    if [ -x "$name/bin/python" ] && "$name/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "install-side-runtimes: $name already works"
        return 0
    fi
    local started=$SECONDS
    rm -rf "$name"
    if "$PYTHON" -m venv "$name" && "$name/bin/pip" install --quiet "$@" >"$name.log" 2>&1 &&
        "$name/bin/python" -c "$check"; then
        echo "install-side-runtimes: built $name ($*) in $((SECONDS - started)) s"
        rm -f "$name.log"
    else
        echo "install-side-runtimes: could not build $name ($*); see $name.log. Its tests will skip." >&2
        status=1
    fi
}

build .venv-tflite "import tflite_runtime.interpreter, numpy, PIL" "tflite-runtime>=2.14,<2.15" "numpy<2" pillow
build .venv-mediapipe "from mediapipe.tasks.python import vision" "mediapipe>=0.10.14"

if [ "$status" -ne 0 ] && [ "${MDX_REQUIRE_SIDE_RUNTIMES:-0}" = "1" ]; then
    exit 1
fi
exit 0
