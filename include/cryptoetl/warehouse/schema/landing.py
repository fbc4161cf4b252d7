"""Raw landing and API bookkeeping: what was fetched, so that no call is paid for twice.

- ``coingecko_chart_points``: every ``market_chart/range`` point as CoinGecko stamped it (its own
  time, not an hour bucket), for each coin.
- ``coingecko_chart_blocks``: which aligned 90-day block of a coin was fetched, up to when. A run of
  the prices step reads its interval's points from here and calls CoinGecko only for a block not
  fetched far enough yet: a 456-day history load costs about 7 calls per coin, not 456, and a retry
  does not pay again for the coins it already fetched. ``claimed_until`` lets concurrent runs
  share a block instead of both fetching it.
- ``api_rate``: the next free call slot of each source, shared by every process and pod (the
  per-minute limit holds across tasks); ``api_calls``: the calls made per source and month (the
  monthly budget).

These tables are caches and counters, not data for models: the prices step owns ``price_data_real``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, String, Table

from cryptoetl.warehouse.schema.core import UTF8MB4, Double, PreciseTime, metadata

coingecko_chart_points = Table(
    "coingecko_chart_points",
    metadata,
    Column("coingecko_id", String(128), primary_key=True, nullable=False),
    Column("ts", PreciseTime, primary_key=True, nullable=False, comment="UTC, the point's own timestamp"),
    Column("price", Double, nullable=False, comment="USD"),
    Column("market_cap", Double, comment="USD"),
    Column("total_volume", Double, comment="USD, trailing 24h"),
    Column("is_synthetic", Boolean, nullable=False, comment="true when served by the offline sandbox"),
    comment="CoinGecko market_chart/range points as fetched (raw landing; the prices step reads its hours here)",
    **UTF8MB4,
)

coingecko_chart_blocks = Table(
    "coingecko_chart_blocks",
    metadata,
    Column("coingecko_id", String(128), primary_key=True, nullable=False),
    Column("block_start", DateTime(), primary_key=True, nullable=False, comment="UTC, a 90-day boundary"),
    Column("fetched_from", DateTime(), comment="UTC: the landed points of the block start here (NULL: none yet)"),
    Column("fetched_to", DateTime(), comment="UTC: every point from fetched_from up to here is landed"),
    Column("fetched_at", DateTime(), comment="UTC time of the last fetch"),
    Column("claimed_until", DateTime(), comment="UTC: a run is fetching the block until then"),
    comment="Which aligned 90-day block of a coin's market_chart/range was fetched, up to when",
    **UTF8MB4,
)

api_rate = Table(
    "api_rate",
    metadata,
    Column("source", String(64), primary_key=True, nullable=False),
    Column("next_call_at", Double, nullable=False, comment="UNIX seconds of the next free call slot"),
    comment="The per-minute limit of each source, shared by every process: the next free call slot",
    **UTF8MB4,
)

api_calls = Table(
    "api_calls",
    metadata,
    Column("source", String(64), primary_key=True, nullable=False),
    Column("month", String(7), primary_key=True, nullable=False, comment="YYYY-MM, UTC"),
    Column("calls", Integer, nullable=False, comment="HTTP requests sent (retries included)"),
    comment="API calls made per source and month: what the monthly budget is checked against",
    **UTF8MB4,
)
