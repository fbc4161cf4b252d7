"""Technical indicators with the formulas of the `ta` library, computed so that any chunking agrees.

Recursive indicators (EMA, RSI, MACD) depend on every earlier bar. A step that computes
[start, end) therefore reads ``warmup_hours`` of bars before ``start`` and writes only the
rows inside the interval. With the default 720 h the influence of the starting point is
below (25/27)**720 ~ 1e-24 for the slowest EMA (26), far under the 1e-9 we promise, so a
10-day backfill, ten 1-day runs and overlapping chunks give the same values.

``compute`` does for every symbol at once what ``indicators_for_series`` (the `ta` library, the
reference) does for one: ta 0.11's own pandas calls (``rolling().mean()``, ``rolling().std(ddof=0)``,
``ewm(adjust=False).mean()``, ``diff``/``where``) on a matrix with one column per symbol, holding the
symbol's bars from its first one (row k = its k-th bar; shorter columns end in NaN). Each column
thus runs through the same pandas kernels on the same values in the same order as ``ta`` does on
the symbol alone, and gives the same numbers bit for bit (tests/test_technical_fast.py checks it on
gaps, late listings and flat prices). Padding after a symbol's last bar changes none of its values:
every one of these calls looks only backwards. 320 coins x 721 h: ~0.3 s, against ~10 s for one
``ta`` call per symbol (mostly pandas' per-call overhead).
"""

from __future__ import annotations

import numpy as np
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
    """Indicators for one symbol's hourly closes (index = time, ascending, no duplicates), with
    `ta` itself: the reference ``compute`` must reproduce.

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


def indicator_matrices(closes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The technical columns for a matrix of closes, one column per symbol holding its bars in
    order from its first (trailing NaN allowed): `ta` 0.11's formulas, call for call (``_sma``,
    ``_ema``, ``RSIIndicator._run``, ``MACD._run``, ``BollingerBands._run``, fillna=False)."""
    sma_20 = closes.rolling(window=20, min_periods=20).mean()
    ema_12 = closes.ewm(span=12, min_periods=12, adjust=False).mean()
    ema_26 = closes.ewm(span=26, min_periods=26, adjust=False).mean()
    diff = closes.diff(1)
    up_direction = diff.where(diff > 0, 0.0)
    down_direction = -diff.where(diff < 0, 0.0)
    emaup = up_direction.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    emadn = down_direction.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    relative_strength = emaup / emadn
    rsi = np.where(emadn == 0, 100, 100 - (100 / (1 + relative_strength)))
    macd = ema_12 - ema_26
    macd_signal = macd.ewm(span=9, min_periods=9, adjust=False).mean()
    mstd = closes.rolling(20, min_periods=20).std(ddof=0)
    hband = sma_20 + 2 * mstd
    lband = sma_20 - 2 * mstd
    return {
        "sma_20": sma_20,
        "sma_50": closes.rolling(window=50, min_periods=50).mean(),
        "ema_12": ema_12,
        "ema_26": ema_26,
        "rsi_14": pd.DataFrame(rsi, index=closes.index, columns=closes.columns),
        "macd": macd,
        "macd_signal": macd_signal,
        "macd_hist": macd - macd_signal,
        "bb_upper": hband,
        "bb_middle": sma_20,
        "bb_lower": lband,
        "bb_width": ((hband - lband) / sma_20) * 100,
    }


