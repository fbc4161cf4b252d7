"""Technical indicators with the `ta` library, computed so that any chunking agrees.

Recursive indicators (EMA, RSI, MACD) depend on every earlier bar. A step that computes
[start, end) therefore reads ``warmup_hours`` of bars before ``start`` and writes only the
rows inside the interval. With the default 720 h the influence of the starting point is
below (25/27)**720 ~ 1e-24 for the slowest EMA (26), far under the 1e-9 we promise, so a
10-day backfill, ten 1-day runs and overlapping chunks give the same values.
"""

from __future__ import annotations

import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

from cryptoetl.warehouse.schema import RETURN_LAGS_HOURS, TECHNICAL_COLUMNS, WARMUP_BARS_COLUMN, WARMUP_WINDOW_HOURS

# Returns and the warm-up count look back exactly this far: the step reads at least this many hours
# before its interval, so both are the same whatever the chunking.
RETURN_LOOKBACK_HOURS = max(RETURN_LAGS_HOURS.values())
LOOKBACK_HOURS = max(RETURN_LOOKBACK_HOURS, WARMUP_WINDOW_HOURS)
OUTPUT_COLUMNS = ("close", *TECHNICAL_COLUMNS, *RETURN_LAGS_HOURS, WARMUP_BARS_COLUMN)


def indicators_for_series(close: pd.Series) -> pd.DataFrame:
    """Indicators for one symbol's hourly closes (index = time, ascending, no duplicates).

    ``fillna=False`` keeps the warm-up NaNs: a value without enough bars is NULL, never 0.
    """
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9, fillna=False)
    bb = BollingerBands(close, window=20, window_dev=2, fillna=False)
    out = pd.DataFrame(
        {
            "close": close,
            "sma_20": SMAIndicator(close, window=20, fillna=False).sma_indicator(),
            "sma_50": SMAIndicator(close, window=50, fillna=False).sma_indicator(),
            "ema_12": EMAIndicator(close, window=12, fillna=False).ema_indicator(),
            "ema_26": EMAIndicator(close, window=26, fillna=False).ema_indicator(),
            "rsi_14": RSIIndicator(close, window=14, fillna=False).rsi(),
            "macd": macd.macd(),
            "macd_signal": macd.macd_signal(),
            "macd_hist": macd.macd_diff(),
            "bb_upper": bb.bollinger_hband(),
            "bb_middle": bb.bollinger_mavg(),
            "bb_lower": bb.bollinger_lband(),
            "bb_width": bb.bollinger_wband(),
        },
        index=close.index,
    )
    for name, hours in RETURN_LAGS_HOURS.items():
        # the price exactly `hours` earlier, by time (not by position): NULL across gaps, never 0
        earlier = close.reindex(close.index - pd.Timedelta(hours=hours)).to_numpy()
        out[name] = close.to_numpy() / earlier - 1.0
    # bars in the trailing window (t - 720 h, t]: a coin listed recently has fewer (see schema)
    out[WARMUP_BARS_COLUMN] = close.rolling(f"{WARMUP_WINDOW_HOURS}h").count().astype("int64")
    return out


def compute(prices: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Indicator rows for [start, end) from ``prices`` (symbol, time, price), which must
    include the warm-up bars before ``start``. Returns one row per input bar in the interval."""
    columns = ["symbol", "time", *OUTPUT_COLUMNS]
    if prices.empty:
        return pd.DataFrame(columns=columns)
    frames = []
    for symbol, group in prices.sort_values(["symbol", "time"]).groupby("symbol", sort=True):
        close = group.set_index("time")["price"].astype("float64")
        ind = indicators_for_series(close)
        ind = ind[(ind.index >= start) & (ind.index < end)]
        if ind.empty:
            continue
        ind = ind.reset_index(names="time")
        ind.insert(0, "symbol", symbol)
        frames.append(ind)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
