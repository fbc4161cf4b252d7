"""Technical indicators and features: values, honest NULLs, and chunking invariance."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import reference_features
from helpers import dump, settings_for, utc
from sqlalchemy import select

from cryptoetl.config import UNIVERSE
from cryptoetl.intervals import Interval
from cryptoetl.loaders.features import run_features
from cryptoetl.loaders.technical import run_technical
from cryptoetl.step import StepContext
from cryptoetl.transforms import technical
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.writes import replace_interval

T0 = utc(2026, 1, 1)


def synthetic_prices(symbols=("BTC", "ETH"), hours=24 * 50, start=T0, seed=7, gaps=()):
    """A seeded random walk per symbol (SYNTHETIC test data); ``gaps`` are hour offsets to drop."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, symbol in enumerate(symbols):
        walk = 100.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, hours)))
        times = pd.date_range(start, periods=hours, freq="h", tz="UTC")
        frame = pd.DataFrame({"symbol": symbol, "time": times, "price": walk,
                              "market_cap": walk * 1e6, "total_volume": walk * 1e3,
                              "source": "sandbox-synthetic"})
        frames.append(frame.drop(index=[g for g in gaps if g < hours]))
    return pd.concat(frames, ignore_index=True)


def test_indicators_match_independent_formulas():
    prices = synthetic_prices(symbols=("BTC",), hours=300)
    out = technical.compute(prices, pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=300)))
    close = prices["price"]
    assert np.allclose(out["sma_20"].iloc[19:], close.rolling(20).mean().iloc[19:], rtol=1e-12)
    ema12 = close.ewm(span=12, adjust=False).mean()
    ema26 = close.ewm(span=26, adjust=False).mean()
    assert np.allclose(out["macd"].dropna(), (ema12 - ema26)[out["macd"].notna()], rtol=1e-10)
    assert np.allclose(out["bb_upper"].iloc[19:],
                       (close.rolling(20).mean() + 2 * close.rolling(20).std(ddof=0)).iloc[19:], rtol=1e-10)
    assert out["rsi_14"].dropna().between(0, 100).all()


def test_missing_history_is_null_not_zero():
    prices = synthetic_prices(symbols=("BTC",), hours=60)
    out = technical.compute(prices, pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=60)))
    assert out["sma_50"].iloc[:49].isna().all() and out["sma_50"].iloc[49:].notna().all()
    assert out["sma_20"].iloc[:19].isna().all()
    assert not (out[list(schema.TECHNICAL_COLUMNS)] == 0).any().any()


def test_returns_use_exact_lags_and_null_across_gaps():
    prices = synthetic_prices(symbols=("BTC",), hours=24 * 9, gaps=(24 * 8 - 1,))
    start, end = pd.Timestamp(T0 + timedelta(days=8)), pd.Timestamp(T0 + timedelta(days=9))
    out = reference_features.compute(prices, pd.DataFrame(), start, end).set_index("time")
    p = prices.set_index("time")["price"]
    t = start + pd.Timedelta(hours=5)
    assert out.loc[t, "return_24h"] == pytest.approx(p[t] / p[t - pd.Timedelta(hours=24)] - 1, rel=1e-12)
    assert out.loc[t, "return_7d"] == pytest.approx(p[t] / p[t - pd.Timedelta(hours=168)] - 1, rel=1e-12)
    # the hour before `start` is missing, so the first row's 1h return is NULL, not 0
    assert math.isnan(out.loc[start, "return_1h"])
    assert out["is_synthetic"].all()


def _load_prices(engine, prices):
    replace_interval(engine, schema.price_data_real, prices, time_column="time",
                     start=prices["time"].min(), end=prices["time"].max() + pd.Timedelta(hours=1))


def _run(step, engine, settings, chunks):
    ctx = StepContext(settings=settings, engine=engine)
    for lo, hi in chunks:
        step(ctx, Interval(T0 + timedelta(days=lo), T0 + timedelta(days=hi)))


def _assert_tables_close(a, b, rel=1e-9):
    assert len(a) == len(b) and a, "tables differ in row count or are empty"
    for ra, rb in zip(a, b, strict=True):
        assert ra[:2] == rb[:2]
        for va, vb in zip(ra[2:], rb[2:], strict=True):
            if isinstance(va, float) and isinstance(vb, float):
                assert math.isclose(va, vb, rel_tol=rel, abs_tol=1e-12), (ra[:2], va, vb)
            else:
                assert va == vb, (ra[:2], va, vb)


