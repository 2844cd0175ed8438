# The lab's two entry points: `make lab` (open the lab) and `make test` (the whole test suite).
# Both create .venv when it is missing and install the exact versions in constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
TESTSTAMP = $(VENV)/.installed-test
FIRST   = $(firstword $(wildcard notebooks/00-*.ipynb) .)

.PHONY: setup lab test preflight lint notebooks mutations bench clean install

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

lab: setup  # labkit up, then JupyterLab with the venv first on PATH in its kernels and terminals
	jupyter/start-lab $(VENV) $(FIRST)

test: preflight $(TESTSTAMP)
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

preflight:  # what the suite needs beyond Python, checked before anything is installed: one line if missing
	@tools/preflight

notebooks: setup
	$(BIN)/python tools/run-notebooks

lint: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/ruff check labkit tests benchmarks/run tools/run-notebooks tools/mutations conftest.py
	$(BIN)/ruff format --check labkit tests benchmarks/run tools/run-notebooks tools/mutations conftest.py
	$(BIN)/mypy --ignore-missing-imports labkit

mutations: $(TESTSTAMP)  # deliberate breakages the suite must catch (tools/mutations); not part of `make test`
	$(BIN)/python tools/mutations

bench: setup
	$(BIN)/python benchmarks/run

clean:
	rm -rf $(VENV) build *.egg-info

# `make install`, as root: one install that every user of the host runs (docs/instructors.md). A venv
# in $(PREFIX), world-readable, holding labkit (not editable: the clone may go) at the exact versions,
# the notebooks and JupyterLab's settings; `labkit` linked into $(BINDIR), on every user's PATH. Its
# Python must be one every user may run: pyenv's, under /root, is not. Running it again updates it.
PREFIX ?= /opt/iam-roles-for-ec2
BINDIR ?= /usr/local/bin
SHARED_PYTHON ?= /usr/bin/python3

install:
	@test "$$(id -u)" = 0 || { echo "make install: run it as root (it writes $(PREFIX) and $(BINDIR)/labkit)" >&2; exit 1; }
	@case "$(PREFIX):$(BINDIR)" in /?*:/?*) ;; *) echo "make install: PREFIX and BINDIR must be absolute paths" >&2; exit 1;; esac
	test -x $(PREFIX)/bin/python || $(SHARED_PYTHON) -m venv $(PREFIX)
	rm -rf build  # setuptools stages the package here; a file left from an older tree would be installed too
	$(PREFIX)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt .
	rm -rf build
	mkdir -p $(PREFIX)/share/jupyter/lab/settings
	cp jupyter/overrides.json $(PREFIX)/share/jupyter/lab/settings/overrides.json  # no news from outside
	rm -rf $(PREFIX)/notebooks
	cp -R notebooks $(PREFIX)/notebooks
	rm -rf $(PREFIX)/notebooks/.ipynb_checkpoints
	chmod -R a+rX $(PREFIX)
	mkdir -p $(BINDIR)
	ln -sfn $(PREFIX)/bin/labkit $(BINDIR)/labkit
	@runuser -u nobody -- $(BINDIR)/labkit --help >/dev/null || { \
	  echo "make install: other users cannot run $(PREFIX)/bin/python (it is $$(readlink -f $(PREFIX)/bin/python))." \
	    "Make it again from a Python every user may run: rm -rf $(PREFIX) && make install SHARED_PYTHON=/usr/bin/python3" >&2; \
	  exit 1; }
	@echo "Installed labkit in $(PREFIX); every user now runs it as \`labkit\` ($(BINDIR)/labkit)."
