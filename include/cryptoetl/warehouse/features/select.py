"""The final statement: one INSERT ... SELECT joining each price row to its indicators (by key) and
to the context tables the families filled (a handful of primary-key lookups per row).

Prices and indicators, point in time: the price rows at or before T (returns look back exactly
1/24/168 h; the technical step computes them with the indicators, and the warm-up bar count over the
720 h up to T). The universe rank comes from the snapshot known at T (``universe.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features.dialect import Dialect

# Indicators and returns change only their own hour's features (the technical step already
# extends a price change over the 720 h it reaches).
LOOKAHEAD_HOURS = {"price_data_real": 0, "technical_indicators": 0}


def insert_select_sql(dialect: str, macro_columns: Sequence[tuple[str, str, str]] = schema.MACRO_FEATURE_COLUMNS,
                      ) -> str:
    """The INSERT ... SELECT that builds every feature row of [:lo, :hi) for :symbols (after the
    temporary tables are filled by ``rebuild``), with the given macro columns."""
    d = Dialect(dialect)
    bars = schema.WARMUP_BARS_COLUMN
    returns = [f"t.{name}" for name in schema.RETURN_LAGS_HOURS]  # computed by the technical step
    technical = [f"t.{name}" for name in schema.TECHNICAL_COLUMNS]
    macro = [f"m.{column}" for _, value, age in macro_columns for column in (value, age)]
    onchain = [f"o.{name} AS onchain_{name}" for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
    onchain.append(f"{d.days_between('p.time', 'o.date')} AS onchain_age_days")
    scope_alias = {"sym": "ss", "all": "sa"}  # tmp_feat_sent_sym / tmp_feat_sent_all
    sentiment = []  # in schema order: model, scope, window, stat
    for model in schema.SENTIMENT_MODELS:
        for scope, alias in scope_alias.items():
            for window in schema.SENTIMENT_WINDOWS_HOURS:
                count, mean = (schema.sentiment_column(model, scope, window, stat) for stat in ("count", "mean"))
                sentiment += [f"COALESCE({alias}.{model}_{window}_n, 0) AS {count}",
                              f"{alias}.{model}_{window}_mean AS {mean}"]
    select_list = ",\n       ".join([
        "p.symbol", "p.time", "p.price", "p.market_cap", "p.total_volume", *returns, *technical, *macro, *onchain,
        *sentiment, "CASE WHEN p.source = 'coingecko' THEN 0 ELSE 1 END AS is_synthetic",
        "u.market_cap_rank AS universe_rank", f"t.{bars}",
        f"CASE WHEN t.{bars} IS NULL THEN NULL WHEN t.{bars} >= {schema.WARMUP_COMPLETE_BARS} THEN 1 ELSE 0 END "
        "AS warmup_complete"])
    columns = ", ".join(["symbol", "time", *schema.feature_columns(macro_columns), "is_synthetic",
                         *(c.name for c in schema.universe_feature_columns())])
    return f"""INSERT INTO ml_features_materialized ({columns})
SELECT {select_list}
FROM price_data_real p
LEFT JOIN technical_indicators t ON t.symbol = p.symbol AND t.time = p.time
LEFT JOIN tmp_feat_macro m ON m.time = p.time
LEFT JOIN tmp_feat_onchain o ON o.symbol = p.symbol AND o.time = p.time
LEFT JOIN tmp_feat_sent_sym ss ON ss.symbol = p.symbol AND ss.time = p.time
LEFT JOIN tmp_feat_sent_all sa ON sa.time = p.time
LEFT JOIN tmp_feat_snap ks ON ks.time = p.time
LEFT JOIN universe_snapshots u ON u.known_at = ks.known_at AND u.symbol = p.symbol
WHERE p.time >= :lo AND p.time < :hi AND p.symbol IN :symbols"""
