"""The indicators for all symbols at once (``technical.compute``) are `ta`'s, bit for bit.

The reference is ``technical.indicators_for_series``: the `ta` library itself, called on one symbol's
bars. The data are SYNTHETIC and made to hit the edges: gaps, long outages, coins listed inside the
warm-up (fewer bars than every indicator's window), coins delisted before the interval, flat prices
(zero moves: RSI's zero losses, Bollinger's zero deviation) and rows in no particular order.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from helpers import dump, settings_for, utc

from cryptoetl.config import UNIVERSE
from cryptoetl.intervals import Interval
from cryptoetl.step import StepContext
from cryptoetl.transforms import technical
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.writes import replace_interval

T0 = pd.Timestamp(utc(2026, 1, 1))
HOURS = 24 * 40


def edge_case_prices(seed: int = 3) -> pd.DataFrame:
    """One symbol per edge case (SYNTHETIC), shuffled."""
    rng = np.random.default_rng(seed)

    def walk(n: int, scale: float = 100.0) -> np.ndarray:
        return scale * np.exp(np.cumsum(rng.normal(0, 0.01, n)))

    flat = walk(HOURS)
    flat[300:420] = flat[300]  # five days without a move
    with_gaps = np.ones(HOURS, dtype=bool)
    with_gaps[rng.choice(HOURS, size=60, replace=False)] = False
    with_gaps[500:620] = False  # a five-day outage
    series = {  # symbol: (first hour offset, prices, which bars exist)
        "GAPS": (0, walk(HOURS), with_gaps),
        "FLAT": (0, flat, None),
        "CONST": (0, np.full(HOURS, 7.25), None),  # never moves: no gain, no loss
        "TINY": (0, walk(HOURS, 1e-6), None),
        "NEW1": (HOURS - 1, walk(1), None),  # listed in the last hour
        "NEW13": (HOURS - 13, walk(13), None),  # around the RSI's and the EMAs' first values
        "NEW30": (HOURS - 30, walk(30), None),
        "NEW40": (HOURS - 40, walk(40), None),  # MACD signal starts at its 34th bar
        "NEW300": (HOURS - 300, walk(300), None),
        "GONE": (0, walk(HOURS - 100), None),  # delisted four days before the end
    }
    frames = []
    for symbol, (first, prices, keep) in series.items():
        times = T0 + pd.to_timedelta(np.arange(first, first + len(prices)), unit="h")
        frame = pd.DataFrame({"symbol": symbol, "time": times, "price": prices})
        frames.append(frame if keep is None else frame[keep])
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed, ignore_index=True)


def reference(prices: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """`ta` on each symbol alone, the rows of [start, end), in (symbol, time) order."""
    frames = []
    for symbol, group in prices.sort_values(["symbol", "time"]).groupby("symbol", sort=True):
        ind = technical.indicators_for_series(group.set_index("time")["price"].astype("float64"))
        ind = ind[(ind.index >= start) & (ind.index < end)].reset_index(names="time")
        ind.insert(0, "symbol", symbol)
        frames.append(ind)
    return pd.concat(frames, ignore_index=True)[["symbol", "time", *technical.OUTPUT_COLUMNS]]


def assert_bitwise_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    keys = ["symbol", "time"]
    assert list(got[keys].itertuples(index=False)) == list(want[keys].itertuples(index=False))
    for column in technical.OUTPUT_COLUMNS:
        a, b = got[column].to_numpy(), want[column].to_numpy()
        if a.dtype.kind == "f":  # same bits, NaN where `ta` has NaN (-0.0 is not 0.0 here)
            differ = (a.view("int64") != b.view("int64")) & ~(np.isnan(a) & np.isnan(b))
            assert not differ.any(), (column, got.loc[differ, ["symbol", "time"]].head(), a[differ][:3], b[differ][:3])
        else:
            assert np.array_equal(a, b), column


@pytest.mark.parametrize("first_hour,last_hour", [
    (HOURS - 1, HOURS),  # an hourly run
    (HOURS - 24, HOURS),  # a daily run
    (600, 640),  # the end of the outage of GAPS: returns across it are NULL
    (HOURS - 130, HOURS - 90),  # the last bars of GONE
    (0, HOURS),  # every bar, the warm-up rows included
])
def test_compute_equals_ta_bit_for_bit(first_hour, last_hour):
    prices = edge_case_prices()
    start, end = T0 + pd.Timedelta(hours=first_hour), T0 + pd.Timedelta(hours=last_hour)
    want = reference(prices, start, end)
    got = technical.compute(prices, start, end)
    assert_bitwise_equal(got, want)
    assert len(got) and not got[list(schema.TECHNICAL_COLUMNS)].isna().all().any()  # the edges are reached


def test_edge_cases_reach_the_values_they_are_meant_to():
    prices = edge_case_prices()
    got = technical.compute(prices, T0, T0 + pd.Timedelta(hours=HOURS)).set_index(["symbol", "time"])
    assert (got.loc["CONST", "rsi_14"].dropna() == 100).all()  # no loss at all: `ta` says 100
    assert (got.loc["CONST", "bb_width"].dropna() == 0).all()
    assert got.loc["NEW13", "rsi_14"].notna().sum() == 0 and got.loc["NEW13", "ema_12"].notna().sum() == 2
    assert got.loc["NEW40", "macd_signal"].notna().sum() == 40 - 33
    assert got.loc["NEW1", "price_bars_30d"].tolist() == [1]
    assert "GONE" not in technical.compute(prices, T0 + pd.Timedelta(hours=HOURS - 24),
                                           T0 + pd.Timedelta(hours=HOURS))["symbol"].tolist()


def test_no_bar_in_the_interval_gives_no_rows():
    prices = edge_case_prices()
    later = T0 + pd.Timedelta(hours=HOURS + 5)
    assert technical.compute(prices, later, later + pd.Timedelta(hours=1)).empty
    assert technical.compute(prices.iloc[:0], T0, later).empty


@pytest.mark.parametrize("failing", ["read_frame", "technical_tx"])
def test_a_failure_midway_keeps_the_previous_rows_and_stops_every_thread(engine, monkeypatch, failing):
    """The step reads group after group ahead of the computing (MySQL: in their own threads): a
    read or a computation failing midway rolls the whole interval back, and no reader or writer
    thread is left behind (a reader waiting to hand over the next group included)."""
    from cryptoetl.loaders import technical as loader

    prices = edge_case_prices().query("symbol in ['GAPS', 'FLAT', 'CONST']").replace(
        {"symbol": {"GAPS": "BTC", "FLAT": "ETH", "CONST": "SOL"}})
    replace_interval(engine, schema.price_data_real, prices.assign(source="sandbox-synthetic"), time_column="time",
                     start=T0, end=T0 + pd.Timedelta(hours=HOURS))
    ctx = StepContext(settings=settings_for(engine, symbols=UNIVERSE[:3]), engine=engine)
    interval = Interval(T0 + timedelta(days=36), T0 + timedelta(days=38))
    loader.run_technical(ctx, interval)
    before = dump(engine, schema.technical_indicators)
    assert len(before) == prices["time"].between(interval.start, interval.end, inclusive="left").sum() > 100

    monkeypatch.setattr(loader, "ROWS_PER_PART", 1)  # one symbol per group
    calls = []

    def fail_on_second_call(real):
        def call(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("failed midway")
            return real(*args, **kwargs)
        return call

    if failing == "read_frame":
        monkeypatch.setattr(loader, "read_frame", fail_on_second_call(loader.read_frame))
    else:
        monkeypatch.setattr(loader.technical_tx, "compute", fail_on_second_call(technical.compute))
    with engine.begin() as conn:  # rows the failed run must leave as they are
        conn.execute(schema.technical_indicators.update().values(close=1.0))
    changed = dump(engine, schema.technical_indicators)
    assert changed != before
    with pytest.raises(RuntimeError, match="failed midway"):
        loader.run_technical(ctx, interval)
    assert dump(engine, schema.technical_indicators) == changed
    assert not [t for t in threading.enumerate() if t.name == "cryptoetl-prefetch"]
