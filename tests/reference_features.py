"""Reference implementation (pandas) of the price family of ``ml_features_materialized``.

The warehouse builds the table in SQL (``warehouse/features/``, returns computed by the
technical step); the tests check both agree, from the raw prices.

A feature row exists for every (symbol, hour) that has a price, so the set of rows depends
only on facts about that hour and never on how a backfill was chunked. Returns look back
exactly 1, 24 and 168 hours; when that hour has no price the return is NULL, not 0.
"""

from __future__ import annotations

import pandas as pd

from cryptoetl.warehouse.schema import PRICE_FEATURE_COLUMNS, RETURN_LAGS_HOURS, TECHNICAL_COLUMNS

LOOKBACK_HOURS = max(RETURN_LAGS_HOURS.values())
COLUMNS = ["symbol", "time", *PRICE_FEATURE_COLUMNS, "is_synthetic"]


def compute(prices: pd.DataFrame, technical: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``prices`` must cover [start - LOOKBACK_HOURS, end); ``technical`` covers [start, end)."""
    if prices.empty:
        return pd.DataFrame(columns=COLUMNS)
    lookup = prices.set_index(["symbol", "time"])["price"]
    base = prices[(prices["time"] >= start) & (prices["time"] < end)].copy()
    if base.empty:
        return pd.DataFrame(columns=COLUMNS)
    for column, hours in RETURN_LAGS_HOURS.items():
        lagged_keys = pd.MultiIndex.from_arrays([base["symbol"], base["time"] - pd.Timedelta(hours=hours)])
        earlier = lookup.reindex(lagged_keys).to_numpy()
        base[column] = base["price"].to_numpy() / earlier - 1.0
    base["is_synthetic"] = base["source"] != "coingecko"
    tech_cols = ["symbol", "time", *TECHNICAL_COLUMNS]
    tech = technical[tech_cols] if not technical.empty else pd.DataFrame(columns=tech_cols)
    tech = tech.astype({"symbol": base["symbol"].dtype})
    if tech.empty:
        tech = tech.astype({"time": base["time"].dtype})
    out = base.merge(tech, on=["symbol", "time"], how="left")
    return out[COLUMNS].sort_values(["symbol", "time"], ignore_index=True)
