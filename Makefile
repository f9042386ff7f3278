# medtwin: two commands on a fresh machine.  `make run` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast check lint typecheck bench bench-twin bench-service reference clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "medtwin needs Python >= 3.11 (set PYTHON=python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the service on http://127.0.0.1:8000 (embedded SQLite) with a dozen live demo patients
run: $(STAMP)
	$(BIN)/medtwin serve --demo

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## test-fast: everything but the long numerical runs
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## check: exactly what CI runs, plus lint and types
check: lint typecheck test

## bench: the benchmarks (engine throughput, latency, memory, simglucose ratio)
bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py

## bench-twin: patient-twin latency and forecast accuracy on the virtual-patient bench (~15 min)
bench-twin: $(STAMP)
	$(BIN)/python benchmarks/twin.py

## bench-service: ingestion throughput (FHIR, light path, MQTT) on SQLite and PostgreSQL
bench-service: $(STAMP)
	$(BIN)/python benchmarks/service.py

## reference: regenerate the simglucose reference trajectories (own venv)
reference:
	bash tools/simglucose_venv.sh
	.venv-simglucose/bin/python tools/simglucose_reference.py

clean:
	rm -rf $(VENV) .venv-simglucose .pytest_cache .mypy_cache .ruff_cache out medtwin-data
