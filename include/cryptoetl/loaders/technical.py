"""The technical-indicators step: read prices with a warm-up, compute with `ta`, replace the interval."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from cryptoetl.intervals import Interval
from cryptoetl.transforms import technical as technical_tx
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.io import read_frame, replace_interval


def run_technical(ctx, interval: Interval) -> int:
    warmup = timedelta(hours=ctx.settings.warmup_hours)
    symbols = [coin.symbol for coin in ctx.settings.symbols]
    prices = read_frame(
        ctx.engine, schema.price_data_real, time_column="time",
        start=interval.start - warmup, end=interval.end, symbols=symbols,
    )
    rows = technical_tx.compute(prices, pd.Timestamp(interval.start), pd.Timestamp(interval.end))
    return replace_interval(
        ctx.engine, schema.technical_indicators, rows, time_column="time",
        start=interval.start, end=interval.end, keys={"symbol": symbols},
    )