CHUNKINGS = {
    "one 10-day run": [(35, 45)],
    "ten 1-day runs": [(d, d + 1) for d in range(35, 45)],
    "overlapping chunks": [(35, 39), (37, 42), (41, 45), (36, 37)],
}


@pytest.mark.parametrize("step,table", [(run_technical, schema.technical_indicators),
                                        (run_features, schema.ml_features_materialized)])
def test_backfill_equivalence(tmp_path, step, table):
    """One 10-day run, ten 1-day runs and overlapping chunks write the same rows."""
    from cryptoetl.warehouse.engine import get_engine

    prices = synthetic_prices(gaps=(24 * 36 + 3, 24 * 40))
    results = {}
    for name, chunks in CHUNKINGS.items():
        engine = get_engine(f"sqlite:///{tmp_path / (name.replace(' ', '_') + '.db')}")
        schema.create_all(engine)
        settings = settings_for(engine, warmup_hours=720, symbols=UNIVERSE[:2])
        _load_prices(engine, prices)
        if step is run_features:  # features read technical rows: build them first, one way
            _run(run_technical, engine, settings, [(35, 45)])
        _run(step, engine, settings, chunks)
        results[name] = dump(engine, table)
    baseline = results.pop("one 10-day run")
    assert len(baseline) == 2 * (240 - 2)  # two symbols, ten days, two gap hours each
    for rows in results.values():
        _assert_tables_close(baseline, rows)


def test_rerun_is_idempotent(sqlite_engine):
    settings = settings_for(sqlite_engine)
    _load_prices(sqlite_engine, synthetic_prices(symbols=("BTC", "ETH", "SOL"), hours=24 * 10))
    _run(run_technical, sqlite_engine, settings, [(3, 5)])
    _run(run_features, sqlite_engine, settings, [(3, 5)])
    first = (dump(sqlite_engine, schema.technical_indicators), dump(sqlite_engine, schema.ml_features_materialized))
    _run(run_technical, sqlite_engine, settings, [(3, 5), (4, 5)])
    _run(run_features, sqlite_engine, settings, [(3, 5)])
    second = (dump(sqlite_engine, schema.technical_indicators), dump(sqlite_engine, schema.ml_features_materialized))
    assert first == second and len(first[0]) == 3 * 48


def test_sql_rebuild_matches_the_reference_rules_on_both_backends(engine):
    """The set-based INSERT ... SELECT and the pandas reference agree row for row: exact lags,
    NULL across gaps, technical columns joined, real vs synthetic rows labelled."""
    from cryptoetl.warehouse import features
    from cryptoetl.warehouse.reads import read_frame

    prices = synthetic_prices(symbols=("BTC", "ETH"), hours=24 * 10, gaps=(24 * 8 - 1, 24 * 8 + 5, 24 * 2))
    prices.loc[prices["symbol"] == "ETH", "source"] = "coingecko"  # one real-labelled symbol
    _load_prices(engine, prices)
    settings = settings_for(engine, symbols=UNIVERSE[:2])
    _run(run_technical, engine, settings, [(0, 10)])
    start, end = T0 + timedelta(days=8), T0 + timedelta(days=10)
    assert features.rebuild(engine, start, end, ["BTC", "ETH"]) == 2 * (48 - 1)  # one gap hour each

    got = read_frame(engine, schema.ml_features_materialized, time_column="time", start=start, end=end)
    tech = read_frame(engine, schema.technical_indicators, time_column="time", start=start, end=end)
    want = reference_features.compute(prices, tech, pd.Timestamp(start), pd.Timestamp(end))
    keys = ["symbol", "time"]
    assert list(got[keys].itertuples(index=False)) == list(want[keys].itertuples(index=False))
    for column in schema.PRICE_FEATURE_COLUMNS:
        a, b = got[column].astype(float).to_numpy(), want[column].astype(float).to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), column
        assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-12), column
    assert got["return_1h"].isna().sum() >= 2  # the hours after each gap
    labels = got.groupby("symbol")["is_synthetic"].agg(lambda v: set(v.astype(bool)))
    assert labels.to_dict() == {"BTC": {True}, "ETH": {False}}


def test_symbol_groups_cover_every_symbol_once_in_order():
    from cryptoetl.loaders.technical import symbol_groups

    symbols = [f"S{i}" for i in range(7)]
    assert symbol_groups(symbols, hours=100, rows_per_part=250) == [["S0", "S1"], ["S2", "S3"], ["S4", "S5"], ["S6"]]
    assert symbol_groups(symbols, hours=1000, rows_per_part=10) == [[s] for s in symbols]  # at least one symbol
    assert symbol_groups(symbols, hours=1, rows_per_part=100) == [symbols]
    assert symbol_groups([], hours=10) == []


