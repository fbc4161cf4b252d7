"""Writers that run at once never block or corrupt each other (MariaDB), and lock conflicts retry.

Seen before: a technical backfill and a features rebuild at the same time failed 5 times out of 5
with 1213 (deadlock), because the rebuild's INSERT ... SELECT share-locked every source row under
REPEATABLE READ. Now the rebuild reads at READ COMMITTED, and every writer retries a lost conflict.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest
from helpers import dump, settings_for, utc
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cryptoetl.intervals import Interval
from cryptoetl.loaders.technical import run_technical
from cryptoetl.step import StepContext
from cryptoetl.universe import Coin
from cryptoetl.warehouse import features, schema
from cryptoetl.warehouse.retry import retry_transient, transient_reason
from cryptoetl.warehouse.writes import replace_interval

T0 = utc(2026, 1, 1)
SYMBOLS = [f"C{i:02d}" for i in range(24)]
DAYS = 40


def _prices(engine) -> Interval:
    hours = DAYS * 24
    times = pd.date_range(T0, periods=hours, freq="h", tz="UTC")
    frames = [pd.DataFrame({"symbol": s, "time": times, "price": 100.0 + i + (pd.Series(range(hours)) % 97) / 7,
                            "market_cap": None, "total_volume": None, "source": "sandbox-synthetic"})
              for i, s in enumerate(SYMBOLS)]
    full = Interval(T0, T0 + timedelta(hours=hours))
    replace_interval(engine, schema.price_data_real, pd.concat(frames, ignore_index=True), time_column="time",
                     start=full.start, end=full.end, keys={"symbol": SYMBOLS})
    return full


def _ctx(engine) -> StepContext:
    return StepContext(settings=settings_for(engine, symbols=tuple(Coin(s, s.lower(), s) for s in SYMBOLS)),
                       engine=engine)


def _in_threads(*jobs) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(job):
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return errors


@pytest.mark.mysql
def test_technical_and_features_over_a_long_range_at_once_both_succeed(mysql_engine):
    engine = mysql_engine
    full = _prices(engine)
    run_technical(_ctx(engine), full)
    features.rebuild(engine, full.start, full.end, SYMBOLS)
    for _ in range(3):
        errors = _in_threads(lambda: run_technical(_ctx(engine), full),
                             lambda: features.rebuild(engine, full.start, full.end, SYMBOLS))
        assert errors == []
    # and nothing is corrupt: the rows equal those of one more rebuild on its own
    concurrent = dump(engine, schema.ml_features_materialized)
    features.rebuild(engine, full.start, full.end, SYMBOLS)
    assert dump(engine, schema.ml_features_materialized) == concurrent
    assert len(concurrent) == len(SYMBOLS) * DAYS * 24


@pytest.mark.mysql
def test_the_features_rebuild_takes_no_shared_locks_on_what_it_reads(mysql_engine):
    """Another transaction holds an exclusive lock on an indicator row; the rebuild reads past it
    (READ COMMITTED) instead of waiting for the lock (REPEATABLE READ would wait 50 s and fail)."""
    engine = mysql_engine
    full = _prices(engine)
    run_technical(_ctx(engine), full)
    day = Interval(full.end - timedelta(days=1), full.end)
    with engine.connect() as holder:
        holder.execute(text("SET SESSION innodb_lock_wait_timeout = 5"))
        holder.commit()
        holder.begin()
        holder.execute(text("UPDATE technical_indicators SET rsi_14 = rsi_14 WHERE symbol = 'C00' AND time >= :t"),
                       {"t": day.start.replace(tzinfo=None)})
        errors = _in_threads(lambda: features.rebuild(engine, day.start, day.end, SYMBOLS))
        holder.rollback()
    assert errors == []


class _Orig(Exception):
    pass


def _mysql_error(code: int) -> OperationalError:
    return OperationalError("INSERT ...", {}, _Orig(code, "Deadlock found when trying to get lock"))


def test_a_lost_lock_conflict_runs_the_transaction_again_bounded_and_logged(caplog):
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise _mysql_error(1213 if len(calls) == 1 else 1205)
        return "written"

    assert retry_transient(flaky, what="t", sleep=slept.append) == "written"
    assert len(calls) == 3 and len(slept) == 2 and slept[1] > slept[0]
    assert "deadlock" in caplog.text and "lock wait timeout" in caplog.text

    def always():
        raise _mysql_error(1213)

    with pytest.raises(OperationalError):
        retry_transient(always, what="t", attempts=3, sleep=slept.append)
    other = OperationalError("INSERT ...", {}, _Orig(1146, "Table doesn't exist"))
    assert transient_reason(other) is None
    with pytest.raises(OperationalError):
        retry_transient(lambda: (_ for _ in ()).throw(other), what="t", sleep=lambda s: pytest.fail("no retry"))
