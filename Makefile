# Slipcast: `make demo` runs the main job end to end, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DATA := data/demo

.PHONY: setup demo data features train serve test test-fast lint api-docs bench eval-real screenshot clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,cluster]"
	touch $(STAMP)

data: setup
	$(BIN)/slipcast generate --out $(DEMO_DATA) --projects 5 --tickets 2500 --seed 1

features: data
	$(BIN)/slipcast features --data $(DEMO_DATA)

train: features
	$(BIN)/slipcast train --features work/features

serve: setup
	$(BIN)/slipcast serve

demo: train
	$(BIN)/python -m slipcast.tools.demo

screenshot: train  # docs/page.png: the demo's dashboard page in headless Chromium
	$(BIN)/python -m slipcast.tools.demo --screenshot docs/page.png

test: setup  # the full suite, as CI runs it
	$(BIN)/python -m pytest -q

test-fast: setup  # the inner loop: unit and property tests, no Spark, PostgreSQL, Chromium or training
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup  # ruff, mypy, and the layers' import contract (pyproject.toml, [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

api-docs: setup  # docs/api.md from the service's OpenAPI
	$(BIN)/python -m slipcast.tools.api_docs docs/api.md

bench: setup  # hey (Debian's package) loads the live read API
	command -v hey >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey)
	$(BIN)/python -m benchmarks.run

eval-real: setup
	$(BIN)/slipcast eval-real

clean:
	rm -rf work data mlruns/mlflow.db mlruns/artifacts
