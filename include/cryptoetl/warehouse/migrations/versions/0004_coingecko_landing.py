"""Quota-aware CoinGecko history: the raw landing store, shared call slots and call counts, and each
price point's own timestamp.

- ``coingecko_chart_points`` and ``coingecko_chart_blocks``: market_chart/range points as fetched, by
  aligned 90-day block, so that the runs of one block read them instead of calling again.
- ``api_rate`` (the next free call slot per source, shared by every process) and ``api_calls`` (calls
  per source and month, for the monthly budget).
- ``price_data_real.observed_at``: the CoinGecko timestamp of the point that stands for the hour.
  Rows loaded before this revision have NULL there until their interval is reloaded.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4"}
# a point in time as the API stamped it, to the millisecond (MySQL's DATETIME keeps whole seconds)
PRECISE_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
PRICE_COMMENT = "USD, the latest CoinGecko point known at `time` (stamped at most 5 minutes after it)"


def upgrade() -> None:
    op.create_table(
        "coingecko_chart_points",
        sa.Column("coingecko_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("ts", PRECISE_TIME, primary_key=True, nullable=False, comment="UTC, the point's own timestamp"),
        sa.Column("price", sa.Float(53), nullable=False, comment="USD"),
        sa.Column("market_cap", sa.Float(53), comment="USD"),
        sa.Column("total_volume", sa.Float(53), comment="USD, trailing 24h"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False, comment="true when served by the offline sandbox"),
        comment="CoinGecko market_chart/range points as fetched (raw landing; the prices step reads its hours "
                "here)",
        **UTF8MB4)
    op.create_table(
        "coingecko_chart_blocks",
        sa.Column("coingecko_id", sa.String(128), primary_key=True, nullable=False),
        sa.Column("block_start", sa.DateTime(), primary_key=True, nullable=False,
                  comment="UTC, a 90-day boundary"),
        sa.Column("fetched_from", sa.DateTime(),
                  comment="UTC: the landed points of the block start here (NULL: none yet)"),
        sa.Column("fetched_to", sa.DateTime(), comment="UTC: every point from fetched_from up to here is landed"),
        sa.Column("fetched_at", sa.DateTime(), comment="UTC time of the last fetch"),
        sa.Column("claimed_until", sa.DateTime(), comment="UTC: a run is fetching the block until then"),
        comment="Which aligned 90-day block of a coin's market_chart/range was fetched, up to when",
        **UTF8MB4)
    op.create_table(
        "api_rate",
        sa.Column("source", sa.String(64), primary_key=True, nullable=False),
        sa.Column("next_call_at", sa.Float(53), nullable=False, comment="UNIX seconds of the next free call slot"),
        comment="The per-minute limit of each source, shared by every process: the next free call slot",
        **UTF8MB4)
    op.create_table(
        "api_calls",
        sa.Column("source", sa.String(64), primary_key=True, nullable=False),
        sa.Column("month", sa.String(7), primary_key=True, nullable=False, comment="YYYY-MM, UTC"),
        sa.Column("calls", sa.Integer, nullable=False, comment="HTTP requests sent (retries included)"),
        comment="API calls made per source and month: what the monthly budget is checked against",
        **UTF8MB4)
    if op.get_bind().dialect.name != "sqlite":  # SQLite keeps no comments
        op.alter_column("price_data_real", "price", existing_type=sa.Float(53), existing_nullable=False,
                        comment=PRICE_COMMENT)
    op.add_column("price_data_real", sa.Column(
        "observed_at", PRECISE_TIME,
        comment="UTC, the point's own CoinGecko timestamp (NULL on rows loaded before schema 0004)"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("price_data_real", "price", existing_type=sa.Float(53), existing_nullable=False,
                        comment="USD, first CoinGecko point in the hour")
    with op.batch_alter_table("price_data_real") as batch:
        batch.drop_column("observed_at")
    for table in ("api_calls", "api_rate", "coingecko_chart_blocks", "coingecko_chart_points"):
        op.drop_table(table)
