# Vigil: the two commands are `make demo` (run the product) and `make test` (run the checks).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vigil-installed
HOST ?= 127.0.0.1
APP_PORT ?= 8501
MLFLOW_PORT ?= 5000
LS_PORT ?= 8080

.PHONY: demo test lint typecheck pytest bench install browser java labelstudio nannyml clean help

help:
	@echo "make demo   - install, build the demo workspace (.vigil/), start MLflow, Label Studio, vigil serve and the app"
	@echo "make test   - install test needs, run ruff, mypy and the whole pytest suite"
	@echo "make bench  - run every benchmark in bench/ (results in bench/results/*.json)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,gx,spark]'
	@touch $(STAMP)

install: $(STAMP)

browser:
	@bash scripts/ensure_chromium.sh
	@bash scripts/ensure_poppler.sh

java:
	@bash scripts/ensure_java.sh

labelstudio:
	@bash scripts/labelstudio.sh install

# NannyML, the reference of the CBPE and multivariate-drift cross-checks, in its own virtualenv.
nannyml:
	@bash scripts/nannyml.sh install

demo: install labelstudio
	@bash scripts/demo.sh

lint: install
	$(BIN)/ruff check dashboard connectors pages tests bench

typecheck: install
	$(BIN)/mypy

pytest: install browser java labelstudio nannyml
	@set +e; $(BIN)/python -m pytest -p no:cacheprovider -n 2; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

test: lint typecheck pytest

bench: install nannyml
	@mkdir -p bench/results
	@set -e; for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf .vigil bench/results .pytest_cache .mypy_cache .ruff_cache
