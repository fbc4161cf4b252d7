"""The pipeline bench's arithmetic (its times are measured by `make bench-pipeline`, never here)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from cryptoetl import bench_pipeline
from cryptoetl.airflow import throwaway
from cryptoetl.cli import main


def test_a_step_logs_the_line_the_bench_reads(sqlite_engine, monkeypatch, caplog):
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    from cryptoetl.warehouse.schema import create_all

    create_all(sqlite_engine)
    with caplog.at_level(logging.INFO):
        assert main(["run", "technical", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z"]) == 0
    (found,) = bench_pipeline.WORK_LINE.findall(caplog.text)
    assert found[0] == "technical" and found[1] == "0" and int(found[3]) > 0


def test_task_times_and_the_report_from_the_metadata_and_the_logs(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'meta.db'}")
    t0 = datetime(2026, 1, 1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE task_instance (dag_id TEXT, task_id TEXT, run_id TEXT, try_number INT, "
                          "start_date TIMESTAMP, end_date TIMESTAMP)"))
        for i, (dag, seconds, work, rss) in enumerate([("prices_coingecko", 10, 4.0, 150),
                                                        ("prices_coingecko", 12, 6.0, 170),
                                                        ("ml_features", 8, 2.0, 120)]):
            conn.execute(text("INSERT INTO task_instance VALUES (:d, 't', :r, 1, :s, :e)"),
                         {"d": dag, "r": f"run{i}", "s": t0, "e": t0 + timedelta(seconds=seconds)})
            log = tmp_path / "logs" / f"dag_id={dag}" / f"run_id=run{i}" / "task_id=t" / "attempt=1.log"
            log.parent.mkdir(parents=True)
            history = ' (of a history load: 2026-01-01/2026-01-02)' if i == 2 else ''
            log.write_text(f'{{"event": "run step over 2026-01-01/2026-01-02{history}"}}\n'
                           f'{{"event": "INFO cryptoetl: step 2026-01-01/2026-01-02: 5 rows written in {work}s; '
                           f'peak RSS {rss} MiB"}}\n')
    tries = bench_pipeline.task_times(tmp_path, str(engine.url))
    assert sorted((t["dag"], t["duration"], t["work"], t["rss"], t["history"]) for t in tries) == [
        ("ml_features", 8.0, 2.0, 120, True), ("prices_coingecko", 10.0, 4.0, 150, False),
        ("prices_coingecko", 12.0, 6.0, 170, False)]
    assert {t["start"] for t in tries} == {t0.replace(tzinfo=UTC)}
    rows = dict(bench_pipeline.report(10, 2, 600.0, tries, {"coingecko": {"/coins/markets": 2, "/x": 38}}))
    assert rows["time starting tasks, not working"].startswith("60% of task time")  # (6 + 6 + 6) / 30
    assert rows["CoinGecko calls per coin"].startswith("4.0 (40 calls; 2.00 per coin-day)")
    assert rows["peak RSS, prices_coingecko"] == "170 MiB (median 160)"
    fresh = {"hour": "2026-01-03T13:00:00+00:00", "rows": 10, "lag_s": 41.6}
    rows = dict(bench_pipeline.report(10, 2, 600.0, tries, {}, fresh))
    assert rows["freshness: hour end -> its feature rows"].startswith("42 s + the scheduler's start delay (10 rows "
                                                                      "of 13:00 UTC")


def test_the_freshness_lag_is_timed_from_the_trigger_to_the_settled_feature_rows(sqlite_engine, tmp_path):
    import json

    import pandas as pd

    from cryptoetl.airflow import local_watch
    from cryptoetl.warehouse import schema

    H = timedelta(hours=1)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None) - H
    triggered = []

    def feature_rows(*symbols: str) -> None:
        table = schema.ml_features_materialized
        required = {c.name: 0 for c in table.columns if not c.nullable}  # counts are 0, never NULL
        pd.DataFrame([{**required, "symbol": symbol, "time": hour, "price": 1.0, "is_synthetic": True}
                      for symbol in symbols]).to_sql(table.name, sqlite_engine, if_exists="append", index=False)

    def settle():  # what the scheduler does meanwhile: the hour's feature rows arrive
        assert triggered == ["prices_coingecko_hourly"]
        feature_rows("BTC", "ETH")

    feature_rows("OLD")  # written by the hourly run at unpause
    blocks = schema.coingecko_chart_blocks
    with sqlite_engine.begin() as conn:  # landed by the hourly run at unpause, past the hour's end
        conn.execute(blocks.insert().values(coingecko_id="bitcoin", block_start=hour - timedelta(days=10),
                                            fetched_from=hour - timedelta(days=10), fetched_to=hour + 2 * H))
    warehouse = sqlite_engine.url.database
    lag = local_watch.measure_freshness(dag_id="prices_coingecko_hourly", trigger=triggered.append, settle=settle,
                                        warehouse=warehouse, home=tmp_path, sleep=lambda s: None)
    with sqlite_engine.connect() as conn:  # wound back: the run pays its calls as at the hour's end
        assert conn.execute(blocks.select()).one().fetched_to == hour
    saved = json.loads((tmp_path / "freshness.json").read_text())
    # the run's own rows: the earlier one was removed
    assert saved["rows"] == 2 and saved["lag_s"] == lag >= 0 and saved["hour"].startswith(f"{hour:%Y-%m-%dT%H}")


def test_the_amplification_row_compares_the_derived_runs_with_one_run_over_the_range():
    tries = [{"dag": "technical_indicators", "work": 3.0}, {"dag": "technical_indicators", "work": None},
             {"dag": "ml_features", "work": 2.0}, {"dag": "ml_features", "work": 1.0},
             {"dag": "prices_coingecko", "work": 50.0}]  # a source's work is not derived work
    tries = [{**t, "history": True} for t in tries]
    name, value = bench_pipeline.amplification_row(tries, {"technical": 2.5, "features": 2.5})
    assert value.startswith("1.20x one run over the range") and "technical 1 runs 3.0 s" in value
    assert "features 2 runs 3.0 s" in value and "<= 1.2x: met;" in value
    assert "<= 1.2x: MISSED;" in bench_pipeline.amplification_row(tries, {"technical": 1.0, "features": 1.0})[1]


def test_the_amplification_counts_only_the_runs_of_the_history_load():
    """Runs that start after the backlog settled (the freshness run, the health check) are not the load."""
    settled = datetime(2026, 12, 4, 8, 31, tzinfo=UTC)
    before, after = settled - timedelta(minutes=2), settled + timedelta(minutes=1)
    tries = [{"dag": "technical_indicators", "work": 3.0, "start": before, "history": True},
             {"dag": "ml_features", "work": 2.0, "start": before, "history": True},
             {"dag": "technical_indicators", "work": 9.0, "start": after, "history": True},
             {"dag": "ml_features", "work": 9.0, "start": after, "history": True},
             # an hourly increment during the load: it runs whether or not a load goes on
             {"dag": "ml_features", "work": 0.5, "start": before, "history": False}]
    _, value = bench_pipeline.amplification_row(tries, {"technical": 2.5, "features": 2.5}, settled)
    assert value.startswith("1.00x one run over the range") and "technical 1 runs 3.0 s" in value
    assert "features 1 runs 2.0 s" in value and "<= 1.2x: met" in value
    assert value.endswith("besides, 1 regular runs meanwhile 0.5 s")
    assert bench_pipeline.amplification_row(tries, {"technical": 2.5, "features": 2.5})[1].startswith("4.60x")


def test_throwaway_airflow_gets_the_settings_make_exports(tmp_path):
    """Run with ``python -m`` (no Makefile exports), the throwaway Airflow still parses this repository's
    DAGs and no examples (without them its dag-processor found 0 files and the bench timed out);
    a setting the caller gave is kept, the extras win."""
    env = throwaway.airflow_env({"PATH": "/bin", "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "999"}, tmp_path / "home",
                                "sqlite:///x.db", tmp_path / "w.db", 9100, DEMO_DAYS="3")
    assert Path(env["AIRFLOW__CORE__DAGS_FOLDER"]) == throwaway.ROOT / "dags"
    assert (throwaway.ROOT / "dags").is_dir()
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home") and env["CRYPTOETL_PORT_BASE"] == "9100"
    assert env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] == "999"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["DEMO_DAYS"] == "3" and env["PATH"] == "/bin"
