# Two commands on a fresh machine: `make book` and `make test`. Both create .venv when missing and install
# the project from its own files (pyproject.toml). IBPRUNE_SCALE: smoke (CI), cpu (hours here), paper (GPU).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
IBPRUNE_SCALE ?= smoke
export IBPRUNE_SCALE
export IBPRUNE_DATA ?= $(CURDIR)/data
export IBPRUNE_WEIGHTS ?= $(CURDIR)/weights
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: venv test unit unit-fast notebooks book lab clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

unit: $(STAMP)
	$(PY) -m pytest -q --durations=10 tests

# The inner loop: the tests that need neither CIFAR nor the weights and take seconds, run against empty data and
# weights folders to prove it (under a minute). `make unit` runs every test.
unit-fast: $(STAMP)
	empty=$$(mktemp -d) && trap 'rm -rf "$$empty"' EXIT && IBPRUNE_DATA=$$empty IBPRUNE_WEIGHTS=$$empty \
		$(PY) -m pytest -q -p no:cacheprovider -m "not needs_data and not slow" tests

# Every notebook, executed as it is committed (nbmake injects no parameters: IBPRUNE_SCALE decides, smoke in CI),
# each its own test: the quick way to find which notebook fails. `make test` leaves it out: the book executes
# every notebook too, and fails on any error or stray warning in any cell.
notebooks: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=600 notebooks

# The book at IBPRUNE_SCALE: a copy of _config.yml with an execution cache per scale (the cache ignores
# environment variables), then a strict build: any warning or execution error gives a non-zero exit.
book: $(STAMP)
	$(PY) -m ibprune_lib.harness.book config --scale $(IBPRUNE_SCALE) --build-dir _build
	$(VENV)/bin/jupyter-book build . --config _build/config-$(IBPRUNE_SCALE).yml -W -n --keep-going
	$(PY) -m ibprune_lib.harness.book check _build/html

test: unit book

# The notebooks, interactive: JupyterLab from the project's environment (its python is the kernel), at the scale
# asked for, e.g. `make lab IBPRUNE_SCALE=cpu`.
lab: $(STAMP)
	@echo "IBPRUNE_SCALE=$(IBPRUNE_SCALE): the notebooks read it in their parameters cell"
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf _build .pytest_cache
