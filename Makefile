# respaldo: every target works on a fresh Debian machine as root (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup install demo-stop test test-faults reliability lint unit demo bench clean messages screenshots

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

# respaldo's gettext catalogs (src/respaldo/locale): the messages of the alerts and the
# page are extracted into respaldo.pot and merged into each language's respaldo.po, to be
# translated there.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ --no-location --omit-header --sort-output \
		-o src/respaldo/locale/respaldo.pot .
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -w 100 \
		-i src/respaldo/locale/respaldo.pot -d src/respaldo/locale -D respaldo

# For the whole machine: /opt/respaldo and /usr/local/bin/respaldo (docs/install.md).
install:
	bash scripts/install.sh

lint: setup
	$(BIN)/ruff check src tests bench sample scripts
	$(BIN)/ruff format --check src tests bench sample scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite, the fault table (tests/faults) included: CI runs this (.ci/run).
test: setup lint
	$(BIN)/pytest -n 2 --durations=15

# Only the fault table: kill -9, storage faults, full disk, PostgreSQL restarts, corruption.
test-faults: setup
	$(BIN)/pytest -m faults -n 2 tests/faults

# docs/reliability.md from a real run of the fault table (failed scenarios are listed too).
FAULTS_RESULTS ?= /tmp/respaldo-faults-results
reliability: setup
	rm -rf $(FAULTS_RESULTS)
	-RESPALDO_FAULTS_RESULTS=$(FAULTS_RESULTS) $(BIN)/pytest -m faults -n 2 tests/faults
	$(BIN)/python scripts/faults_table.py $(FAULTS_RESULTS) docs/reliability.md

unit: setup
	$(BIN)/pytest -m "unit or contract" -q

demo: setup
	$(BIN)/python scripts/demo.py

# Screenshots of the web page in Spanish and English (docs/screenshots), from make demo's service.
screenshots: setup
	$(BIN)/python scripts/screenshots.py --url http://127.0.0.1:8080 --password-file demo-data/admin.password --out docs/screenshots

# Stops what make demo left running: respaldo serve and the demo's PostgreSQL cluster.
demo-stop:
	$(BIN)/python scripts/demo.py --stop

# Large data on purpose (about 1 GB each); figures and how to read them: docs/benchmarks.md.
BENCH_DIR ?= /tmp/respaldo-bench
bench: setup
	$(BIN)/python -m bench.repository_bench --size-mb 1024 --workdir $(BENCH_DIR)/repository
	$(BIN)/python -m bench.logical_bench --scale 1.0 --workdir $(BENCH_DIR)/logical
	$(BIN)/python -m bench.physical_bench --scale 0.2 --workdir $(BENCH_DIR)/physical
	$(BIN)/python -m bench.offsite_bench --scale 0.2 --workdir $(BENCH_DIR)/offsite
	$(BIN)/python -m bench.offsite_bench --scale 0.2 --workdir $(BENCH_DIR)/offsite-locked \
		--object-lock 30 --json bench/results/offsite-object-lock.json
	$(BIN)/python -m bench.index_bench --chunks 1000000 4000000 --workdir $(BENCH_DIR)/index

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
