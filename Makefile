# cryptoetl: the two commands are `make run` (set up + run the pipeline locally) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DAYS ?= 14

# Local Airflow: everything under .airflow/, the warehouse in data/warehouse.db (SQLite).
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__CORE__PARALLELISM := 4
# timeout: SQLite allows one writer; wait for the lock (default 5 s) instead of failing a task.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/.airflow/airflow.db?timeout=60
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL := 10
export CRYPTOETL_MODE ?= local
export CRYPTOETL_WAREHOUSE_FILE := $(CURDIR)/data/warehouse.db
# The sandbox answers fast; the real public API allows 5 calls/min.
export COINGECKO_RATE_PER_MINUTE ?= 600
export DEMO_DAYS

# The DAGs' start date is fixed at first set-up (not "today" on every parse), so that a
# DAG unpaused in the UI catches up only the demo window.
LOCAL_ENV := .airflow/local.env

.PHONY: run ui env test lint bench system-deps venv clean help

help:
	@echo "make run    set up everything, backfill $(DEMO_DAYS) days through Airflow, print a summary"
	@echo "make test   run the test suite"
	@echo "make ui     start Airflow + the sandbox and open the web UI on :8080"
	@echo "make lint   ruff"
	@echo 'eval "$$(make -s env)"   this shell gets the same Airflow/cryptoetl settings (for airflow CLI calls)'

run: venv $(LOCAL_ENV)
	@set -a; . $(LOCAL_ENV); set +a; $(BIN)/python -m cryptoetl.airflow.local demo

ui: venv $(LOCAL_ENV)
	@set -a; . $(LOCAL_ENV); set +a; $(BIN)/python -m cryptoetl.airflow.local ui

env: $(LOCAL_ENV)
	@echo "export PATH=$(CURDIR)/$(BIN):\$$PATH"
	@env | grep -E '^(AIRFLOW_HOME|AIRFLOW__|CRYPTOETL_|COINGECKO_)' | sed 's/^/export /'
	@sed 's/^/export /' $(LOCAL_ENV)
	@echo "# for python -m cryptoetl in this shell (tasks resolve the Airflow connection instead)"
	@echo "export CRYPTOETL_WAREHOUSE_URL=sqlite:///$$CRYPTOETL_WAREHOUSE_FILE"

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

$(LOCAL_ENV):
	@mkdir -p .airflow
	@echo "CRYPTOETL_START_DATE=$$(date -u -d '-$(DEMO_DAYS) days' +%F)" > $@

# mysqlclient builds from source: it needs the MySQL client headers and pkg-config.
system-deps:
	@if ! pkg-config --exists mysqlclient 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "· installing default-libmysqlclient-dev pkg-config build-essential (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      default-libmysqlclient-dev pkg-config build-essential >/dev/null; \
	  else \
	    echo "mysqlclient needs: sudo apt-get install default-libmysqlclient-dev pkg-config build-essential"; \
	    exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | system-deps
	@echo "· creating $(VENV) and installing pinned requirements (first time: a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements-dev.txt
	@$(BIN)/pip install -q --no-deps -e .
	@touch $@

clean:
	rm -rf .airflow data .pytest_cache
