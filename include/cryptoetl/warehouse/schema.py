"""The warehouse schema, declared once in SQLAlchemy Core for MySQL/MariaDB and SQLite.

Conventions (see docs/DATA_DICTIONARY.md for every column):
- Times are naive UTC ``DATETIME`` values. Hourly tables key on the *start* of the hour.
- Primary keys make duplicates impossible; every writer replaces whole intervals
  (``warehouse.io.replace_interval``), so reruns never add rows.
- A missing value is NULL, never 0 or a placeholder. Where a gap matters to a model, an
  age or count column sits beside the value.
- No load timestamps: rerunning an interval must leave the table byte-for-byte identical.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# Float(53) is DOUBLE on MySQL and REAL (8-byte) on SQLite: prices need the full mantissa.
Double = Float(53)


def _symbol(primary_key: bool = True) -> Column:
    return Column("symbol", String(16), primary_key=primary_key, nullable=False)


def _hour(primary_key: bool = True) -> Column:
    return Column("time", DateTime(), primary_key=primary_key, nullable=False, comment="hour start, UTC")


price_data_real = Table(
    "price_data_real",
    metadata,
    _symbol(),
    _hour(),
    Column("price", Double, nullable=False, comment="USD, first CoinGecko point in the hour"),
    Column("market_cap", Double, comment="USD"),
    Column("total_volume", Double, comment="USD, trailing 24h as reported by CoinGecko"),
    Column("source", String(32), nullable=False, comment="coingecko | sandbox-synthetic"),
    Index("ix_price_data_real_time", "time"),
    comment="Hourly CoinGecko market data, one row per symbol per hour",
)

TECHNICAL_COLUMNS = (
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "bb_width",
)

technical_indicators = Table(
    "technical_indicators",
    metadata,
    _symbol(),
    _hour(),
    Column("close", Double, nullable=False, comment="the price the indicators are computed on"),
    *(Column(name, Double) for name in TECHNICAL_COLUMNS),
    Index("ix_technical_indicators_time", "time"),
    comment="Hourly indicators from the `ta` library; NULL until a window has enough bars",
)

macro_indicators = Table(
    "macro_indicators",
    metadata,
    Column("series_id", String(32), primary_key=True, comment="FRED series id, e.g. UNRATE"),
    Column("observation_date", Date, primary_key=True, comment="the period the value describes"),
    Column("realtime_start", Date, primary_key=True, comment="ALFRED vintage start: day first published"),
    Column("indicator_name", String(64), nullable=False),
    Column("value", Double, comment="NULL when FRED reports '.' (no value)"),
    Column("known_at", DateTime(), nullable=False, comment="UTC time from which the value may be used"),
    Column("source", String(32), nullable=False),
    Index("ix_macro_indicators_series_known", "series_id", "known_at"),
    comment="FRED/ALFRED observations with their vintages, for point-in-time joins",
)

crypto_onchain_data = Table(
    "crypto_onchain_data",
    metadata,
    _symbol(),
    Column("date", Date, primary_key=True, comment="UTC day the totals describe"),
    Column("data_source", String(32), nullable=False),
    Column("transaction_count", Double),
    Column("active_addresses", Double),
    Column("hash_rate", Double, comment="BTC: TH/s"),
    Column("difficulty", Double),
    Column("fees_usd", Double),
    Column("complete_at", DateTime(), nullable=False, comment="UTC end of the day: when the totals are final"),
    comment="Daily on-chain totals, one row per coin per day",
)

crypto_news = Table(
    "crypto_news",
    metadata,
    Column("article_id", String(64), primary_key=True, comment="sha256 of the normalised URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC"),
    Column("source", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text),
    Column("url", String(1024), nullable=False),
    Column("category", String(16), nullable=False, comment="crypto | general"),
    Index("ix_crypto_news_published_at", "published_at"),
    comment="News articles, stored once whatever source or run delivered them",
)

crypto_news_mentions = Table(
    "crypto_news_mentions",
    metadata,
    Column("article_id", String(64), primary_key=True),
    _symbol(),
    Index("ix_crypto_news_mentions_symbol", "symbol"),
    comment="Which symbols each article mentions",
)

crypto_sentiment_data = Table(
    "crypto_sentiment_data",
    metadata,
    Column("article_id", String(64), primary_key=True),
    Column("model_id", String(128), primary_key=True),
    Column("model_revision", String(64), primary_key=True),
    Column("published_at", DateTime(), nullable=False, comment="copied from crypto_news for window joins"),
    Column("label", String(16), nullable=False),
    Column("score", Double, nullable=False, comment="P(positive|bullish) - P(negative|bearish), in [-1, 1]"),
    Column("p_positive", Double, nullable=False),
    Column("p_negative", Double, nullable=False),
    Column("p_neutral", Double, nullable=False),
    Index("ix_crypto_sentiment_published_at", "published_at"),
    comment="One score per article per model revision",
)

FEATURE_COLUMNS = (
    "price",
    "market_cap",
    "total_volume",
    "return_1h",
    "return_24h",
    "return_7d",
    *TECHNICAL_COLUMNS,
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
    Column("is_synthetic", Boolean, nullable=False, comment="true when built from sandbox data"),
    Index("ix_ml_features_time", "time"),
    comment="One row per symbol per hour; every value knowable at `time`",
)

ONCHAIN_VIEW = "onchain_metrics"
_ONCHAIN_VIEW_SELECT = (
    "SELECT symbol, date, data_source, transaction_count, active_addresses, hash_rate, "
    "difficulty, fees_usd, complete_at AS available_at FROM crypto_onchain_data"
)


def create_all(engine: Engine) -> None:
    """Create every table, index and view; safe to run any number of times."""
    metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE VIEW IF NOT EXISTS {ONCHAIN_VIEW} AS {_ONCHAIN_VIEW_SELECT}"))
        else:
            conn.execute(text(f"CREATE OR REPLACE VIEW {ONCHAIN_VIEW} AS {_ONCHAIN_VIEW_SELECT}"))
