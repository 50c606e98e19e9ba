PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/hamlet serve --generate-config --config data/homeserver.yaml --data-dir data

test: $(STAMP)
	$(BIN)/ruff check hamlet tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hamlet tests bench
	$(BIN)/ruff format --check hamlet tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/ratelimit.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
