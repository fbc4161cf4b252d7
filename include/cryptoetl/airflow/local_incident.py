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
    from cryptoetl.airflow import throwaway

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
    metadata = throwaway.metadata_url(f"cryptoetl_incident_{hashlib.md5(str(base).encode()).hexdigest()[:8]}", home)
    env = throwaway.airflow_env(
        dict(os.environ), home, metadata, base / "warehouse.db", args.port_base,
        CRYPTOETL_START_DATE=f"{datetime.now(UTC).date() - timedelta(days=args.days)}", CRYPTOETL_SYMBOLS=SYMBOLS,
        CRYPTOETL_HEAL_BACKOFF_MINUTES="1", COINGECKO_RATE_PER_MINUTE="6000")
    try:
        return subprocess.run([sys.executable, "-m", "cryptoetl.airflow.local_incident_run", "--days",
                               str(args.days), "--timeout", str(args.timeout), "--result", str(base / "result.json")],
                              env=env, check=False).returncode
    finally:
        throwaway.drop_metadata(metadata)


if __name__ == "__main__":
    sys.exit(main())

