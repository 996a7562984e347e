# gsomia — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core, at most 4 (each starts its own servers,
# PostgreSQL cluster and browser); 0 runs the suite in this process. A file's tests stay in
# one process, in order (--dist loadfile): some share a module's server.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
DEMO_PORT ?= 8000

.PHONY: demo test lint bench install install-dev system-packages clean serve web web-check console console-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==26.3

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## demo: load the bundled 2019 Japan–Korea scenario into the default SQLite database, print the impact report,
## issue demo credentials, then serve the dashboard and the exchange on http://127.0.0.1:$(DEMO_PORT)/ until Ctrl-C
demo: install
	$(BIN)/gsomia demo --port $(DEMO_PORT)

## test: the dashboard's and the node console's lint and unit tests (web-check, console-check), then the whole suite, PostgreSQL and browser included,
## with coverage of src/gsomia (subprocesses too); first installs the Debian packages it needs
## (scripts/system-packages.sh), fails under the floor in pyproject.toml, and lists the 15 slowest tests
test: system-packages install-dev web-check console-check
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --cov --cov-report=html:artifacts/coverage --durations=15 $(PYTEST_ARGS)

## system-packages: PostgreSQL, Chromium, CJK fonts, Node.js and npm from Debian (as root; otherwise prints the command)
system-packages:
	@bash scripts/system-packages.sh

## lint: ruff (check and format), mypy --strict and the import-linter layer contracts
lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the engine benchmark (decisions/s against Cedar, coverage and gaps on 200 parties)
bench: install-dev
	$(BIN)/python bench/decisions.py

## web: rebuild the dashboard's assets from web/ (Cytoscape.js, ECharts, Swagger UI from npm, bundled by
## esbuild) into src/gsomia/web/static; they are committed, so only needed after changing web/ (needs Node and npm)
web:
	cd web && npm ci && npm run build

## web-check: the dashboard sources' ESLint and Prettier checks and their unit tests (needs Node and npm)
web-check:
	cd web && npm ci && npm run lint && npm test

## console: rebuild the party node's console from console/ (bundled by esbuild, no runtime library) into
## src/gsomia/node/web; the built files are committed, so only needed after changing console/ (needs Node and npm)
console:
	cd console && npm ci && npm run build

## console-check: the node console sources' ESLint and Prettier checks, their unit tests, and that the committed build is theirs
console-check:
	cd console && npm ci && npm run lint && npm test && npm run check-build

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis artifacts .coverage .coverage.*
