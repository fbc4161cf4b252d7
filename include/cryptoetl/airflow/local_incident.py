"""The incident this system replaces, replayed through the real Airflow scheduler: ``make incident``.

    python -m cryptoetl.airflow.local_incident [--days 10]

In a throwaway Airflow (``.incident/``: its own AIRFLOW_HOME, metadata database, warehouse, ports),
over two coins and ``--days`` days, against the offline sandbox (SYNTHETIC data):

1. CoinGecko serves no price point for five of the days (``SandboxServer.set_outages``) while the
   prices DAG is backfilled over all of them: those days' runs fail (red), the others succeed, and
   the indicators and features are built from the successful ones' asset events only.
2. One ``data_health`` run: it must report the hole, and it creates a backfill through Airflow's
   REST API (which fails again: the source is still down).
3. CoinGecko recovers. The next ``data_health`` run (after the backoff, 1 minute here) creates the
   backfill again, and the asset events rebuild the indicators and features.
4. The three tables must then be byte-identical to an uninterrupted load of the same days through
   the CLI, and a health scan must find no hole. Nothing is filled with placeholders on the way.

Prints what happened and writes ``.incident/result.json``; exit 0 only if every step held.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SYMBOLS = "BTC,ETH"


def main(argv: list[str] | None = None) -> int:
    """Set up the throwaway Airflow and run the scenario in it (a child process: its own settings)."""
    from cryptoetl.bench_pipeline import _metadata_url

    parser = argparse.ArgumentParser(prog="python -m cryptoetl.airflow.local_incident")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("CRYPTOETL_PORT_BASE", "8080")) + 40)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--home", default=str(ROOT / ".incident"))
    args = parser.parse_args(argv)
    base = Path(args.home)
    shutil.rmtree(base, ignore_errors=True)
    home = base / "airflow"
    home.mkdir(parents=True)
    metadata = _metadata_url(f"cryptoetl_incident_{hashlib.md5(str(base).encode()).hexdigest()[:8]}", home)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",  # pytest's conftest sets it; this is a real Airflow
        "CRYPTOETL_MODE": "local", "CRYPTOETL_WAREHOUSE_FILE": str(base / "warehouse.db"),
        "CRYPTOETL_START_DATE": f"{datetime.now(UTC).date() - timedelta(days=args.days)}",
        "CRYPTOETL_PORT_BASE": str(args.port_base), "CRYPTOETL_SYMBOLS": SYMBOLS,
        "CRYPTOETL_HEAL_BACKOFF_MINUTES": "1", "CRYPTOETL_RETRY_DELAY": env.get("CRYPTOETL_RETRY_DELAY", "15"),
        "COINGECKO_RATE_PER_MINUTE": "6000",
    })
    env.setdefault("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60")
    env.setdefault("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120")
    try:
        return subprocess.run([sys.executable, "-m", "cryptoetl.airflow.local_incident_run", "--days",
                               str(args.days), "--timeout", str(args.timeout), "--result", str(base / "result.json")],
                              env=env, check=False).returncode
    finally:
        _drop(metadata)


def _drop(metadata: str) -> None:
    """The throwaway metadata database goes with the run (its result is in result.json)."""
    from sqlalchemy import create_engine, make_url, text

    from cryptoetl.bench_pipeline import PG_ADMIN

    if not metadata.startswith("postgresql"):
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(metadata).database} WITH (FORCE)"))
    admin.dispose()


if __name__ == "__main__":
    sys.exit(main())

