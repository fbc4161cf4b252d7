"""Market tables: prices, the universe, indicators, macro and on-chain data."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
)

from cryptoetl.warehouse.schema.core import UTF8MB4, Double, PreciseTime, _hour, _symbol, metadata

price_data_real = Table(
    "price_data_real",
    metadata,
    _symbol(),
    _hour(),
    Column("price", Double, nullable=False, comment="USD, the latest CoinGecko point known at `time` "
           "(stamped at most 5 minutes after it)"),
    Column("market_cap", Double, comment="USD"),
    Column("total_volume", Double, comment="USD, trailing 24h as reported by CoinGecko"),
    Column("source", String(32), nullable=False, comment="coingecko | sandbox-synthetic"),
    Column("observed_at", PreciseTime, comment="UTC, the point's own CoinGecko timestamp (NULL on rows "
           "loaded before schema 0004)"),
    Index("ix_price_data_real_time", "time"),
    comment="Hourly CoinGecko market data, one row per symbol per hour",
    **UTF8MB4,
)

coins = Table(
    "coins",
    metadata,
    _symbol(),
    Column("coingecko_id", String(128), nullable=False, unique=True, comment="CoinGecko's id: joins to CoinGecko"),
    Column("ticker", String(64), nullable=False, comment="exchange ticker, upper-case; shared by colliding coins"),
    Column("name", String(255), nullable=False),
    Column("first_seen_at", DateTime(), nullable=False, comment="UTC time the key was assigned"),
    comment="Every coin the universe ever held: its permanent warehouse key (symbol) and its CoinGecko id",
    **UTF8MB4,
)

universe_snapshots = Table(
    "universe_snapshots",
    metadata,
    Column("known_at", DateTime(), primary_key=True, comment="UTC time the snapshot was taken (the API call)"),
    _symbol(),
    Column("snapshot_date", Date, nullable=False, comment="the daily interval the snapshot belongs to"),
    Column("coingecko_id", String(128), nullable=False),
    Column("market_cap_rank", Integer, comment="CoinGecko's rank; NULL when CoinGecko ranks it not"),
    Column("market_cap", Double, comment="USD; NULL when CoinGecko reports 0 for want of a circulating supply"),
    Column("price", Double, comment="USD; NULL for a listing with no price yet"),
    Column("total_volume", Double, comment="USD, 24h"),
    Column("source", String(32), nullable=False, comment="coingecko | sandbox-synthetic"),
    # one snapshot a day: a second run of the day (concurrent, or a retry) cannot add another
    Index("ux_universe_snapshots_date_symbol", "snapshot_date", "symbol", unique=True),
    comment="The universe as CoinGecko's /coins/markets listed it once a day, with when it was known",
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

# Warm-up: the `ta` library seeds its recursive averages (EMA, RSI, MACD) at the first bar it is given,
# so in a coin's first few hundred hours they differ from Wilder's and TA-Lib's (RSI by up to ~7
# points). Rows count the coin's bars in the trailing 720 h; an indicator is settled from 300 bars on
# ((13/14)**300 ~ 2e-10 of the seed left in RSI, less in EMA 26).
WARMUP_BARS_COLUMN = "price_bars_30d"
WARMUP_WINDOW_HOURS = 720
WARMUP_COMPLETE_BARS = 300

# Returns over exact lags: computed with the indicators (the step already reads the warm-up bars),
# so the features rebuild copies them instead of joining prices to themselves three times.
RETURN_LAGS_HOURS = {"return_1h": 1, "return_24h": 24, "return_7d": 168}

# The rest of the price row, copied by the technical step with ``close``: the features rebuild then
# reads one table (a lookup into prices per row was ~8 % of a full rebuild at 320 coins x 456 days).
PRICE_ROW_COLUMNS = ("market_cap", "total_volume", "source")

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
    Column(WARMUP_BARS_COLUMN, Integer, comment=f"hourly price bars of the coin in the {WARMUP_WINDOW_HOURS} h up to "
           "this hour, this one included (NULL on rows computed before schema 0003)"),
    *(Column(name, price_data_real.c[name].type, comment=f"the price row's {name} (price_data_real.{name})")
      for name in PRICE_ROW_COLUMNS),
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
           comment="UTC time from which the totals may be used: the next midnight + the source's "
                   "publication delay"),
    comment="Daily on-chain totals, one row per coin per completed UTC day",
    **UTF8MB4,
)

# What a news item may carry, in characters (titles and summaries beyond are stored trimmed and
