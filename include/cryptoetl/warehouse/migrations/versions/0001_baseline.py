"""Baseline: the warehouse schema of release 0.1.0, exactly as ``init-db`` created it before migrations.

FROZEN. Never edit this file to follow ``schema.py``: a schema change is a new revision. Every list
here is a literal copy of what 0.1.0 declared, so that a fresh warehouse replays the same history
as an old one. A warehouse created by the old ``init-db`` (tables, no ``alembic_version``) is not
re-created: ``cryptoetl.warehouse.migrate`` compares it with this revision and stamps it here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Double = sa.Float(53)  # DOUBLE on MySQL, 8-byte REAL on SQLite
# The database default may be latin1; the text columns (news titles) need 4-byte UTF-8.
UTF8MB4 = {"mysql_charset": "utf8mb4"}

TECHNICAL = ("sma_20", "sma_50", "ema_12", "ema_26", "rsi_14", "macd", "macd_signal", "macd_hist",
             "bb_upper", "bb_middle", "bb_lower", "bb_width")
RETURNS = (("return_1h", 1), ("return_24h", 24), ("return_7d", 168))
MACRO = (("UNRATE", "unemployment_rate"), ("CPIAUCSL", "cpi_all_urban"), ("A191RL1Q225SBEA", "real_gdp_growth"),
         ("FEDFUNDS", "fed_funds_rate_monthly"), ("DFF", "fed_funds_rate_daily"), ("DGS10", "treasury_10y_yield"),
         ("VIXCLS", "vix_close"), ("DTWEXBGS", "usd_broad_index"), ("DCOILWTICO", "wti_crude_oil"),
         ("IR14270", "gold_import_price_index"))
ONCHAIN = (
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
SENTIMENT_MODELS = ("cryptobert", "finbert")
SENTIMENT_SCOPES = (("sym", "articles that mention the row's symbol"), ("all", "all articles the model scores"))
SENTIMENT_WINDOWS = ("24h", "7d")
ONCHAIN_VIEW_SELECT = ("SELECT symbol, date, data_source, is_synthetic, " + ", ".join(name for name, _ in ONCHAIN)
                       + ", complete_at AS available_at FROM crypto_onchain_data")


def _symbol() -> sa.Column:
    return sa.Column("symbol", sa.String(16), primary_key=True, nullable=False)


def _hour() -> sa.Column:
    return sa.Column("time", sa.DateTime(), primary_key=True, nullable=False, comment="hour start, UTC")


def _prices_and_indicators() -> None:
    op.create_table(
        "price_data_real", _symbol(), _hour(),
        sa.Column("price", Double, nullable=False, comment="USD, first CoinGecko point in the hour"),
        sa.Column("market_cap", Double, comment="USD"),
        sa.Column("total_volume", Double, comment="USD, trailing 24h as reported by CoinGecko"),
        sa.Column("source", sa.String(32), nullable=False, comment="coingecko | sandbox-synthetic"),
        sa.Index("ix_price_data_real_time", "time"),
        comment="Hourly CoinGecko market data, one row per symbol per hour", **UTF8MB4)
    op.create_table(
        "technical_indicators", _symbol(), _hour(),
        sa.Column("close", Double, nullable=False, comment="the price the indicators are computed on"),
        *(sa.Column(name, Double) for name in TECHNICAL),
        *(sa.Column(name, Double, comment=f"close / close {hours}h earlier - 1; NULL if that hour has no price")
          for name, hours in RETURNS),
        sa.Index("ix_technical_indicators_time", "time"),
        comment="Hourly indicators from the `ta` library; NULL until a window has enough bars", **UTF8MB4)


def _macro_and_onchain() -> None:
    op.create_table(
        "macro_indicators",
        sa.Column("series_id", sa.String(32), primary_key=True, comment="FRED series id, e.g. UNRATE"),
        sa.Column("observation_date", sa.Date, primary_key=True,
                  comment="the period the value describes (its first day)"),
        sa.Column("realtime_start", sa.Date, primary_key=True,
                  comment="rule alfred: ALFRED vintage date; rule lag: estimated FRED publication date"),
        sa.Column("indicator_name", sa.String(64), nullable=False,
                  comment="readable name, from cryptoetl/macro_series.json"),
        sa.Column("value", Double, comment="NULL when FRED reports '.' (no value)"),
        sa.Column("known_at", sa.DateTime(), nullable=False,
                  comment="UTC time from which the value may be used: realtime_start + delay (see known_at_rule)"),
        sa.Column("known_at_rule", sa.String(32), nullable=False, comment="e.g. alfred+30h, lag+1bd+30h"),
        sa.Column("frequency", sa.String(16), nullable=False, comment="daily | weekly | monthly | quarterly"),
        sa.Column("units", sa.String(128), nullable=False,
                  comment="FRED units, e.g. 'Index 2000=100, Not Seasonally Adjusted'"),
        sa.Column("source", sa.String(32), nullable=False, comment="fred | fred-sandbox-synthetic"),
        sa.Index("ix_macro_indicators_series_known", "series_id", "known_at"),
        sa.Index("ix_macro_indicators_known_at", "known_at"),
        comment="FRED/ALFRED observations with every vintage and when it became known, for point-in-time joins",
        **UTF8MB4)
    op.create_table(
        "crypto_onchain_data", _symbol(),
        sa.Column("date", sa.Date, primary_key=True, comment="UTC day the totals describe"),
        sa.Column("data_source", sa.String(48), nullable=False,
                  comment="blockchain.info | etherscan-pro | etherscan-free, + '-sandbox-synthetic' for sandbox data"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False, comment="true when loaded from the offline sandbox"),
        *(sa.Column(name, Double, comment=comment) for name, comment in ONCHAIN),
        sa.Column("complete_at", sa.DateTime(), nullable=False,
                  comment="UTC end of the day (next midnight): when the totals are final and may be used"),
        comment="Daily on-chain totals, one row per coin per completed UTC day", **UTF8MB4)


def _news() -> None:
    op.create_table(
        "crypto_news",
        sa.Column("article_id", sa.String(64), primary_key=True, comment="sha256 of the canonical URL"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="UTC, as reported by `source`"),
        sa.Column("source", sa.String(64), nullable=False,
                  comment="the sighting stored: guardian > rss:<feed> > cryptopanic (fixed priority)"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, comment="plain text; NULL when the source gives none"),
        sa.Column("url", sa.String(1024), nullable=False, comment="canonical URL (no tracking parameters)"),
        sa.Column("category", sa.String(16), nullable=False, comment="crypto | general (from the text)"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False, comment="true when served by the offline sandbox"),
        sa.Index("ix_crypto_news_published_at", "published_at"),
        comment="News articles, stored once whatever source or run delivered them; rebuilt from crypto_news_sightings",
        **UTF8MB4)
    op.create_table(
        "crypto_news_mentions",
        sa.Column("article_id", sa.String(64), primary_key=True), _symbol(),
        sa.Index("ix_crypto_news_mentions_symbol", "symbol"),
        comment="Which configured symbols each crypto_news article mentions (title and summary)", **UTF8MB4)
    op.create_table(
        "crypto_news_sightings",
        sa.Column("source", sa.String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
        sa.Column("article_id", sa.String(64), primary_key=True, comment="sha256 of the canonical URL"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="UTC, as reported by this source"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("url", sa.String(1024), nullable=False, comment="canonical URL"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False),
        sa.Index("ix_crypto_news_sightings_published_at", "published_at"),
        sa.Index("ix_crypto_news_sightings_article_id", "article_id"),
        comment="Each source's copy of each article; a source's run replaces its own rows for its interval",
        **UTF8MB4)


def _sentiment() -> None:
    op.create_table(
        "crypto_sentiment_data",
        sa.Column("article_id", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(128), primary_key=True),
        sa.Column("model_revision", sa.String(64), primary_key=True),
        sa.Column("model_key", sa.String(16), nullable=False,
                  comment="cryptobert | finbert: the model's role, whatever model_id is configured for it"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="copied from crypto_news for window joins"),
        sa.Column("label", sa.String(16), nullable=False,
                  comment="argmax, normalised: positive | negative | neutral"),
        sa.Column("score", Double, nullable=False,
                  comment="P(positive|bullish) - P(negative|bearish), in [-1, 1]"),
        sa.Column("p_positive", Double, nullable=False),
        sa.Column("p_negative", Double, nullable=False),
        sa.Column("p_neutral", Double, nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False,
                  comment="sha256 of the scored text (title + '. ' + summary): a changed text is scored again"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False,
                  comment="true when the article (sandbox) or the model (tiny demo model) is synthetic"),
        sa.Index("ix_crypto_sentiment_published_at", "published_at"),
        comment="One score per article per model revision (loaders/sentiment.py, docs/SENTIMENT.md)", **UTF8MB4)


def _feature_columns() -> list[sa.Column]:
    columns = [
        sa.Column("price", Double, nullable=False, comment="USD; a row exists only for hours with a price"),
        sa.Column("market_cap", Double),
        sa.Column("total_volume", Double),
        *(sa.Column(name, Double, comment=f"price / price {hours}h earlier - 1; NULL if that hour has no price")
          for name, hours in RETURNS),
        *(sa.Column(name, Double) for name in TECHNICAL),
    ]
    for series_id, name in MACRO:
        columns += [
            sa.Column(f"macro_{name}", Double,
                      comment=f"FRED {series_id}: latest value known at `time` (known_at <= time)"),
            sa.Column(f"macro_{name}_age_days", Double,
                      comment=f"days from the start of the period the {series_id} value describes to `time`")]
    columns += [sa.Column(f"onchain_{name}", Double, comment=f"last completed day: {comment}")
                for name, comment in ONCHAIN]
    columns.append(sa.Column("onchain_age_days", Double, comment="days from the start of the on-chain day used "
                             "to `time`; NULL when no day completed in the last 7 days"))
    for model in SENTIMENT_MODELS:
        for scope, articles in SENTIMENT_SCOPES:
            for window in SENTIMENT_WINDOWS:
                what = f"{model} {articles}, published in the {window} up to `time`"
                columns += [
                    sa.Column(f"sent_{model}_{scope}_{window}_count", sa.Integer, nullable=False,
                              comment=f"number of {what} (0 when none)"),
                    sa.Column(f"sent_{model}_{scope}_{window}_mean", Double,
                              comment=f"mean score of {what}; NULL when the count is 0")]
    return columns


def _features() -> None:
    op.create_table(
        "ml_features_materialized", _symbol(), _hour(), *_feature_columns(),
        sa.Column("is_synthetic", sa.Boolean, nullable=False, comment="true when built from sandbox data"),
        sa.Index("ix_ml_features_time", "time"),
        comment="One row per symbol per hour; every value knowable at `time`", **UTF8MB4)


def upgrade() -> None:
    _prices_and_indicators()
    _macro_and_onchain()
    _news()
    _sentiment()
    _features()
    if op.get_context().dialect.name == "sqlite":  # no CREATE OR REPLACE VIEW in SQLite
        op.execute("DROP VIEW IF EXISTS onchain_metrics")
        op.execute(f"CREATE VIEW onchain_metrics AS {ONCHAIN_VIEW_SELECT}")
    else:
        op.execute(f"CREATE OR REPLACE VIEW onchain_metrics AS {ONCHAIN_VIEW_SELECT}")


def downgrade() -> None:
    # Below the baseline there is no warehouse: going there would drop every table and its rows.
    # That is a deliberate DROP DATABASE by a person, never a migration step.
    raise NotImplementedError("refusing to downgrade below the baseline: it would drop the whole warehouse")
