"""The local runner behind `make run`: retries are tolerated, failures explained, interrupts clean.

The watcher is driven with fake snapshots of the metadata DB; the process handling with a stand-in
for `airflow standalone` (a shell that never becomes healthy and ignores SIGINT in a child).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cryptoetl.airflow import local, local_watch
from cryptoetl.airflow.local_watch import Snapshot, TaskTry

RUN = "backfill__2026-11-20T00:00:00+00:00"
RETRY = TaskTry("prices_coingecko", RUN, "load_prices", 1, "up_for_retry")
FAILED = TaskTry("prices_coingecko", RUN, "load_prices", 4, "failed")


def _poller(*snapshots: Snapshot):
    """Each poll returns the next snapshot; the last one repeats."""
    queue = list(snapshots)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def _watch(poll, **kwargs):
    printed = []
    states = local_watch.watch(poll, timeout=kwargs.pop("timeout", 600), explain=lambda t: f"    cause of {t.task_id}",
                               report=printed.append, sleep=lambda s: None, **kwargs)
    return states, printed


def test_a_retried_task_is_reported_once_and_the_run_goes_on():
    running = Snapshot(backfill_open=1, states={"prices_coingecko": {"running": 1}}, tries=[RETRY])
    done = Snapshot(states={"prices_coingecko": {"success": 14}})
    states, printed = _watch(_poller(running, running, running, done))
    assert states == {"prices_coingecko": {"success": 14}}
    retries = [line for line in printed if line.startswith("· retrying")]
    assert len(retries) == 1 and "load_prices (try 1)" in retries[0] and "cause of load_prices" in retries[0]


def test_a_failed_task_stops_the_run_with_its_cause():
    failing = Snapshot(backfill_open=1, states={"prices_coingecko": {"running": 1}}, tries=[FAILED])
    expected = r"(?s)used up its retries.*load_prices \(try 4\): failed.*cause of load_prices"
    with pytest.raises(SystemExit, match=expected):
        _watch(_poller(failing))


def test_a_failed_run_stops_the_run_and_a_stuck_one_times_out():
    with pytest.raises(SystemExit, match="the pipeline failed: {'ml_features': 1}"):
        _watch(_poller(Snapshot(states={"ml_features": {"failed": 1, "success": 3}})))
    ticks = iter(range(0, 10_000, 100))
    with pytest.raises(SystemExit, match="did not settle within 600s"):
        _watch(_poller(Snapshot(backfill_open=1)), clock=lambda: next(ticks))


def test_settling_needs_several_quiet_polls_in_a_row():
    quiet, busy = Snapshot(states={"d": {"success": 1}}), Snapshot(queued_triggers=1, states={"d": {"success": 1}})
    calls = []
    seq = [quiet, quiet, busy, quiet, quiet, quiet]

    def poll():
        calls.append(1)
        return seq[len(calls) - 1]

    _watch(poll)
    assert len(calls) == 6  # the asset trigger between quiet polls restarted the count


def test_the_cause_comes_from_the_try_log_else_from_standalone_log(tmp_path):
    log = (tmp_path / "logs" / "dag_id=prices_coingecko" / f"run_id={RUN}" / "task_id=load_prices" / "attempt=1.log")
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"event": "Pre Execute", "level": "info"}) + "\n")
    (tmp_path / "standalone.log").write_text(
        "scheduler | all good\n"
        f"worker | task {RUN} load_prices: httpx.ReadTimeout: timed out calling the execution API\n")
    cause = local_watch.explain(RETRY, tmp_path)
    assert "httpx.ReadTimeout" in cause and "standalone.log" in cause
    log.write_text("\n".join(json.dumps(r) for r in (
        {"event": "Pre Execute", "level": "info"},
        {"event": "Task failed with exception", "level": "error",
         "error_detail": [{"exc_type": "SourceError", "exc_value": "coingecko GET /coins: HTTP 500"}]})) + "\n")
    cause = local_watch.explain(RETRY, tmp_path)
    assert "SourceError: coingecko GET /coins: HTTP 500" in cause and str(log) in cause


def test_ports_come_from_one_setting(monkeypatch):
    monkeypatch.setenv("CRYPTOETL_PORT_BASE", "9080")
    port = local.ports()
    env = local.airflow_port_env(port)
    assert port["sandbox"] == 9081 and env["AIRFLOW__API__PORT"] == "9080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:9080/execution/"
    assert {env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"], env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"],
            env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"]} == {"9082", "9083", "9084"}
    monkeypatch.setenv("CRYPTOETL_PORT_BASE", "80")
    with pytest.raises(SystemExit, match="CRYPTOETL_PORT_BASE='80'"):
        local.ports()


def test_env_points_clients_at_the_sandbox_unless_real_apis_are_asked_for(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / ".airflow"))
    local.print_env(local.ports(7080), real_apis=False)
    out = capsys.readouterr().out
    assert "export COINGECKO_BASE_URL=http://127.0.0.1:7081/api/v3" in out
    assert "export FRED_API_KEY=" in out and "export AIRFLOW__API__PORT=7080" in out
    local.print_env(local.ports(7080), real_apis=True)
    out = capsys.readouterr().out
    assert "COINGECKO_BASE_URL" not in out and "_API_KEY" not in out and "export AIRFLOW__API__PORT=7080" in out


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("reader_gone", [False, True])
def test_an_interrupt_while_airflow_starts_stops_everything_it_started(tmp_path, reader_gone):
    """Ctrl-C during the health wait: the stand-in's whole process group is gone afterwards, even
    its child that ignores SIGINT (the stop escalates to SIGTERM), and even when Ctrl-C also killed
    the reader of our output (`make ui | tee`), so that printing while stopping fails."""
    pidfile = tmp_path / "leader.pid"
    fake = ["sh", "-c", f"echo $$ > {pidfile}; trap '' INT; sleep 300 & sleep 300"]
    driver = textwrap.dedent(f"""
        from pathlib import Path
        from cryptoetl.airflow.local_stack import Stack
        stack = Stack(1, 0, child_env=lambda sandbox: {{}}, log_path=Path({str(tmp_path / 'standalone.log')!r}),
                      command={fake!r}, health_timeout=600, stop_grace=(2, 5, 5))
        with stack:
            pass
    """)
    # Ctrl-C as a terminal delivers it: to a process whose SIGINT is at its default. A child inherits
    # an ignored SIGINT from its parent (a test worker may run with one), and Python then never raises
    # KeyboardInterrupt: seen as a 120 s timeout in CI only.
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    pgid = int(pidfile.read_text())
    assert _group_exists(pgid)
    if reader_gone:
        proc.stdout.close()
    proc.send_signal(signal.SIGINT)
    if reader_gone:
        proc.wait(timeout=120)
        out = ""
    else:
        out, err = proc.communicate(timeout=120)
        assert "KeyboardInterrupt" in err and "stopping Airflow" in out
    assert proc.returncode != 0
    deadline = time.monotonic() + 60
    while _group_exists(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group_exists(pgid), "the stand-in's process group outlived the interrupt"


def test_demo_symbols_choose_the_top_n_of_the_sandbox_market():
    from cryptoetl.airflow.local import demo_universe

    env = {"DEMO_SYMBOLS": "320"}
    assert demo_universe(env) == "top:320" and env["CRYPTOETL_UNIVERSE"] == "top:320"
    assert demo_universe({}) is None  # the default demo keeps the packaged 10-coin file
    for bad in ("0", "lots", "-5"):
        with pytest.raises(SystemExit, match="DEMO_SYMBOLS"):
            demo_universe({"DEMO_SYMBOLS": bad})


def test_the_local_airflow_keeps_one_demo_universe(tmp_path):
    from cryptoetl.airflow.local import pin_universe

    pin_universe(tmp_path, "the packaged file")
    pin_universe(tmp_path, "the packaged file")  # the same again: fine
    with pytest.raises(SystemExit, match="make clean"):
        pin_universe(tmp_path, "top:320")
    assert (tmp_path / "demo-universe").read_text() == "the packaged file"


def test_the_demo_finds_the_news_left_unscored(sqlite_engine):
    """What the demo backfills news_sentiment for at its end (apache/airflow#56050)."""
    from datetime import UTC, date, datetime

    from cryptoetl.report import unscored_days
    from cryptoetl.warehouse import schema
    from cryptoetl.warehouse.schema import create_all

    create_all(sqlite_engine)
    news = [{"article_id": f"a{i}", "published_at": datetime(2026, 3, day, 12), "source": "guardian",
             "title": "t", "summary": None, "url": f"https://x.invalid/{i}", "category": "crypto",
             "is_synthetic": True} for i, day in enumerate((1, 2, 2, 5))]
    score = {"article_id": "a1", "model_id": "m", "model_revision": "r", "model_key": "cryptobert",
             "published_at": datetime(2026, 3, 2, 12), "label": "neutral", "score": 0.0, "p_positive": 0.3,
             "p_negative": 0.3, "p_neutral": 0.4, "text_sha256": "0" * 64, "is_synthetic": True}
    with sqlite_engine.begin() as conn:
        conn.execute(schema.crypto_news.insert(), news)
        conn.execute(schema.crypto_sentiment_data.insert(), [score])
    got = unscored_days(sqlite_engine, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    assert got == {date(2026, 3, 1): 1, date(2026, 3, 2): 1}  # a1 is scored; March 5 is outside
