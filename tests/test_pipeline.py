"""The steps end to end against the sandbox (synthetic data), on SQLite and MariaDB."""

from __future__ import annotations

import pytest
from helpers import dump, settings_for, utc

from cryptoetl.intervals import Interval
from cryptoetl.sources.coingecko import CoinGeckoClient
from cryptoetl.sources.http import SourceError
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import schema

DAYS = [Interval(utc(2026, 3, d), utc(2026, 3, d + 1)) for d in range(1, 11)]
TABLES = (schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized)


def context(engine, sandbox, options=(), **client_kwargs):
    settings = settings_for(engine, sandbox)
    fast = CoinGeckoClient(sandbox.base_url, rate_per_minute=60_000, sleep=lambda s: None, **client_kwargs)
    return StepContext(settings=settings, engine=engine, clients={CoinGeckoClient: fast},
                       options=frozenset(options))


def run_all(ctx, intervals):
    for name in ("prices", "technical", "features"):
        for interval in intervals:
            get_step(name).execute(ctx, interval)


def snapshot(engine):
    return [dump(engine, t) for t in TABLES]


def test_running_intervals_twice_leaves_identical_tables(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    run_all(ctx, DAYS[:3])
    first = snapshot(engine)
    run_all(ctx, DAYS[:3])
    assert snapshot(engine) == first
    # 3 symbols x 3 days x 24 h in each table, less the hours CoinGecko has no point for (none is filled)
    counts = [len(rows) for rows in first]
    assert counts[0] == counts[1] == counts[2] and 0.9 * 3 * 72 <= counts[0] <= 3 * 72


def test_prices_backfill_equals_daily_runs(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    get_step("prices").execute(ctx, Interval(DAYS[0].start, DAYS[9].end))
    one_run = dump(engine, schema.price_data_real)
    for interval in DAYS:
        get_step("prices").execute(ctx, interval)
    assert dump(engine, schema.price_data_real) == one_run and 0.9 * 3 * 240 <= len(one_run) <= 3 * 240


@pytest.mark.parametrize("fault", ["500", "malformed", "drift", "429", "timeout"])
def test_failed_load_leaves_the_interval_untouched(engine, sandbox_clean, fault):
    ctx = context(engine, sandbox_clean)
    run_all(ctx, DAYS[:2])
    before = snapshot(engine)
    # the third symbol fails: no partial day may be written for the first two
    sandbox_clean.set_faults([{"kind": fault, "count": -1, "path_contains": "/solana/"}])
    sandbox_clean.timeout_sleep = 0.5
    # --refetch: call CoinGecko again although the blocks are landed
    failing = context(engine, sandbox_clean, options=["refetch"], max_retries=1, timeout=0.2, max_wait=0)
    with pytest.raises(SourceError):
        get_step("prices").execute(failing, DAYS[1])
    assert snapshot(engine) == before


def test_empty_source_day_writes_no_rows_and_no_placeholders(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean)
    sandbox_clean.set_faults([{"kind": "empty", "count": -1}])
    assert get_step("prices").execute(ctx, DAYS[0]) == 0
    assert dump(sqlite_engine, schema.price_data_real) == []


def test_empty_answer_never_erases_loaded_rows(sqlite_engine, sandbox_clean):
    from cryptoetl.step import SourceDataMissing

    ctx = context(sqlite_engine, sandbox_clean)
    get_step("prices").execute(ctx, DAYS[0])
    before = dump(sqlite_engine, schema.price_data_real)
    sandbox_clean.set_faults([{"kind": "empty", "count": -1, "path_contains": "/ethereum/"}])
    refetch = context(sqlite_engine, sandbox_clean, options=["refetch"])
    with pytest.raises(SourceDataMissing, match="refusing to erase"):
        get_step("prices").execute(refetch, DAYS[0])
    assert dump(sqlite_engine, schema.price_data_real) == before
    sandbox_clean.set_faults([])
    get_step("prices").execute(ctx, DAYS[0])  # the landed points were kept too
    assert dump(sqlite_engine, schema.price_data_real) == before
