# One place for the commands the README, CI and the Dockerfile share.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Set up and start the receiver on 127.0.0.1:8080 (Ctrl-C stops it cleanly).
run: $(STAMP)
	$(VENV)/bin/receiver serve

## The test suite (what CI runs).
test: $(STAMP)
	PYTHONASYNCIODEBUG=$${PYTHONASYNCIODEBUG:-0} $(PY) -m pytest $(PYTEST_ARGS)

## The benchmark (README "Performance"); e.g. make bench BENCH_ARGS="--calls 900 --repeat 1".
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

## Lint and types.
check: $(STAMP)
	$(VENV)/bin/ruff check receiver tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
