# Two commands on a fresh clone: `make demo` (the main job) and `make test`.
# Each creates .venv when it is missing and installs the package into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lab lessons bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mnistloc demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

bench: $(STAMP)
	$(BIN)/python bench/canvas.py

clean:
	rm -rf $(VENV) demo-output
