# The two commands a new machine needs (each installs what it lacks first):
#   make run    the whole pipeline on the embedded sample data
#   make test   the test suite
VENV ?= .venv
AIRFLOW_VENV ?= .airflow-venv
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install install-test run test test-fast lint audit bench package

install:
	DEEPSPARK_VENV=$(VENV) deploy/env/install.sh

# What only the tests need: Airflow in its own environment, and Chromium for the report.
install-test: install
	AIRFLOW_VENV=$(AIRFLOW_VENV) deploy/airflow/install.sh
	deploy/env/install_browser.sh

run: install conf/local/secrets.yaml
	$(VENV)/bin/deepspark run

# A per-machine key for the PII keyed hash, made once, never committed (see .gitignore).
conf/local/secrets.yaml:
	umask 077 && $(VENV)/bin/python -c "import secrets; print('pii_hmac_key:', secrets.token_hex(32))" > $@

# Two suites at once (tests/run.sh): the package's on two workers, the Airflow DAG's in Airflow's
# environment. test-fast leaves out the end-to-end runs, the cluster, Horovod and the faults,
# and the JVMs' shared class archive, which pays for itself only over the whole suite.
test: install-test
	VENV=$(VENV) AIRFLOW_VENV=$(AIRFLOW_VENV) tests/run.sh

test-fast: install-test
	VENV=$(VENV) AIRFLOW_VENV=$(AIRFLOW_VENV) JVM_ARCHIVE=no tests/run.sh -m "not slow"

# The wheel and conf archive for clusters; `deploy/package.sh --env` also packs the environment.
package: install
	deploy/package.sh

# Style, then the import layers (pyproject.toml [tool.importlinter]: one direction only).
lint: install
	$(VENV)/bin/ruff check lib tests jobs bench deploy examples
	$(VENV)/bin/ruff format --check lib tests jobs bench deploy examples
	$(VENV)/bin/lint-imports

# Pinned packages against known advisories (offline; deploy/env/advisories.toml says why).
audit: install
	$(VENV)/bin/python deploy/env/audit.py

# Every benchmark, one JSON + Markdown table in bench/results/ (about 70 min on 2 cores);
# e.g. BENCH_ARGS="--rows 100000 1000000 --runs 3" for a shorter run.
bench: install
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
