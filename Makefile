# estate-advisor: every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= training_jobs/configs/ames.toml
ARTIFACTS ?= ./artifacts
PORT   ?= 8080

.PHONY: help venv install train demo test lint typecheck unit bench clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project with its dev tools

train: install  ## train on Ames (or CONFIG=...) and export a bundle to ARTIFACTS
	$(BIN)/python -m training_jobs.train --config $(CONFIG) --output $(ARTIFACTS)

MODEL  ?= ames

demo: install  ## train if no bundle exists, then serve predict on localhost:8080
	@if [ ! -f "$(ARTIFACTS)/models/$(MODEL)/serving.json" ]; then \
		echo "No $(MODEL) model in $(ARTIFACTS) yet: training one (about a minute)…"; \
		$(BIN)/python -m training_jobs.train --config $(CONFIG) --output $(ARTIFACTS); \
	fi
	@echo ""
	@echo "Serving predict on http://localhost:$(PORT) (Ctrl-C stops). In another terminal:"
	@echo "  curl -s localhost:$(PORT) -H 'Content-Type: application/json' -d @examples/predict_ames.json"
	@echo ""
	ESTATE_ARTIFACTS=$(ARTIFACTS) ESTATE_MODEL_NAME=$(MODEL) \
		$(BIN)/functions-framework --source main.py --target predict --host 127.0.0.1 --port $(PORT)

lint: install  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install  ## mypy --strict on the source
	$(BIN)/mypy

unit: install  ## pytest only
	$(BIN)/pytest

test: lint typecheck unit  ## everything CI runs: ruff, mypy, pytest

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## ONNX functions vs FastAPI+joblib baseline side by side, 10,000 hostile requests; writes bench/results.json
	$(BIN)/python -m bench.serving --source $(ARTIFACTS)
	$(BIN)/pytest -q -p no:cacheprovider --timeout 1800 -m hostile --hostile-examples 10000 tests/test_hostile.py

clean:  ## remove the venv, artifacts and caches
	rm -rf $(VENV) $(ARTIFACTS) .pytest_cache .mypy_cache .ruff_cache
