# Two commands for a fresh Debian/Ubuntu machine (Python 3.11+):
#   make run    install Nudge into .venv and start it on its embedded defaults (PORT=8001 for another port)
#   make test   install everything the tests need (system packages included), run the guard rails (ruff, mypy,
#               import-linter) and the whole suite
#   make docs   regenerate docs/configuration.md from the settings' declarations
#   make assets rebuild the admin UI's front-end bundle (server/static/dist/, committed) from the locked npm packages
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get
# the suite runs a worker more than the cores, up to four (pytest-xdist, tests/conftest.py); PYTEST_ARGS=-n0 runs it
# in one process
PYTEST_ARGS ?= --numprocesses=auto --maxprocesses=4
PORT   ?= 8000
#: the npm packages the browser tests use (axe-core), installed from the committed lockfile
NODE_MODULES := server/assets/node_modules/.package-lock.json

.PHONY: run test docs assets bench system-run system-test clean

run: system-run $(VENV)/.run-installed
	$(BIN)/nudge up --port $(PORT)

# The guard rails run first, each failing the target with its own output: lint, format, types, layers; then pytest
# (whose exit 5, "no tests collected", is a failure like any other), listing its 30 slowest tests: the suite should
# stay under 30 minutes on a 2-core machine. The suite's Python processes keep their compiled modules (__pycache__,
# git-ignored) even where the environment says not to (PYTHONDONTWRITEBYTECODE): otherwise each of its hundreds of
# `nudge` processes compiles Nudge's sources again, and each pytest worker rewrites every test module again.
test: export PYTHONDONTWRITEBYTECODE :=
test: system-test $(VENV)/.test-installed $(NODE_MODULES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest --durations=30 $(PYTEST_ARGS)

docs: $(VENV)/.run-installed
	$(BIN)/nudge config docs > docs/configuration.md

assets:
	cd server/assets && npm ci --no-audit --no-fund && node build.mjs

bench: $(VENV)/.test-installed
	BENCH_FULL=$(BENCH_FULL) $(BIN)/python -m bench.run $(BENCH)

# -- system packages: installed only when missing -------------------------------------
system-run:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Nudge needs Python 3.11 or newer ($(PYTHON) is $$($(PYTHON) -V 2>&1))"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
	  { $(APT) update -q && $(APT) install -y -q python3-venv python3-dev gcc; }

system-test: system-run
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { $(APT) update -q && $(APT) install -y -q postgresql; }
	@command -v chromium >/dev/null 2>&1 || \
	  { $(APT) update -q && $(APT) install -y -q chromium; }
	@command -v npm >/dev/null 2>&1 || \
	  { $(APT) update -q && $(APT) install -y -q npm; }

$(NODE_MODULES): server/assets/package-lock.json
	cd server/assets && npm ci --no-audit --no-fund

# -- the virtualenv ----------------------------------------------------------------------
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-installed: $(VENV)/bin/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-installed: $(VENV)/bin/python setup.cfg pyproject.toml $(wildcard examples/*/pyproject.toml)
	$(BIN)/pip install -q -e '.[test,postgres]'
	@for d in examples/*/; do [ -f "$$d/pyproject.toml" ] && $(BIN)/pip install -q -e "$$d" || true; done
	@touch $@ $(VENV)/.run-installed

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
