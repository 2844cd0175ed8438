# The lab's two entry points: `make lab` (open the lab) and `make test` (the whole test suite).
# Both create .venv when it is missing and install the exact versions in constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
TESTSTAMP = $(VENV)/.installed-test
FIRST   = $(firstword $(wildcard notebooks/00-*.ipynb) .)
ROOT    = $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test lint notebooks bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt jupyter/overrides.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json  # no news from outside
	touch $(STAMP)

$(TESTSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(TESTSTAMP)

lab: setup
	$(BIN)/labkit up
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ROOT) $(FIRST)

test: $(TESTSTAMP)
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

notebooks: setup
	$(BIN)/python tools/run-notebooks

lint: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/ruff check labkit tests benchmarks/run tools/run-notebooks conftest.py
	$(BIN)/ruff format --check labkit tests benchmarks/run tools/run-notebooks conftest.py
	$(BIN)/mypy --ignore-missing-imports labkit

bench: setup
	$(BIN)/python benchmarks/run

clean:
	rm -rf $(VENV) build *.egg-info
