# cryptoetl: the two commands are `make run` (set up + run the pipeline locally) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_DAYS ?= 14
# DEMO_SYMBOLS=320 make run: the same pipeline over the top 320 coins of the sandbox (CRYPTOETL_UNIVERSE=top:320)
DEMO_SYMBOLS ?=

# Local Airflow: everything under .airflow/, the warehouse in data/warehouse.db (SQLite).
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL := 10
# Timeouts that hold on a loaded 2-core machine (Airflow's defaults assume an idle one: a task's
# call to the execution API gave up after 5 s at load 15-20, and the try went up_for_retry).
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT := 60
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT := 300
# Every local port comes from this one setting (the UI/API on it, the sandbox, log servers and the
# scheduler's health check on the next four): CRYPTOETL_PORT_BASE=9080 make run beside another checkout.
export CRYPTOETL_PORT_BASE ?= 8080
# Local demo: retry a failed try after 15 s, not production's 2 min (the demo waits for retries).
export CRYPTOETL_RETRY_DELAY ?= 15
export CRYPTOETL_MODE ?= local
export CRYPTOETL_WAREHOUSE_FILE := $(CURDIR)/data/warehouse.db
# The sandbox answers fast; the real public API allows 5 calls/min.
export COINGECKO_RATE_PER_MINUTE ?= 600
export DEMO_DAYS DEMO_SYMBOLS

# The DAGs' start date is fixed at first set-up (not "today" on every parse), so that a
# DAG unpaused in the UI catches up only the demo window.
LOCAL_ENV := .airflow/local.env
# Airflow's own metadata DB, chosen once at first set-up: $AIRFLOW_METADATA_URL if given, else a
# local PostgreSQL if one answers (database cryptoetl_airflow_<hash of this checkout>), else SQLite.
# Airflow needs PostgreSQL/MySQL for concurrent access: on SQLite, `airflow backfill create
# --reprocess-behavior completed` can fail with "database is locked" while the scheduler runs.
METADATA_ENV := .airflow/metadata.env
PG := psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA
PG_DB := cryptoetl_airflow_$(shell echo $(CURDIR) | md5sum | cut -c1-8)
SOURCE_ENV := set -a; . $(LOCAL_ENV); . $(METADATA_ENV); set +a

.PHONY: run ui env test test-scheduler lint bench bench-small bench-pipeline incident system-deps venv clean help

help:
	@echo "make run    set up everything, backfill $(DEMO_DAYS) days through Airflow, print a summary"
	@echo "make test   run the test suite"
	@echo "make ui     start Airflow + the sandbox and open the web UI on :$(CRYPTOETL_PORT_BASE)"
	@echo "make lint   ruff"
	@echo "make incident  replay the 5-day price outage through the real scheduler: found, refilled, identical"
	@echo "make test-scheduler  the same, as a test (~10 min; CI runs it after make test)"
	@echo "make bench  timings at production scale on MariaDB (make bench-small: a few minutes)"
	@echo "make clean  remove the local Airflow state and warehouse (and its PostgreSQL metadata DB)"
	@echo 'eval "$$(make -s env)"   this shell gets the same Airflow/cryptoetl settings (for airflow CLI calls)'

run: venv $(LOCAL_ENV) $(METADATA_ENV)
	@$(SOURCE_ENV); $(BIN)/python -m cryptoetl.airflow.local demo

ui: venv $(LOCAL_ENV) $(METADATA_ENV)
	@$(SOURCE_ENV); $(BIN)/python -m cryptoetl.airflow.local ui

# The same settings in a shell: eval "$(make -s env)". Clients then reach the offline sandbox
# (while make ui runs); REAL_APIS=1 make -s env leaves the real APIs (and your own keys) in place.
env: venv $(LOCAL_ENV) $(METADATA_ENV)
	@echo "export PATH=$(CURDIR)/$(BIN):\$$PATH"
	@env | grep -E '^(AIRFLOW_HOME|AIRFLOW__|CRYPTOETL_)' | sed 's/^/export /'
	@sed 's/^/export /' $(LOCAL_ENV) $(METADATA_ENV)
	@$(SOURCE_ENV); $(BIN)/python -m cryptoetl.airflow.local env

test: venv
	$(BIN)/python -m pytest -q -n 2

# The incident through the real scheduler (tests/test_incident_scheduler.py, ~10 min): CI runs it after make test.
test-scheduler: venv
	$(BIN)/python -m pytest -q -m scheduler

lint: venv
	$(BIN)/ruff check .

# Timings live here, never in pytest. Needs a MySQL/MariaDB server (BENCH_URL).
BENCH_URL ?= mysql+mysqldb://root@127.0.0.1:3306/test
# BENCH_PIPELINE=0 make bench: without the pipeline section (the demo through the scheduler, ~30+ min).
BENCH_PIPELINE ?= 1
BENCH_SYMBOLS ?= 320
BENCH_DAYS ?= 30
bench: venv
	$(BIN)/python -m cryptoetl.bench --url $(BENCH_URL) $(BENCH_ARGS)
	@if [ "$(BENCH_PIPELINE)" != 0 ]; then $(MAKE) --no-print-directory bench-pipeline; fi

# The pipeline section alone: BENCH_SYMBOLS coins x BENCH_DAYS days through the real scheduler, in a
# throwaway Airflow under .bench/ (its own metadata database, warehouse and ports).
bench-pipeline: venv
	$(BIN)/python -m cryptoetl.bench_pipeline --symbols $(BENCH_SYMBOLS) --days $(BENCH_DAYS)

# The incident this system replaces (5 days of prices lost) replayed through the real scheduler, in a
# throwaway Airflow under .incident/: the health check must find the hole and refill it by itself.
incident: venv
	$(BIN)/python -m cryptoetl.airflow.local_incident

bench-small: venv
	$(BIN)/python -m cryptoetl.bench --url $(BENCH_URL) --small

$(LOCAL_ENV):
	@mkdir -p .airflow
	@echo "CRYPTOETL_START_DATE=$$(date -u -d '-$(DEMO_DAYS) days' +%F)" > $@

$(METADATA_ENV):
	@mkdir -p .airflow
	@if [ -n "$$AIRFLOW_METADATA_URL" ]; then \
	  echo "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=$$AIRFLOW_METADATA_URL" > $@; \
	elif command -v psql >/dev/null 2>&1 && $(PG) -c 'select 1' >/dev/null 2>&1; then \
	  $(PG) -c "select 1 from pg_database where datname = '$(PG_DB)'" | grep -q 1 \
	    || $(PG) -c 'CREATE DATABASE $(PG_DB)'; \
	  echo "· Airflow metadata DB: local PostgreSQL, database $(PG_DB)"; \
	  echo "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://postgres@127.0.0.1:5432/$(PG_DB)" > $@; \
	else \
	  echo "· Airflow metadata DB: SQLite (no PostgreSQL answered; set AIRFLOW_METADATA_URL to use one)"; \
	  echo "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(CURDIR)/.airflow/airflow.db?timeout=60" > $@; \
	fi

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

$(VENV)/.installed: requirements.txt requirements-sentiment.txt requirements-dev.txt pyproject.toml | system-deps
	@echo "· creating $(VENV) and installing pinned requirements (first time: a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements-dev.txt
	@$(BIN)/pip install -q --no-deps -e .
	@touch $@

clean:
	@if grep -qs "127.0.0.1:5432/$(PG_DB)" $(METADATA_ENV); then $(PG) -c 'DROP DATABASE IF EXISTS $(PG_DB)'; fi
	rm -rf .airflow .bench .incident data .pytest_cache
