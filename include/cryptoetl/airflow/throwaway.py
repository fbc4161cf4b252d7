"""A throwaway real Airflow for the pipeline bench and the incident replay: its own AIRFLOW_HOME,
metadata database, warehouse file and ports, with the settings ``make run`` exports (this repository's
DAGs and plugins, no examples, the LocalExecutor, timeouts that hold on a loaded 2-core machine), so
that ``python -m`` runs it the same as ``make`` does.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[3]
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
# The Makefile's values, kept where the caller's environment sets its own.
DEFAULTS = {
    "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60", "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
    "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300", "CRYPTOETL_RETRY_DELAY": "15",
    "COINGECKO_RATE_PER_MINUTE": "600",
}


def metadata_url(name: str, home: Path) -> str:
    """A fresh PostgreSQL database ``name`` for Airflow's metadata (SQLite in ``home`` if none answers)."""
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite works for one run
        return f"sqlite:///{home / 'airflow.db'}?timeout=60"


def drop_metadata(url: str) -> None:
    """Drop a PostgreSQL metadata database ``metadata_url`` created (a SQLite one goes with its home)."""
    if not url.startswith("postgresql"):
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)"))
    admin.dispose()


def airflow_env(base: dict[str, str], home: Path, metadata: str, warehouse: Path, port_base: int,
                **extra: str) -> dict[str, str]:
    """``base`` (the caller's environment) with the throwaway Airflow's settings and ``extra``; each of
    ``DEFAULTS`` stays the caller's if it set one."""
    env = dict(base)
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",  # pytest's conftest sets it; this is a real Airflow
        "CRYPTOETL_MODE": "local", "CRYPTOETL_WAREHOUSE_FILE": str(warehouse), "CRYPTOETL_PORT_BASE": str(port_base),
        **extra,
    })
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    return env