def test_indicator_rows_carry_their_price_row_and_feature_rows_follow_them(engine):
    """The technical step copies each price row (close, market cap, volume, source) into its indicator
    row, a revised price included; the features rebuild reads them there, so an hour whose indicators
    are not computed yet has no feature row until they are (and then has the revised price)."""
    prices = synthetic_prices(symbols=("BTC", "ETH"), hours=24 * 6, gaps=(24 * 5 + 3,))
    prices.loc[prices.index[74], "total_volume"] = None  # BTC, inside the interval
    _load_prices(engine, prices)
    settings = settings_for(engine, warmup_hours=48, symbols=UNIVERSE[:2])
    _run(run_technical, engine, settings, [(2, 6)])
    p, t, f = schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized
    carried = [p.c.price, *(p.c[name] for name in schema.PRICE_ROW_COLUMNS)]
    copied = [t.c.close, *(t.c[name] for name in schema.PRICE_ROW_COLUMNS)]
    in_interval = [p.c.time >= (T0 + timedelta(days=2)).replace(tzinfo=None)]

    def rows(columns, table, *where):
        with engine.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(select(table.c.symbol, table.c.time, *columns).where(*where)))

    assert rows(copied, t) == rows(carried, p, *in_interval) and len(rows(copied, t)) == 2 * (24 * 4 - 1)
    revised = (T0 + timedelta(days=4, hours=5)).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(p.update().where(p.c.symbol == "BTC", p.c.time == revised).values(
            price=123.0, market_cap=4.5e9, total_volume=6.7e6, source="coingecko"))
        conn.execute(t.delete().where(t.c.symbol == "BTC", t.c.time == revised))
    _run(run_features, engine, settings, [(4, 5)])
    built = rows([f.c.price, f.c.market_cap, f.c.total_volume, f.c.is_synthetic], f)
    assert len(built) == 2 * 24 - 1 and ("BTC", revised) not in {r[:2] for r in built}
    _run(run_technical, engine, settings, [(4, 5)])  # its asset event would now trigger the features
    _run(run_features, engine, settings, [(4, 5)])
    built = {r[:2]: r[2:] for r in rows([f.c.price, f.c.market_cap, f.c.total_volume, f.c.is_synthetic], f)}
    assert len(built) == 2 * 24 and built[("BTC", revised)] == (123.0, 4.5e9, 6.7e6, False)
    assert rows(copied, t) == rows(carried, p, *in_interval)


@pytest.mark.parametrize("rows_per_part,time_major", [(1, True), (2 * 24 * 60, False), (2 * 24 * 60, True)])
def test_technical_parts_are_invisible(engine, monkeypatch, rows_per_part, time_major):
    """The step streams symbols in groups (one transaction): any group size and row order writes
    bit-for-bit what one group writes, a rerun over existing rows too, and a symbol without prices
    loses its stale rows."""
    from cryptoetl.loaders import technical as loader

    symbols = ("BTC", "ETH", "SOL")
    _load_prices(engine, synthetic_prices(symbols=symbols[:2], hours=24 * 40, gaps=(24 * 33 + 2,)))
    with engine.begin() as conn:  # a stale row for a symbol that has no prices in the interval
        conn.execute(schema.technical_indicators.insert(), [{"symbol": "SOL", "time": T0 + timedelta(days=36),
                                                             "close": 1.0}])
    settings = settings_for(engine, warmup_hours=720, symbols=UNIVERSE[:3])
    assert [c.symbol for c in settings.symbols] == list(symbols)
    monkeypatch.setattr(loader, "ROWS_PER_PART", 10**9)
    _run(run_technical, engine, settings, [(32, 38)])
    one_part = dump(engine, schema.technical_indicators)
    assert len(one_part) == 2 * (24 * 6 - 1) and {r[0] for r in one_part} == {"BTC", "ETH"}

    monkeypatch.setattr(loader, "ROWS_PER_PART", rows_per_part)
    monkeypatch.setattr(loader, "TIME_MAJOR", time_major)
    _run(run_technical, engine, settings, [(32, 38)])  # a rerun over the rows just written
    assert dump(engine, schema.technical_indicators) == one_part
    with engine.begin() as conn:
        conn.execute(schema.technical_indicators.delete())
    _run(run_technical, engine, settings, [(32, 38)])
    assert dump(engine, schema.technical_indicators) == one_part
