# wardflow — the two commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 0
SIMULATE ?= 1
BENCH ?= pipeline

.PHONY: run test lint typecheck schemas bench clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: wardflow needs Python 3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/wardflow up --duration $(DURATION) $(if $(filter 0,$(SIMULATE)),--no-simulate,--simulate)

test: $(STAMP)
	$(BIN)/ruff check schemas services tests bench
	$(BIN)/ruff format --check schemas services tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check schemas services tests bench
	$(BIN)/ruff format --check schemas services tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/wardflow schemas generate

# The pipeline family by default (about 6 minutes from a fresh clone); BENCH="ingest stages" picks others, and
# `.venv/bin/python -m bench` runs every family (bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
