# Two commands on a fresh machine with Python 3.11+ and pip: `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint test-unit compose-test bench bench-packages bench-small bench-storm load clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,local]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the whole stack on embedded defaults, one sample export, until Ctrl-C
	$(BIN)/python -m devstack

test: lint  ## the gates, then every test: unit, api, integration (real PostgreSQL + S3), end-to-end (real Dagster daemon, workers, browser)
	$(BIN)/python -m pytest -q -p no:cacheprovider -rfEs  # no test collected (exit 5) is a failure too

lint: $(STAMP)  ## ruff (lint + format), mypy on the code, and the import-layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api export_engine devstack
	$(BIN)/lint-imports

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider export_engine_tests/unit

compose-test: $(STAMP)  ## as root: builds the Dockerfile, starts docker-compose.yml, exports through it (deploy/README.md)
	$(BIN)/python deploy/compose-test/compose_test.py

bench: $(STAMP)  ## side-by-side throughput and memory vs. raw COPY
	$(BIN)/python -m bench.export_bench $(ARGS)

bench-packages: $(STAMP)  ## a package (streamed ZIP) vs the single-dataset export of the same rows, 1M and 10M
	$(BIN)/python -m bench.package_bench $(ARGS)

bench-small: $(STAMP)  ## N tiny exports at once: fresh run process per export vs Celery run workers, same run
	$(BIN)/python -m bench.small_exports $(ARGS)

bench-storm: $(STAMP)  ## the month-end storm: 1,000 tiny exports from 100 owners in bursts of 100 (ARGS="--history 100000")
	$(BIN)/python -m bench.storm $(ARGS)

load: $(STAMP)  ## 1,000 POSTs / 50 clients / 100 keys against the running stack (start `make run` first)
	$(BIN)/python -m loadtest $(ARGS)

clean:
	rm -rf .local
