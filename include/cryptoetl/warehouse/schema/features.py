"""``ml_features_materialized``: its point-in-time feature columns, and the on-chain view."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    Table,
    text,
)

from cryptoetl.warehouse.schema.core import UTF8MB4, Double, _hour, _symbol, metadata
from cryptoetl.warehouse.schema.market import (
    ONCHAIN_METRIC_COLUMNS,
    TECHNICAL_COLUMNS,
    WARMUP_BARS_COLUMN,
    WARMUP_COMPLETE_BARS,
    WARMUP_WINDOW_HOURS,
)

PRICE_FEATURE_COLUMNS = (
    "price",
    "market_cap",
    "total_volume",
    "return_1h",
    "return_24h",
    "return_7d",
    *TECHNICAL_COLUMNS,
)

# --- ml_features_materialized: the point-in-time feature families (warehouse/features/) ---

# Macro: one value column and one age column per series. The packaged series file's series are
# declared here. A series that only a custom CRYPTOETL_MACRO_SERIES file lists gets its columns from
# `python -m cryptoetl migrate` (migrate.add_macro_columns); the features rebuild fills both kinds.
_PACKAGED_MACRO_SERIES = Path(__file__).resolve().parents[2] / "macro_series.json"
MAX_IDENTIFIER = 64  # MySQL's limit on a column name


def _macro_feature_series() -> tuple[tuple[str, str], ...]:
    """(series_id, indicator_name) of the packaged macro_series.json."""
    entries = json.loads(_PACKAGED_MACRO_SERIES.read_text())["series"]
    return tuple((entry["series_id"], entry["indicator_name"]) for entry in entries)


MACRO_FEATURE_SERIES = _macro_feature_series()


def macro_feature_columns(configured: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str, str], ...]:
    """(series_id, value column, age column) of every packaged series, then of each ``configured``
    (series_id, indicator_name) the packaged file lacks (by series id): the macro columns of
    ``ml_features_materialized`` that the rebuild fills. ValueError when a configured series'
    columns would collide with another's or exceed MySQL's identifier length."""
    series = list(MACRO_FEATURE_SERIES)
    for series_id, name in configured:
        if series_id not in {known for known, _ in series}:
            series.append((series_id, name))
    out = tuple((series_id, f"macro_{name}", f"macro_{name}_age_days") for series_id, name in series)
    owner: dict[str, str] = {}
    for series_id, value, age in out:
        for column in (value, age):
            if column in owner:
                raise ValueError(f"macro series {series_id} and {owner[column]} both need the feature column "
                                 f"{column}: give one another indicator_name")
            if len(column) > MAX_IDENTIFIER:
                raise ValueError(f"macro series {series_id}: its feature column {column} is longer than "
                                 f"{MAX_IDENTIFIER} characters: shorten its indicator_name")
            owner[column] = series_id
    return out


def macro_columns(series_id: str, value: str, age: str) -> tuple[Column, Column]:
    """The two feature columns of one macro series, as declared here and as `migrate` adds them."""
    return (Column(value, Double, comment=f"FRED {series_id}: latest value known at `time` (known_at <= time)"),
            Column(age, Double, comment=f"days from the start of the period the {series_id} value describes to "
                   "`time`"))


MACRO_FEATURE_COLUMNS = macro_feature_columns()

ONCHAIN_FEATURE_COLUMNS = tuple(f"onchain_{name}" for name, _ in ONCHAIN_METRIC_COLUMNS)

SENTIMENT_MODELS = ("cryptobert", "finbert")  # crypto_sentiment_data.model_key
SENTIMENT_SCOPES = {"sym": "articles that mention the row's symbol", "all": "all articles the model scores"}
SENTIMENT_WINDOWS_HOURS = {"24h": 24, "7d": 168}


def sentiment_column(model: str, scope: str, window: str, stat: str) -> str:
    return f"sent_{model}_{scope}_{window}_{stat}"


SENTIMENT_FEATURE_COLUMNS = tuple(
    sentiment_column(model, scope, window, stat)
    for model in SENTIMENT_MODELS for scope in SENTIMENT_SCOPES for window in SENTIMENT_WINDOWS_HOURS
    for stat in ("count", "mean"))



def feature_columns(macro: Iterable[tuple[str, str, str]] = MACRO_FEATURE_COLUMNS) -> tuple[str, ...]:
    """The feature columns of ``ml_features_materialized`` in the order the rebuild writes them,
    with the given macro columns (``macro_feature_columns``)."""
    return (*PRICE_FEATURE_COLUMNS, *(column for _, value, age in macro for column in (value, age)),
            *ONCHAIN_FEATURE_COLUMNS, "onchain_age_days", *SENTIMENT_FEATURE_COLUMNS)


FEATURE_COLUMNS = feature_columns()


def _sentiment_feature_column(name: str) -> Column:
    model, scope, window, stat = name.split("_")[1:]
    what = f"{model} {SENTIMENT_SCOPES[scope]}, published in the {window} up to `time`"
    if stat == "count":
        return Column(name, Integer, nullable=False, comment=f"number of {what} (0 when none)")
    return Column(name, Double, comment=f"mean score of {what}; NULL when the count is 0")


def universe_feature_columns() -> tuple[Column, ...]:
    """The columns that say how far to trust a row (added by revision 0003, after is_synthetic)."""
    return (
        Column("universe_rank", Integer, comment="CoinGecko market-cap rank in the latest universe snapshot known "
               "at `time` (universe_snapshots.known_at <= time); NULL when that snapshot does not list the coin "
               "or no snapshot was known yet"),
        Column(WARMUP_BARS_COLUMN, Integer, comment=f"hourly price bars of the coin in the {WARMUP_WINDOW_HOURS} h "
               "up to `time`: fewer for a coin listed recently or with holes"),
        Column("warmup_complete", Boolean, comment=f"{WARMUP_BARS_COLUMN} >= {WARMUP_COMPLETE_BARS}: the recursive "
               "indicators (EMA, RSI, MACD) no longer depend on where the coin's history starts; exclude rows "
               "where it is not true from training sets"),
    )


ml_features_materialized = Table(
    "ml_features_materialized",
    metadata,
    _symbol(),
    _hour(),
    Column("price", Double, nullable=False, comment="USD; a row exists only for hours with a price"),
    Column("market_cap", Double),
    Column("total_volume", Double),
    Column("return_1h", Double, comment="price / price 1h earlier - 1; NULL if that hour has no price"),
    Column("return_24h", Double, comment="price / price 24h earlier - 1; NULL if that hour has no price"),
    Column("return_7d", Double, comment="price / price 168h earlier - 1; NULL if that hour has no price"),
    *(Column(name, Double) for name in TECHNICAL_COLUMNS),
    *(column for series_id, value, age in MACRO_FEATURE_COLUMNS for column in macro_columns(series_id, value, age)),
    *(Column(f"onchain_{name}", Double, comment=f"last completed day: {comment}")
      for name, comment in ONCHAIN_METRIC_COLUMNS),
    Column("onchain_age_days", Double, comment="days from the start of the on-chain day used to `time`; "
           "NULL when no day completed in the last 7 days"),
    *(_sentiment_feature_column(name) for name in SENTIMENT_FEATURE_COLUMNS),
    Column("is_synthetic", Boolean, nullable=False, comment="true when built from sandbox data"),
    Index("ix_ml_features_time", "time"),
    *universe_feature_columns(),
    comment="One row per symbol per hour; every value knowable at `time`",
    **UTF8MB4,
)

ONCHAIN_VIEW = "onchain_metrics"
# Every column of crypto_onchain_data (built from the same list, so the two never drift apart);
# complete_at is exposed as available_at, the time from which a feature may use the row.
_ONCHAIN_VIEW_SELECT = (
    "SELECT symbol, date, data_source, is_synthetic, "
    + ", ".join(name for name, _ in ONCHAIN_METRIC_COLUMNS)
    + ", complete_at AS available_at FROM crypto_onchain_data"
)


def create_onchain_view(conn: Connection) -> None:
    """(Re)create the ``onchain_metrics`` view over ``crypto_onchain_data``."""
    if conn.dialect.name == "sqlite":  # no CREATE OR REPLACE VIEW in SQLite
        conn.execute(text(f"DROP VIEW IF EXISTS {ONCHAIN_VIEW}"))
        conn.execute(text(f"CREATE VIEW {ONCHAIN_VIEW} AS {_ONCHAIN_VIEW_SELECT}"))
    else:
        conn.execute(text(f"CREATE OR REPLACE VIEW {ONCHAIN_VIEW} AS {_ONCHAIN_VIEW_SELECT}"))


def create_all(engine: Engine) -> None:
    """Bring the warehouse to this code's schema: ``migrate.upgrade`` (create, adopt or upgrade;
    safe to run any number of times; rows are kept). Existing callers and test fixtures use it."""
    from cryptoetl.warehouse.migrate import upgrade  # migrate imports this module

    upgrade(engine)
