"""A point-in-time universe of any size: the coin registry, daily universe snapshots, warm-up counts.

- ``coins``: every coin the universe ever held, its permanent warehouse key (``symbol``) and its
  CoinGecko id, so that every table joins to CoinGecko and colliding tickers never merge.
- ``universe_snapshots``: CoinGecko's ``/coins/markets`` once a day, with the time it was known.
- ``technical_indicators.price_bars_30d`` and, in ``ml_features_materialized``, ``universe_rank``,
  ``price_bars_30d`` and ``warmup_complete``: rows before a coin's indicators have settled can be
  told apart. Rows computed before this revision have NULL there until their interval is rebuilt.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4"}
BARS_COMMENT = "hourly price bars of the coin in the 720 h up to this hour, this one included"


def upgrade() -> None:
    op.create_table(
        "coins",
        sa.Column("symbol", sa.String(16), primary_key=True, nullable=False),
        sa.Column("coingecko_id", sa.String(128), nullable=False, unique=True,
                  comment="CoinGecko's id: joins to CoinGecko"),
        sa.Column("ticker", sa.String(64), nullable=False,
                  comment="exchange ticker, upper-case; shared by colliding coins"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False, comment="UTC time the key was assigned"),
        comment="Every coin the universe ever held: its permanent warehouse key (symbol) and its CoinGecko id",
        **UTF8MB4)
    op.create_table(
        "universe_snapshots",
        sa.Column("known_at", sa.DateTime(), primary_key=True,
                  comment="UTC time the snapshot was taken (the API call)"),
        sa.Column("symbol", sa.String(16), primary_key=True, nullable=False),
        sa.Column("snapshot_date", sa.Date, nullable=False, comment="the daily interval the snapshot belongs to"),
        sa.Column("coingecko_id", sa.String(128), nullable=False),
        sa.Column("market_cap_rank", sa.Integer, comment="CoinGecko's rank; NULL when CoinGecko ranks it not"),
        sa.Column("market_cap", sa.Float(53),
                  comment="USD; NULL when CoinGecko reports 0 for want of a circulating supply"),
        sa.Column("price", sa.Float(53), comment="USD; NULL for a listing with no price yet"),
        sa.Column("total_volume", sa.Float(53), comment="USD, 24h"),
        sa.Column("source", sa.String(32), nullable=False, comment="coingecko | sandbox-synthetic"),
        sa.Index("ux_universe_snapshots_date_symbol", "snapshot_date", "symbol", unique=True),
        comment="The universe as CoinGecko's /coins/markets listed it once a day, with when it was known",
        **UTF8MB4)
    op.add_column("technical_indicators", sa.Column(
        "price_bars_30d", sa.Integer, comment=f"{BARS_COMMENT} (NULL on rows computed before schema 0003)"))
    for column in _feature_columns():
        op.add_column("ml_features_materialized", column)


def _feature_columns() -> list[sa.Column]:
    return [
        sa.Column("universe_rank", sa.Integer, comment="CoinGecko market-cap rank in the latest universe snapshot "
                  "known at `time` (universe_snapshots.known_at <= time); NULL when that snapshot does not list "
                  "the coin or no snapshot was known yet"),
        sa.Column("price_bars_30d", sa.Integer, comment="hourly price bars of the coin in the 720 h up to `time`: "
                  "fewer for a coin listed recently or with holes"),
        sa.Column("warmup_complete", sa.Boolean, comment="price_bars_30d >= 300: the recursive indicators (EMA, "
                  "RSI, MACD) no longer depend on where the coin's history starts; exclude rows where it is not "
                  "true from training sets"),
    ]


def downgrade() -> None:
    for column in reversed(_feature_columns()):
        with op.batch_alter_table("ml_features_materialized") as batch:
            batch.drop_column(column.name)
    with op.batch_alter_table("technical_indicators") as batch:
        batch.drop_column("price_bars_30d")
    op.drop_table("universe_snapshots")
    op.drop_table("coins")
