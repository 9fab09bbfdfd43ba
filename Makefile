# The two commands a new machine needs (each installs what it lacks first):
#   make run    the whole pipeline on the embedded sample data
#   make test   the test suite
VENV ?= .venv
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install run test test-fast lint bench

install:
	DEEPSPARK_VENV=$(VENV) deploy/env/install.sh

run: install conf/local/secrets.yaml
	$(VENV)/bin/deepspark run

# A per-machine key for the PII keyed hash, made once, never committed (see .gitignore).
conf/local/secrets.yaml:
	umask 077 && $(VENV)/bin/python -c "import secrets; print('pii_hmac_key:', secrets.token_hex(32))" > $@

test: install
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check lib tests jobs bench
	$(VENV)/bin/ruff format --check lib tests jobs bench

bench: install
	$(VENV)/bin/python bench/tables_overhead.py
	$(VENV)/bin/python bench/clean_validate.py
	$(VENV)/bin/python bench/analytics.py
	$(VENV)/bin/python bench/learning.py