def compute(prices: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Indicator rows for [start, end) from ``prices`` (symbol, time, price), which must
    include the warm-up bars before ``start``. Returns one row per input bar in the interval,
    ordered by (symbol, time): for each symbol, the rows ``indicators_for_series`` gives, then any
    other column of ``prices`` (the rest of the price row) as it was."""
    carried = [c for c in prices.columns if c not in ("symbol", "time", "price")]
    columns = ["symbol", "time", *OUTPUT_COLUMNS, *carried]
    if prices.empty:
        return pd.DataFrame(columns=columns)
    prices, codes, times = _bars_to_compute(prices, start, end)
    if prices.empty:
        return pd.DataFrame(columns=columns)
    inside = (prices["time"] >= start).to_numpy()
    position = np.arange(len(codes)) - np.searchsorted(codes, codes)  # the k-th bar of its symbol
    close = prices["price"].to_numpy(dtype="float64")
    closes = np.full((position.max() + 1, codes.max() + 1), np.nan)
    closes[position, codes] = close
    matrices = indicator_matrices(pd.DataFrame(closes))
    out = prices.loc[inside, ["symbol", "time"]].reset_index(drop=True)
    out["symbol"] = out["symbol"].astype("str")
    out["close"] = close[inside]
    rows, cols = position[inside], codes[inside]
    for name, matrix in matrices.items():
        out[name] = matrix.to_numpy()[rows, cols]
    for name in carried:
        out[name] = prices[name].to_numpy()[inside]
    return pd.concat([out, _lookbacks(codes, times, close, inside)], axis=1)[columns]


def _bars_to_compute(prices: pd.DataFrame, start: pd.Timestamp,
                     end: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``prices`` in (symbol, time) order, without the bars from ``end`` on (no value before ``end``
    depends on them) and without the symbols that have no bar in [start, end); with each row's
    symbol code (0, 1, ... in symbol order) and its time as naive UTC datetime64."""
    prices = prices[(prices["time"] < end).to_numpy()]
    codes, _ = pd.factorize(prices["symbol"], sort=True)
    times = _naive_times(prices["time"])
    if not _in_order(codes, times):
        order = np.lexsort((times, codes))
        prices, codes, times = prices.iloc[order], codes[order], times[order]
    wanted = np.unique(codes[(prices["time"] >= start).to_numpy()])
    if len(wanted) <= codes.max(initial=-1):  # some symbol has no bar in the interval
        keep = np.isin(codes, wanted)
        prices, codes, times = prices[keep], np.searchsorted(wanted, codes[keep]), times[keep]
    return prices.reset_index(drop=True), codes, times


def _in_order(codes: np.ndarray, times: np.ndarray) -> bool:
    """Whether the rows are sorted by (code, time), times strictly increasing within a code."""
    step = np.diff(codes)
    return bool((step >= 0).all() and (times[1:] > times[:-1])[step == 0].all())


def _naive_times(times: pd.Series) -> np.ndarray:
    """``times`` as naive UTC datetime64 (an aware column is converted, a naive one taken as UTC)."""
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _lookbacks(codes: np.ndarray, times: np.ndarray, close: np.ndarray, inside: np.ndarray) -> pd.DataFrame:
    """The returns over exact lags and the warm-up bar count of the rows ``inside``, looked up by
    time (not by position) among their own symbol's bars: what ``indicators_for_series`` computes."""
    lags = [np.timedelta64(hours, "h") for hours in RETURN_LAGS_HOURS.values()]
    wanted = [times[inside] - lag for lag in (*lags, np.timedelta64(WARMUP_WINDOW_HOURS, "h"))]
    # (symbol, time) as one sortable integer: the code times the number of distinct times, plus the time's rank
    distinct = np.unique(np.concatenate([times, *wanted]))
    keys = codes * len(distinct) + np.searchsorted(distinct, times)
    wanted_keys = [codes[inside] * len(distinct) + np.searchsorted(distinct, t) for t in wanted]
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, key in zip(RETURN_LAGS_HOURS, wanted_keys, strict=False):
            at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            earlier = np.where(keys[at] == key, close[at], np.nan)  # NULL across gaps, never 0
            out[name] = close[inside] / earlier - 1.0
    # bars with a price in (t - 720 h, t], this one included, like rolling("720h").count()
    priced = np.concatenate([[0], np.cumsum(~np.isnan(close))])
    first = np.searchsorted(keys, wanted_keys[-1], side="right")
    out[WARMUP_BARS_COLUMN] = (priced[np.flatnonzero(inside) + 1] - priced[first]).astype("int64")
    return pd.DataFrame(out)
