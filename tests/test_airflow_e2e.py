"""Airflow itself drives the steps: dag.test() over two daily data intervals, end to end.

The task runs the real LocalStepOperator: it resolves the warehouse from the Airflow
connection, runs ``python -m cryptoetl run ...`` as a subprocess against the sandbox, and
attaches the interval to its asset event. The scheduler-driven cascade (backfill -> asset
events -> derived DAGs) is what ``make run`` exercises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import utc
from sqlalchemy import func, select

from cryptoetl.intervals import Interval, covering_hours
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import get_engine

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def airflow_db():
    """The session's metadata DB, with the pools imported from include/pools.json exactly as
    the set-up does: a task naming a missing pool would wait forever."""
    from airflow.utils.db import initdb
    from conftest import REPO

    initdb()
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "pools", "import",
                    str(REPO / "include" / "pools.json")], check=True, capture_output=True)


def _dag(name):
    import runpy

    from conftest import REPO

    dag = runpy.run_path(str(REPO / "dags" / f"{name}.py"))["dag"]
    for task in dag.tasks:  # a failure must fail the test now, not wait out a 2-minute retry delay
        task.retries = 0
    # dag.test() of Airflow 3.3.2 looks deadline alerts up by id, but holds their definitions there
    # ("'dict' object has no attribute 'hex'"); the scheduler stores ids first (make run covers it)
    dag.deadline = None
    return dag


def test_dag_test_over_two_intervals_loads_prices_and_emits_intervals(airflow_db, sandbox_clean, tmp_path,
                                                                     monkeypatch):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_CRYPTOETL_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
    monkeypatch.setenv("COINGECKO_BASE_URL", sandbox_clean.base_url)
    monkeypatch.setenv("COINGECKO_RATE_PER_MINUTE", "60000")
    monkeypatch.setenv("CRYPTOETL_SYMBOLS", "BTC,ETH")
    engine = get_engine(f"sqlite:///{warehouse}")
    schema.create_all(engine)

    prices = _dag("prices_coingecko")
    price_runs = [prices.test(logical_date=utc(2026, 3, day)) for day in (2, 3)]
    assert [run.state for run in price_runs] == [DagRunState.SUCCESS] * 2
    loaded = [Interval(run.data_interval_start, run.data_interval_end) for run in price_runs]
    assert loaded == [Interval(utc(2026, 3, 1), utc(2026, 3, 2)), Interval(utc(2026, 3, 2), utc(2026, 3, 3))]

    technical = _dag("technical_indicators")
    run = technical.test(logical_date=utc(2026, 3, 3))
    assert run.state == DagRunState.SUCCESS
    built = covering_hours(run.data_interval_start, run.data_interval_end)
    assert built.start >= loaded[0].start  # the run lies inside the loaded prices

    with engine.connect() as conn:
        per_symbol = dict(conn.execute(
            select(schema.price_data_real.c.symbol, func.count()).group_by(schema.price_data_real.c.symbol)).all())
        lo, hi, n = conn.execute(select(func.min(schema.technical_indicators.c.time),
                                        func.max(schema.technical_indicators.c.time), func.count())
                                 .where(schema.technical_indicators.c.symbol == "BTC")).one()
    assert per_symbol == {"BTC": 48, "ETH": 48}  # two daily intervals of hourly rows
    # technical rows: every loaded hour of the run's interval, nothing outside it
    last_price_hour = loaded[-1].end - timedelta(hours=1)
    expected_hi = min(built.end - timedelta(hours=1), last_price_hour)
    assert (lo, hi) == (built.start.replace(tzinfo=None), expected_hi.replace(tzinfo=None))
    assert n == (expected_hi - built.start) // timedelta(hours=1) + 1

    with create_session() as session:
        extras = [e.extra for e in session.scalars(select(AssetEvent).order_by(AssetEvent.id))]
    emitted = [extra["intervals"] for extra in extras]
    for interval in loaded:  # each price run tells downstream exactly what it wrote
        assert [str(interval)] in emitted
    assert [str(built)] in emitted


def test_failed_step_fails_the_task_and_writes_nothing(airflow_db, sandbox_clean, tmp_path, monkeypatch):
    from airflow.utils.state import DagRunState

    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", f"sqlite:///{warehouse}")
    monkeypatch.setenv("COINGECKO_BASE_URL", sandbox_clean.base_url)
    monkeypatch.setenv("CRYPTOETL_SYMBOLS", "BTC")
    engine = get_engine(f"sqlite:///{warehouse}")
    schema.create_all(engine)
    sandbox_clean.set_faults([{"kind": "malformed", "count": -1}])

    prices = _dag("prices_coingecko")
    for task in prices.tasks:
        task.retries = 0
    run = prices.test(logical_date=utc(2026, 3, 5))
    assert run.state == DagRunState.FAILED
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.price_data_real)).scalar_one() == 0


def test_setup_creates_a_sqlite_warehouse_connection_and_repairs_a_wrong_one(airflow_db, tmp_path):
    """The set-up's connection is what task processes resolve; a 'generic' one (what the CLI
    stores without the sqlite provider) is replaced, not trusted."""
    from cryptoetl.airflow.local import _airflow, ensure_warehouse_connection

    path = str(tmp_path / "wh.db")
    _airflow("connections", "add", "wh_setup_test", "--conn-type", "generic", "--conn-host", path)
    ensure_warehouse_connection("wh_setup_test", path)
    out = _airflow("connections", "get", "wh_setup_test", "-o", "json").stdout
    (conn,) = json.loads(out.splitlines()[-1])
    assert (conn["conn_type"], conn["host"]) == ("sqlite", path)
    ensure_warehouse_connection("wh_setup_test", path)  # idempotent: a correct one is kept
    out = _airflow("connections", "get", "wh_setup_test", "-o", "json").stdout
    assert json.loads(out.splitlines()[-1])[0]["id"] == conn["id"]
