"""The final statement: one INSERT ... SELECT over the indicator rows, each joined to the context
tables the families filled (a handful of primary-key lookups per row).

The per-hour context of the families (macro, all-article sentiment, the universe snapshot) is first
gathered into one in-memory table, ``tmp_feat_hour_ctx``, so that each feature row probes one hour
table instead of three; the per-(symbol, hour) context (on-chain, the symbol's own sentiment) is one
table from the start (``symbol_context.py``). At 320 coins x 456 days the probes were most of what
the rebuild cost over a plain copy of its rows.

Prices and indicators, point in time: the technical step writes one row per price row, carrying the
price row itself (``close`` and ``schema.PRICE_ROW_COLUMNS``), its returns (looking back exactly
1/24/168 h) and the warm-up bar count over the 720 h up to T; all of them at or before T. So the
statement scans ``technical_indicators`` alone: a feature row exists for each hour whose indicators
were computed (a price hour the technical step has not reached yet gets its row when it has: its
asset event triggers that rebuild). The universe rank comes from the snapshot known at T
(``universe.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features import sentiment as sentiment_family
from cryptoetl.warehouse.features import symbol_context
from cryptoetl.warehouse.features.dialect import Dialect

# Prices (through the indicator rows that carry them), indicators and returns change only their own
# hour's features (the technical step already extends a price change over the 720 h it reaches).
LOOKAHEAD_HOURS = {"price_data_real": 0, "technical_indicators": 0}
TEMP_TABLES = ("tmp_feat_hour_ctx",)


def hour_context_statements(d: Dialect, macro_columns: Sequence[tuple[str, str, str]], hours: int) -> list[str]:
    """Create and fill ``tmp_feat_hour_ctx`` (the ``hours`` hours of [:lo, :hi)) from the per-hour tables
    of the families: ``tmp_feat_snap`` (one row per hour), ``tmp_feat_macro`` and ``tmp_feat_sent_all``."""
    macro = [column for _, value, age in macro_columns for column in (value, age)]
    spread = sentiment_family.spread_columns()
    levels = [name for name, _ in spread]
    body = ", ".join([f"time {d.datetime_type} NOT NULL PRIMARY KEY", f"known_at {d.datetime_type} NULL",
                      *(f"{c} DOUBLE" for c in macro), *(f"{name} {kind}" for name, kind in spread)])
    columns = ", ".join(["time", "known_at", *macro, *levels])
    values = ", ".join(["ks.time", "ks.known_at", *(f"m.{c}" for c in macro), *(f"sa.{c}" for c in levels)])
    return [*d.memory_room(hours), d.create_temp("tmp_feat_hour_ctx", body, in_memory=True),
            f"""INSERT INTO tmp_feat_hour_ctx ({columns})
SELECT {values}
FROM tmp_feat_snap ks
LEFT JOIN tmp_feat_macro m ON m.time = ks.time
LEFT JOIN tmp_feat_sent_all sa ON sa.time = ks.time"""]


def insert_select_sql(dialect: str, macro_columns: Sequence[tuple[str, str, str]] = schema.MACRO_FEATURE_COLUMNS,
                      ) -> str:
    """The INSERT ... SELECT that builds every feature row of [:lo, :hi) for :symbols (after the
    temporary tables are filled by ``rebuild``), with the given macro columns."""
    d = Dialect(dialect)
    bars = schema.WARMUP_BARS_COLUMN
    returns = [f"t.{name}" for name in schema.RETURN_LAGS_HOURS]  # computed by the technical step
    technical = [f"t.{name}" for name in schema.TECHNICAL_COLUMNS]
    macro = [f"hc.{column}" for _, value, age in macro_columns for column in (value, age)]
    onchain = [f"sc.{name} AS onchain_{name}" for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
    onchain.append(f"{d.days_between('t.time', 'sc.onchain_date')} AS onchain_age_days")
    scope_alias = {"sym": "sc", "all": "hc"}  # tmp_feat_sym_ctx / tmp_feat_hour_ctx
    sentiment = []  # in schema order: model, scope, window, stat
    for model in schema.SENTIMENT_MODELS:
        for scope, alias in scope_alias.items():
            for window in schema.SENTIMENT_WINDOWS_HOURS:
                count, mean = (schema.sentiment_column(model, scope, window, stat) for stat in ("count", "mean"))
                sentiment += [f"COALESCE({alias}.{model}_{window}_n, 0) AS {count}",
                              f"{alias}.{model}_{window}_mean AS {mean}"]
    select_list = ",\n       ".join([
        "t.symbol", "t.time", "t.close AS price", "t.market_cap", "t.total_volume", *returns, *technical, *macro,
        *onchain, *sentiment, "CASE WHEN t.source = 'coingecko' THEN 0 ELSE 1 END AS is_synthetic",
        "u.market_cap_rank AS universe_rank", f"t.{bars}",
        f"CASE WHEN t.{bars} IS NULL THEN NULL WHEN t.{bars} >= {schema.WARMUP_COMPLETE_BARS} THEN 1 ELSE 0 END "
        "AS warmup_complete"])
    columns = ", ".join(["symbol", "time", *schema.feature_columns(macro_columns), "is_synthetic",
                         *(c.name for c in schema.universe_feature_columns())])
    return f"""INSERT INTO ml_features_materialized ({columns})
SELECT {select_list}
FROM technical_indicators t
LEFT JOIN tmp_feat_hour_ctx hc ON hc.time = t.time
LEFT JOIN {symbol_context.TABLE} sc ON sc.symbol = t.symbol AND sc.time = t.time
LEFT JOIN universe_snapshots u ON u.known_at = hc.known_at AND u.symbol = t.symbol
WHERE t.time >= :lo AND t.time < :hi AND t.symbol IN :symbols"""
