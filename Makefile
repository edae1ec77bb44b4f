# estate-advisor: every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/ames.toml
ARTIFACTS ?= ./artifacts

.PHONY: help venv install system-deps train demo test lint typecheck unit bench bench-peers bench-explain bench-score bench-memory clean infra-check imports beam-venv bench-beam

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
	$(BIN)/estate train --config $(CONFIG) --store $(ARTIFACTS)

MODEL  ?= ames

demo: install  ## train if no bundle exists, then serve predict :8080, explain :8081, chat :8082, analyze :8084, web page :8090
	@if [ ! -f "$(ARTIFACTS)/models/$(MODEL)/serving.json" ]; then \
		echo "No $(MODEL) model in $(ARTIFACTS) yet: training one (about a minute)…"; \
		$(BIN)/estate train --config $(CONFIG) --store $(ARTIFACTS); \
	fi
	@echo ""
	@echo "Serving (Ctrl-C stops all):"
	@echo "  predict  http://localhost:8080   curl -s localhost:8080 -H 'Content-Type: application/json' -d @examples/predict_ames.json"
	@echo "  explain  http://localhost:8081   curl -s localhost:8081 -H 'Content-Type: application/json' -d @examples/explain_ames.json"
	@echo "  chat     http://localhost:8082   curl -s localhost:8082 -H 'Content-Type: application/json' -d @examples/chat_value.json"
	@echo "  analyze  http://localhost:8084   curl -s localhost:8084 -H 'Content-Type: application/json' -d @examples/analyze_ames.json"
	@echo "  web page http://localhost:8090"
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	export ESTATE_ARTIFACTS=$(ARTIFACTS) ESTATE_MODEL_NAME=$(MODEL); \
	$(BIN)/functions-framework --source main.py --target predict --host 127.0.0.1 --port 8080 & \
	$(BIN)/functions-framework --source main.py --target explain --host 127.0.0.1 --port 8081 & \
	$(BIN)/functions-framework --source main.py --target chat --host 127.0.0.1 --port 8082 & \
	$(BIN)/functions-framework --source main.py --target analyze --host 127.0.0.1 --port 8084 & \
	$(BIN)/python -m http.server 8090 --bind 127.0.0.1 --directory web & \
	wait

lint: install  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install  ## mypy --strict on the source
	$(BIN)/mypy

imports: install  ## layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
	$(BIN)/lint-imports

# Tests are mostly waiting on servers and sockets: two processes, a file each at a time
# (module fixtures stay in one process), halve the wall time on a 2-core machine.
PYTEST_WORKERS ?= 2

unit: install  ## pytest only (PYTEST_WORKERS=0: one process)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

system-deps:  ## install Debian's chromium + chromium-driver for the web page test, if missing
	@bash .ci/system-deps

test: system-deps lint typecheck imports beam-venv unit infra-check  ## everything CI runs: ruff, mypy, layer contracts, pytest, Terraform checks

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## ONNX functions vs FastAPI+joblib baseline side by side, 10,000 hostile requests, worst-request memory; writes bench/results.json, bench/memory.json
	$(BIN)/python -m bench.serving --source $(ARTIFACTS)
	$(BIN)/pytest -q -p no:cacheprovider --timeout 1800 -m hostile --hostile-examples 10000 tests/e2e/test_hostile_*.py
	$(BIN)/python -m bench.memory --artifacts $(ARTIFACTS)

bench-peers: $(VENV)/.bench-installed  ## predict vs KServe, MLServer, BentoML, MLflow (own venvs in bench/.cache/peers, built on first run); writes bench/peers_results.json
	$(BIN)/python -m bench.peers --source $(ARTIFACTS)

clean:  ## remove the venv, artifacts and caches
	rm -rf $(VENV) $(TOOLS) $(BEAM) $(ARTIFACTS) .pytest_cache .mypy_cache .ruff_cache

# checkov pins dozens of packages (older packaging, boto3, ...) that clash with the
# project's; it gets its own venv, rebuilt when infra/requirements-tools.txt changes.
TOOLS ?= .venv-tools

$(TOOLS)/.installed: infra/requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet -r infra/requirements-tools.txt
	touch $@

infra-check: $(TOOLS)/.installed  ## Terraform offline: fmt (when terraform is installed) and checkov
	@if command -v terraform > /dev/null; then TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -diff -recursive infra; \
	else echo "terraform not installed: skipping terraform fmt (the pytest HCL checks still run)"; fi
	$(TOOLS)/bin/checkov -d infra --framework terraform --skip-download --compact --quiet

bench-explain: install  ## explain latency per row (1 and 1,000 rows) next to shap.TreeExplainer; writes bench/explain_results.json
	$(BIN)/python -m bench.explain_latency --artifacts $(ARTIFACTS)

bench-score: install  ## estate score rows/s and peak RSS up to 1,000,000 rows; writes bench/score_results.json
	$(BIN)/python -m bench.score_throughput --artifacts $(ARTIFACTS)

bench-memory: install  ## each class of worst request at the limits: a fresh worker's peak RSS growth; writes bench/memory.json
	$(BIN)/python -m bench.memory --artifacts $(ARTIFACTS)

# Apache Beam pins pyarrow<26 and protobuf<7, below what the project resolves to: `estate
# beam-score` gets its own venv (the project + its train and beam extras), rebuilt when
# pyproject.toml changes. tests/integration/test_beam.py runs the pipeline in it.
BEAM ?= .venv-beam

$(BEAM)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BEAM)
	$(BEAM)/bin/python -m pip install --quiet --upgrade pip
	$(BEAM)/bin/python -m pip install --quiet -e '.[beam]'
	touch $@

beam-venv: $(BEAM)/.installed  ## Apache Beam's own venv (.venv-beam) for estate beam-score

bench-beam: install beam-venv  ## estate beam-score (Direct/Prism runner) rows/s next to estate score, 1,000,000 rows; writes bench/beam_results.json
	$(BIN)/python -m bench.beam_throughput --artifacts $(ARTIFACTS)
