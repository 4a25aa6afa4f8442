# Two commands for a new user: `make demo` (the whole pipeline on the bundled data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet ".[train,litert,dev]"
	touch $(STAMP)

# Tests run against the installed (non-editable) package, so a file missing from the wheel is caught.
install: $(STAMP)
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

demo: install
	$(BIN)/mdx pipeline data/chest_xray --out runs/demo --overwrite

test: install
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info runs
