"""The incident scenario inside its throwaway Airflow (``local_incident.py`` sets it up and runs this)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptoetl.airflow import local, local_health, local_watch
from cryptoetl.steps import get_step

OUTAGE_FIRST, OUTAGE_DAYS = 3, 5
STEPS = ("prices", "technical", "features")


def _settle(home: Path, dags: tuple[str, ...], since: datetime, timeout: float) -> None:
    local_watch.watch(lambda: local_watch.snapshot(dags, dags, since), timeout=timeout, fatal=False,
                      explain=lambda task_try: local_watch.explain(task_try, home))


def _warehouse():
    from cryptoetl.warehouse.engine import get_engine

    return get_engine(f"sqlite:///{local.warehouse_file()}")


def _dumps(engine) -> dict[str, list[tuple]]:
    from sqlalchemy import select

    from cryptoetl.warehouse import schema

    out = {}
    with engine.connect() as conn:
        for table in (schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized):
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
    return out


def _reference(sandbox_env: dict[str, str], start: datetime, end: datetime, path: Path) -> dict:
    """The same days loaded without an outage, through the CLI: the scheduled runs' commands."""
    env = {**os.environ, **sandbox_env, "CRYPTOETL_WAREHOUSE_URL": f"sqlite:///{path}"}

    def cli(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "cryptoetl", *args], env=env, check=True, capture_output=True)

    cli("migrate")
    day = start
    while day < end:
        cli("run", "prices", "--start", day.isoformat(), "--end", (day + timedelta(days=1)).isoformat())
        day += timedelta(days=1)
    for step in ("technical", "features"):
        cli("run", step, "--start", start.isoformat(), "--end", end.isoformat())
    from cryptoetl.warehouse.engine import get_engine

    return _dumps(get_engine(f"sqlite:///{path}"))


def _health_run(home: Path, dags: tuple[str, ...], timeout: float) -> list[dict]:
    """Trigger data_health once, wait for it and what it started; the actions recorded so far."""
    from cryptoetl.warehouse import quality

    since = datetime.now(UTC)
    local._airflow("dags", "trigger", local_health.health_dag_id(), "--logical-date", since.isoformat())
    time.sleep(20)  # the backfill it creates must be seen by the watch
    _settle(home, dags, since, timeout)
    return quality.actions(_warehouse())


def scenario(days: int, timeout: float, result_path: Path) -> int:
    home = Path(os.environ["AIRFLOW_HOME"])
    port = local.ports()
    os.environ.update(local.airflow_port_env(port))
    local.setup()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days), today
    lost = (start + timedelta(days=OUTAGE_FIRST), start + timedelta(days=OUTAGE_FIRST + OUTAGE_DAYS))
    prices = get_step("prices").dag_id
    dags = (*(get_step(s).dag_id for s in STEPS), local_health.health_dag_id())
    result: dict = {"days": [f"{start:%Y-%m-%d}", f"{end - timedelta(days=1):%Y-%m-%d}"],
                    "lost": [f"{lost[0]:%Y-%m-%d}", f"{lost[1] - timedelta(days=1):%Y-%m-%d}"]}
    with local._stack(port) as stack:
        stack.sandbox.set_outages([(lost[0].timestamp(), lost[1].timestamp())])
        print(f"· CoinGecko (sandbox) serves nothing for {lost[0]:%Y-%m-%d} to {lost[1] - timedelta(days=1):%Y-%m-%d}")
        local_watch.wait_for_dags(dags)
        since = datetime.now(UTC)
        local._airflow("backfill", "create", "--dag-id", prices, "--from-date", f"{start:%Y-%m-%d}",
                       "--to-date", f"{end - timedelta(days=1):%Y-%m-%d}", "--max-active-runs", "4")
        local._airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", "^(" + "|".join(dags[:3]) + ")$")
        _settle(home, dags, since, timeout)
        result["failed_runs"] = _failed_days(prices)
        print(f"· prices runs that failed: {result['failed_runs']}")
        local._airflow("dags", "unpause", local_health.health_dag_id())
        first = _health_run(home, dags, timeout)
        result["first_health_run"] = [_action(a) for a in first]
        stack.sandbox.set_outages([])
        print("· CoinGecko is back; waiting out the health check's backoff (1 minute here)")
        time.sleep(70)
        second = _health_run(home, dags, timeout)
        result["second_health_run"] = [_action(a) for a in second if a["id"] not in {b["id"] for b in first}]
        got = _dumps(_warehouse())
        want = _reference(local.sandbox_client_env(stack.sandbox.urls()), start, end,
                          result_path.with_name("reference.db"))
    result["identical"] = {name: got[name] == want[name] for name in want}
    result["rows"] = {name: len(rows) for name, rows in got.items()}
    return _verdict(result, result_path, lost)


def _failed_days(dag_id: str) -> list[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return sorted(f"{d:%Y-%m-%d}" for d in session.scalars(select(DagRun.data_interval_start).where(
            DagRun.dag_id == dag_id, DagRun.state == "failed")))


def _action(a: dict) -> dict:
    return {"dag_id": a["dag_id"], "table": a["table_name"], "from": f"{a['interval_start']:%Y-%m-%d}",
            "to": f"{a['interval_end'] - timedelta(days=1):%Y-%m-%d}", "action": a["action"],
            "backfill_id": a["backfill_id"]}


def _verdict(result: dict, path: Path, lost: tuple[datetime, datetime]) -> int:
    lost_days = {f"{lost[0] + timedelta(days=i):%Y-%m-%d}" for i in range((lost[1] - lost[0]).days)}
    backfills = lambda actions: [a for a in actions if a["action"] == "backfill" and a["table"] == "price_data_real"]  # noqa: E731
    checks = {
        "every lost day's run failed, no other": set(result["failed_runs"]) == lost_days,
        "the first health run reported the hole and backfilled it": bool(backfills(result["first_health_run"]))
        and backfills(result["first_health_run"])[0]["from"] == min(lost_days),
        "after recovery the next health run backfilled it again": bool(backfills(result["second_health_run"])),
        "the tables are byte-identical to an uninterrupted load": all(result["identical"].values()),
    }
    result["checks"] = checks
    path.write_text(json.dumps(result, indent=1, default=str))
    print("\nIncident scenario (real scheduler, SYNTHETIC sandbox):")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"  rows: {result['rows']}; details in {path}")
    return 0 if all(checks.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.airflow.local_incident_run")
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    return scenario(args.days, args.timeout, Path(args.result))


if __name__ == "__main__":
    sys.exit(main())
