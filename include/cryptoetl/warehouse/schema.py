"""The warehouse schema, declared once in SQLAlchemy Core for MySQL/MariaDB and SQLite.

Conventions (see docs/DATA_DICTIONARY.md for every column):
- Times are naive UTC ``DATETIME`` values. Hourly tables key on the *start* of the hour.
- Primary keys make duplicates impossible; every writer replaces whole intervals
  (``warehouse.writes.replace_interval``), so reruns never add rows.
- A missing value is NULL, never 0 or a placeholder. Where a gap matters to a model, an
  age or count column sits beside the value.
- No load timestamps: rerunning an interval must leave the table byte-for-byte identical.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

# Float(53) is DOUBLE on MySQL and REAL (8-byte) on SQLite: prices need the full mantissa.
Double = Float(53)
# Explicit, whatever the database default: news titles and summaries need 4-byte UTF-8.
UTF8MB4 = {"mysql_charset": "utf8mb4"}


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
    **UTF8MB4,
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

# Returns over exact lags: computed with the indicators (the step already reads the warm-up bars),
# so the features rebuild copies them instead of joining prices to themselves three times.
RETURN_LAGS_HOURS = {"return_1h": 1, "return_24h": 24, "return_7d": 168}

technical_indicators = Table(
    "technical_indicators",
    metadata,
    _symbol(),
    _hour(),
    Column("close", Double, nullable=False, comment="the price the indicators are computed on"),
    *(Column(name, Double) for name in TECHNICAL_COLUMNS),
    *(Column(name, Double, comment=f"close / close {hours}h earlier - 1; NULL if that hour has no price")
      for name, hours in RETURN_LAGS_HOURS.items()),
    Index("ix_technical_indicators_time", "time"),
    comment="Hourly indicators from the `ta` library; NULL until a window has enough bars",
    **UTF8MB4,
)

macro_indicators = Table(
    "macro_indicators",
    metadata,
    Column("series_id", String(32), primary_key=True, comment="FRED series id, e.g. UNRATE"),
    Column("observation_date", Date, primary_key=True, comment="the period the value describes (its first day)"),
    Column("realtime_start", Date, primary_key=True,
           comment="rule alfred: ALFRED vintage date; rule lag: estimated FRED publication date"),
    Column("indicator_name", String(64), nullable=False, comment="readable name, from cryptoetl/macro_series.json"),
    Column("value", Double, comment="NULL when FRED reports '.' (no value)"),
    Column("known_at", DateTime(), nullable=False,
           comment="UTC time from which the value may be used: realtime_start + delay (see known_at_rule)"),
    Column("known_at_rule", String(32), nullable=False, comment="e.g. alfred+30h, lag+1bd+30h"),
    Column("frequency", String(16), nullable=False, comment="daily | weekly | monthly | quarterly"),
    Column("units", String(128), nullable=False, comment="FRED units, e.g. 'Index 2000=100, Not Seasonally Adjusted'"),
    Column("source", String(32), nullable=False, comment="fred | fred-sandbox-synthetic"),
    Index("ix_macro_indicators_series_known", "series_id", "known_at"),
    Index("ix_macro_indicators_known_at", "known_at"),
    comment="FRED/ALFRED observations with every vintage and when it became known, for point-in-time joins",
    **UTF8MB4,
)

# Daily on-chain totals. BTC from blockchain.info charts, ETH from Etherscan v2 (sources/*.py).
# A metric a source does not have is NULL, never 0: e.g. ETH has no hash rate (proof of stake),
# blockchain.info has no new-address count, a free Etherscan key gives block_count only.
ONCHAIN_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("transaction_count", "transactions confirmed in the day (BTC n-transactions, ETH dailytx)"),
    ("active_addresses", "BTC: distinct addresses used in the day (n-unique-addresses); ETH: NULL"),
    ("new_addresses", "ETH: addresses first seen in the day (dailynewaddress); BTC: NULL"),
    ("transfer_volume_usd", "BTC: estimated transaction volume, USD; ETH: NULL"),
    ("output_volume_native", "BTC: total value of transaction outputs, BTC; ETH: NULL"),
    ("fees_native", "total transaction fees of the day in the chain's coin: BTC or ETH"),
    ("fees_usd", "BTC: total transaction fees, USD; ETH: NULL (Etherscan reports ETH only)"),
    ("miners_revenue_usd", "BTC: block rewards + fees, USD; ETH: NULL"),
    ("avg_gas_price_gwei", "ETH: average gas price, gwei; BTC: NULL"),
    ("hash_rate", "BTC: TH/s; ETH: NULL (proof of stake)"),
    ("difficulty", "BTC: mining difficulty, unitless; ETH: NULL (proof of stake)"),
    ("block_count", "ETH: blocks in the day; BTC: NULL"),
    ("avg_block_size_bytes", "average block size, bytes (blockchain.info MB x 1e6)"),
    ("gas_used", "ETH: gas units used in the day; BTC: NULL"),
    ("network_utilization", "ETH: average gas used / gas limit, 0-1; BTC: NULL"),
)

crypto_onchain_data = Table(
    "crypto_onchain_data",
    metadata,
    _symbol(),
    Column("date", Date, primary_key=True, comment="UTC day the totals describe"),
    Column("data_source", String(48), nullable=False,
           comment="blockchain.info | etherscan-pro | etherscan-free, + '-sandbox-synthetic' for sandbox data"),
    Column("is_synthetic", Boolean, nullable=False, comment="true when loaded from the offline sandbox"),
    *(Column(name, Double, comment=comment) for name, comment in ONCHAIN_METRIC_COLUMNS),
    Column("complete_at", DateTime(), nullable=False,
           comment="UTC end of the day (next midnight): when the totals are final and may be used"),
    comment="Daily on-chain totals, one row per coin per completed UTC day",
    **UTF8MB4,
)

# What a news item may carry, in characters (titles and summaries beyond are stored trimmed and
# flagged; a longer canonical URL, the item's identity, sends it to crypto_news_quarantine).
TITLE_MAX_CHARS = 1_000  # real feeds' titles stay under ~300
SUMMARY_MAX_CHARS = 8_000  # TEXT holds 65,535 bytes: 4-byte UTF-8 fits 16k characters
URL_MAX_CHARS = 2_048  # browsers and CDNs cap URLs around 2k


def _is_trimmed() -> Column:
    return Column("is_trimmed", Boolean, nullable=False, default=False, server_default=false(),
                  comment="title or summary cut to the stored limit (the source's was longer)")


crypto_news = Table(
    "crypto_news",
    metadata,
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by `source`"),
    Column("source", String(64), nullable=False,
           comment="the sighting stored: guardian > rss:<feed> > cryptopanic (fixed priority)"),
    Column("title", Text, nullable=False),
    Column("summary", Text, comment="plain text; NULL when the source gives none"),
    Column("url", String(URL_MAX_CHARS), nullable=False, comment="canonical URL (no tracking parameters)"),
    Column("category", String(16), nullable=False, comment="crypto | general (from the text)"),
    Column("is_synthetic", Boolean, nullable=False, comment="true when served by the offline sandbox"),
    _is_trimmed(),
    Index("ix_crypto_news_published_at", "published_at"),
    comment="News articles, stored once whatever source or run delivered them; "
    "rebuilt from crypto_news_sightings",
    **UTF8MB4,
)

crypto_news_mentions = Table(
    "crypto_news_mentions",
    metadata,
    Column("article_id", String(64), primary_key=True),
    _symbol(),
    Index("ix_crypto_news_mentions_symbol", "symbol"),
    comment="Which configured symbols each crypto_news article mentions (title and summary)",
    **UTF8MB4,
)

crypto_news_sightings = Table(
    "crypto_news_sightings",
    metadata,
    Column("source", String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by this source"),
    Column("title", Text, nullable=False),
    Column("summary", Text),
    Column("url", String(URL_MAX_CHARS), nullable=False, comment="canonical URL"),
    Column("is_synthetic", Boolean, nullable=False),
    _is_trimmed(),
    Index("ix_crypto_news_sightings_published_at", "published_at"),
    Index("ix_crypto_news_sightings_article_id", "article_id"),
    comment="Each source's copy of each article; a source's run replaces its own rows for its interval",
    **UTF8MB4,
)

crypto_news_quarantine = Table(
    "crypto_news_quarantine",
    metadata,
    Column("source", String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by this source"),
    Column("reason", String(255), nullable=False, comment="why the item could not be stored"),
    Column("title", Text, nullable=False, comment="trimmed to the title limit"),
    Column("url", Text, nullable=False, comment="the canonical URL, trimmed to 16,000 characters"),
    Column("url_length", Integer, nullable=False, comment="characters of the full canonical URL"),
    Column("is_synthetic", Boolean, nullable=False),
    Index("ix_crypto_news_quarantine_published_at", "published_at"),
    comment="News items a source delivered that could not be stored as articles, with the reason",
    **UTF8MB4,
)

crypto_sentiment_data = Table(
    "crypto_sentiment_data",
    metadata,
    Column("article_id", String(64), primary_key=True),
    Column("model_id", String(128), primary_key=True),
    Column("model_revision", String(64), primary_key=True),
    Column("model_key", String(16), nullable=False,
           comment="cryptobert | finbert: the model's role, whatever model_id is configured for it"),
    Column("published_at", DateTime(), nullable=False, comment="copied from crypto_news for window joins"),
    Column("label", String(16), nullable=False, comment="argmax, normalised: positive | negative | neutral"),
    Column("score", Double, nullable=False, comment="P(positive|bullish) - P(negative|bearish), in [-1, 1]"),
    Column("p_positive", Double, nullable=False),
    Column("p_negative", Double, nullable=False),
    Column("p_neutral", Double, nullable=False),
    Column("text_sha256", String(64), nullable=False,
           comment="sha256 of the scored text (title + '. ' + summary): a changed text is scored again"),
    Column("is_synthetic", Boolean, nullable=False,
           comment="true when the article (sandbox) or the model (tiny demo model) is synthetic"),
    Index("ix_crypto_sentiment_published_at", "published_at"),
    comment="One score per article per model revision (loaders/sentiment.py, docs/SENTIMENT.md)",
    **UTF8MB4,
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
_PACKAGED_MACRO_SERIES = Path(__file__).resolve().parents[1] / "macro_series.json"
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
