# The verbs a user needs: `make run` (portal + worker + scheduler on the embedded defaults)
# and `make test` (the whole suite). Both create .venv and install what they need themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: run test test-fast lint install install-dev translations migrate-check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed translations
install-dev: $(VENV)/.installed-dev translations

# Compiled message catalogs are build output (ignored by git); the .po files are the source.
translations: $(VENV)/.installed
	$(BIN)/pybabel compile -d translations >/dev/null

run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask demo load --if-empty
	$(BIN)/python -m portal.devserver

# Bytecode caching on for the tests even where the environment turns it off
# (PYTHONDONTWRITEBYTECODE=1): without it every run compiles the portal and pytest rewrites
# every test module again, 9 of the unit run's 76 s of CPU (__pycache__ is git-ignored).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

test: install-dev
	$(PYTEST) $(PYTEST_ARGS)

# The unit tests only (in-process: no live server, subprocess, emulator or browser; markers
# in tests/conftest.py), on FAST_WORKERS processes (pytest-xdist, each with its own database
# and Redis database; FAST_WORKERS=0: one process). Measured on the 2-core machine at load 1:
# one process 47 s (36 s of CPU), two 35 s (42 s of CPU). `make test PYTEST_ARGS="-n 2"`
# runs the whole suite on two processes.
FAST_WORKERS ?= 2
test-fast: install-dev
	$(PYTEST) -m unit -n $(FAST_WORKERS) $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .

# The import contracts in .importlinter: layers run one way (models <- billing <- platforms <-
# jobs <- views), no platform imports another, no circles.
.PHONY: lint-imports
lint-imports: install-dev
	$(BIN)/lint-imports --no-logo --no-cache

bench: install-dev
	$(BIN)/python bench/charge_run.py

clean:
	rm -rf $(VENV) .pytest_cache
