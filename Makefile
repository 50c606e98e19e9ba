PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Synapse for the interop tests, in a venv of its own (its pins are not ours).
SYNAPSE_VENV := .venv-synapse
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed

.PHONY: serve test lint typecheck bench clean

# constraints.txt pins every version CI used, so a fresh clone gets the same tools.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade -c constraints.txt pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(SYNAPSE_STAMP): requirements-synapse.txt
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install --quiet -r requirements-synapse.txt
	touch $(SYNAPSE_STAMP)

# matrix-js-sdk for tests/clients/test_jssdk_sliding_sync.py, at the versions
# package-lock.json pins. Without node and npm this fails, as the test would.
JSSDK := tests/clients/jssdk
JSSDK_STAMP := $(JSSDK)/node_modules/.installed

$(JSSDK_STAMP): $(JSSDK)/package.json $(JSSDK)/package-lock.json
	cd $(JSSDK) && npm ci --no-audit --no-fund
	touch $(JSSDK_STAMP)

serve: $(STAMP)
	$(BIN)/hamlet serve --generate-config --config data/homeserver.yaml --data-dir data

test: $(STAMP) $(SYNAPSE_STAMP) $(JSSDK_STAMP)
	$(BIN)/ruff check hamlet tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hamlet tests bench
	$(BIN)/ruff format --check hamlet tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/ratelimit.py

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) .pytest_cache .mypy_cache .ruff_cache $(JSSDK)/node_modules
