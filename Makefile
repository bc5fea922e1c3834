# respaldo: every target works on a fresh Debian machine as root (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup test lint unit demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check src tests bench sample scripts
	$(BIN)/ruff format --check src tests bench sample scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -n 2 --durations=15

unit: setup
	$(BIN)/pytest -m "unit or contract" -q

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
