# flexbench — the national NHS flexible working benchmark.
# `make demo` and `make test` are the two commands of the README; both set up .venv first.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp

.DEFAULT_GOAL := help
AXE_VERSION := 4.10.3

.PHONY: help setup browser axe demo ui test test-fast lint format bench site clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the project with its pinned dependencies (idempotent)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,celery]'
	@touch $(STAMP)

browser: ## install headless Chromium (Debian's package) for the browser tests, when root
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed: the browser tests will be skipped"; fi; }

axe: ## install axe-core $(AXE_VERSION) from npm into var/axe for the accessibility tests
	@grep -qs '"version": "$(AXE_VERSION)"' var/axe/node_modules/axe-core/package.json || { \
	  if command -v npm >/dev/null 2>&1; then \
	    mkdir -p var/axe && npm install --silent --no-audit --no-fund --prefix var/axe \
	      axe-core@$(AXE_VERSION) >/dev/null 2>&1 \
	    || echo "axe-core could not be installed: the accessibility tests will be skipped"; \
	  else echo "npm is not installed: the accessibility tests will be skipped"; fi; }

demo: setup ## benchmark a synthetic nation through Airflow; warehouse in data/flexbench.duckdb
	$(BIN)/flexbench demo

ui: setup ## the Airflow UI on http://127.0.0.1:8080 over the demo's runs (PORT=8080; Ctrl-C stops it)
	$(BIN)/flexbench ui --port $(or $(PORT),8080)

# The tests run in two processes (pytest-xdist); tests/conftest.py keeps each
# module (and the modules that share a build) in one process.
TEST_PROCS = -n 2

test: setup browser axe ## run the whole test suite
	$(BIN)/pytest -q $(TEST_PROCS)

test-fast: setup ## the tests without the slow ones (Airflow end to end, nation-sized builds) and deployment
	$(BIN)/pytest -q -m "not slow and not deployment" $(TEST_PROCS)

lint: setup ## ruff (with Airflow's AIR rules on dags/) and the format check
	$(BIN)/ruff check .
	$(BIN)/ruff check --select AIR dags/
	$(BIN)/ruff format --check .

format: setup ## format the code
	$(BIN)/ruff format .

bench: setup ## national-scale performance harness (long: not part of `make test`)
	$(BIN)/flexbench bench --scale 1 --json data/bench.json

site: setup ## build the static site from the warehouse into site/
	$(BIN)/flexbench site --out site

clean: ## remove the warehouse, landing zone and Airflow home (keeps .venv)
	rm -rf data var site
