# The lab's two entry points: `make lab` (open the lab) and `make test` (the whole test suite).
# Both create .venv when it is missing and install the exact versions in constraints.txt.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
TESTSTAMP = $(VENV)/.installed-test
PROXYSTAMP = node_modules/.installed
FIRST   = $(firstword $(wildcard notebooks/00-*.ipynb) .)

.PHONY: setup lab test test-fast preflight lint notebooks mutations bench clean install hub-proxy install-hub

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

# configurable-http-proxy, JupyterHub's proxy (tests/test_classroom.py, a class hub: deploy/jupyterhub/),
# at the exact versions of package-lock.json. 5.2.0: 5.3.0's commander 15 wants Node 22, Debian has 20.
hub-proxy: $(PROXYSTAMP)

$(PROXYSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(PROXYSTAMP)

test: preflight $(TESTSTAMP) $(PROXYSTAMP)
	$(BIN)/python -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg

# The suite's quick part, for a developer's inner loop: no test marked slow, browser or hub, no notebook
# (the markers: pyproject.toml). `make test`, which CI runs, runs everything.
test-fast: $(TESTSTAMP)  # no preflight: the quick part needs neither chromium nor node
	$(BIN)/python -m pytest -m "not slow and not browser and not hub" tests

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

bench: $(TESTSTAMP)  # the class page's row needs jupyterhub (the test extra)
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

# `make install-hub`, as root: the same, with JupyterHub (the `hub` extra) and configurable-http-proxy in
# $(PREFIX), and the class hub's config in $(PREFIX)/etc/jupyterhub (deploy/jupyterhub/, docs/instructors.md):
#   $(PREFIX)/bin/jupyterhub -f $(PREFIX)/etc/jupyterhub/jupyterhub_config.py
install-hub: install
	$(PREFIX)/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt '.[hub]'
	rm -rf build
	cp package.json package-lock.json $(PREFIX)/
	cd $(PREFIX) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(PREFIX)/etc/jupyterhub
	cp deploy/jupyterhub/jupyterhub_config.py deploy/jupyterhub/labkit_class.py $(PREFIX)/etc/jupyterhub/
	chmod -R a+rX $(PREFIX)
	@echo "Class hub installed: $(PREFIX)/bin/jupyterhub -f $(PREFIX)/etc/jupyterhub/jupyterhub_config.py, as root."
