# Two commands for a new user: `make demo` (the whole pipeline on the bundled data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install side-runtimes web-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[train,litert,dev]"
	touch $(STAMP)

# Tests run against the installed (non-editable) package, so a file missing from the wheel is caught.
install: $(STAMP)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

# 128 px keeps the demo within 10 minutes on 2 cores; 224 px measured the same test AUC 2.5x slower.
demo: install
	$(BIN)/mdx pipeline data/chest_xray --out runs/demo --overwrite --input-size 128

# tflite-runtime 2.14 (numpy<2) and MediaPipe each need their own venv; without them their tests skip.
side-runtimes:
	PYTHON=$(PYTHON) bash .ci/install-side-runtimes.sh

# LiteRT.js for `mdx export web`, from the npm registry at the versions web/package-lock.json pins; without
# npm (.ci/install-web-tools.sh installs it) the web page tests skip. Nothing is fetched when the page runs.
WEB_STAMP := web/node_modules/.package-lock.json
$(WEB_STAMP): web/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix web --no-audit --no-fund --loglevel=error; \
	else echo "web-deps: npm not found (apt-get install npm, or .ci/install-web-tools.sh); tests/web will skip"; fi

web-deps: $(WEB_STAMP)

test: install side-runtimes web-deps
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .venv-tflite .venv-mediapipe build *.egg-info runs web/node_modules
