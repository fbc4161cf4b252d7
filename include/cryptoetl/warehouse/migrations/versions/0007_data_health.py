"""Data health: the quality gate's results and the health check's fill actions.

- ``data_quality_results``: the latest result of every check per table and interval checked; a
  ``fail`` marks the interval bad (the features are not built on it until it passes).
- ``data_health_actions``: the backfills the ``data_health`` DAG created to fill holes, and why it
  left others alone.

New tables only. Intervals loaded before this revision have no results: the health check finds
holes from the data itself, so they are covered all the same.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "data_quality_results",
        sa.Column("table_name", sa.String(64), primary_key=True, nullable=False),
        sa.Column("check_name", sa.String(64), primary_key=True, nullable=False),
        sa.Column("interval_start", sa.DateTime(), primary_key=True, nullable=False,
                  comment="UTC, the interval checked"),
        sa.Column("interval_end", sa.DateTime(), primary_key=True, nullable=False, comment="UTC, exclusive"),
        sa.Column("status", sa.String(8), nullable=False, comment="pass | warn | fail (a fail marks the interval bad)"),
        sa.Column("severity", sa.String(8), nullable=False, comment="fail: a hard check; warn: recorded, never blocks"),
        sa.Column("observed", sa.Float(53), comment="what the check measured (a count, a rate)"),
        sa.Column("threshold", sa.Float(53), comment="the limit it was held to (quality.json)"),
        sa.Column("detail", sa.String(1024), comment="which keys or hours, for a person"),
        sa.Column("checked_at", sa.DateTime(), nullable=False, comment="UTC time of the check"),
        comment="The quality gate: every check's latest result per table and interval",
        **UTF8MB4)
    op.create_index("ix_data_quality_results_status", "data_quality_results", ["status", "table_name"])
    op.create_table(
        "data_health_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(), nullable=False, comment="UTC"),
        sa.Column("dag_id", sa.String(250), nullable=False, comment="the DAG that fills the hole"),
        sa.Column("table_name", sa.String(64), nullable=False, comment="the table with the hole"),
        sa.Column("interval_start", sa.DateTime(), nullable=False, comment="UTC, the hole's first day"),
        sa.Column("interval_end", sa.DateTime(), nullable=False, comment="UTC, exclusive"),
        sa.Column("action", sa.String(16), nullable=False,
                  comment="backfill | skipped | gave_up | absent (refilled, still empty: the source has nothing)"),
        sa.Column("backfill_id", sa.BigInteger, comment="Airflow's backfill id, for action backfill"),
        sa.Column("detail", sa.String(1024), comment="why, for a person"),
        comment="What the data_health DAG did about each hole: backfills created, and why not",
        **UTF8MB4)
    op.create_index("ix_data_health_actions_dag", "data_health_actions", ["dag_id", "interval_start"])


def downgrade() -> None:
    op.drop_table("data_health_actions")
    op.drop_table("data_quality_results")
