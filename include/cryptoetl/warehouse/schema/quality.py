"""Data health: the quality gate's results and the health check's fill actions.

- ``data_quality_results``: one row per check per table per interval checked (the latest result:
  checking an interval again replaces the results of every interval inside it). An interval with a
  ``fail`` is *bad*: ``ml_features_materialized`` is not built on its hours until it passes.
- ``data_health_actions``: what the health check did about each hole it found (a backfill it
  created through Airflow's REST API, or why it did not), one row per action, kept as history.

Bookkeeping, not data for models: unlike the data tables these carry the time they were written.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table

from cryptoetl.warehouse.schema.core import UTF8MB4, Double, metadata

CHECK_STATUSES = ("pass", "warn", "fail")

data_quality_results = Table(
    "data_quality_results",
    metadata,
    Column("table_name", String(64), primary_key=True, nullable=False),
    Column("check_name", String(64), primary_key=True, nullable=False),
    Column("interval_start", DateTime(), primary_key=True, nullable=False, comment="UTC, the interval checked"),
    Column("interval_end", DateTime(), primary_key=True, nullable=False, comment="UTC, exclusive"),
    Column("status", String(8), nullable=False, comment="pass | warn | fail (a fail marks the interval bad)"),
    Column("severity", String(8), nullable=False, comment="fail: a hard check; warn: recorded, never blocks"),
    Column("observed", Double, comment="what the check measured (a count, a rate)"),
    Column("threshold", Double, comment="the limit it was held to (quality.json)"),
    Column("detail", String(1024), comment="which keys or hours, for a person"),
    Column("checked_at", DateTime(), nullable=False, comment="UTC time of the check"),
    Index("ix_data_quality_results_status", "status", "table_name"),
    comment="The quality gate: every check's latest result per table and interval",
    **UTF8MB4,
)

data_health_actions = Table(
    "data_health_actions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("created_at", DateTime(), nullable=False, comment="UTC"),
    Column("dag_id", String(250), nullable=False, comment="the DAG that fills the hole"),
    Column("table_name", String(64), nullable=False, comment="the table with the hole"),
    Column("interval_start", DateTime(), nullable=False, comment="UTC, the hole's first day"),
    Column("interval_end", DateTime(), nullable=False, comment="UTC, exclusive"),
    Column("action", String(16), nullable=False,
           comment="backfill | skipped | gave_up | absent (refilled, still empty: the source has nothing)"),
    Column("backfill_id", BigInteger, comment="Airflow's backfill id, for action backfill"),
    Column("detail", String(1024), comment="why, for a person"),
    Index("ix_data_health_actions_dag", "dag_id", "interval_start"),
    comment="What the data_health DAG did about each hole: backfills created, and why not",
    **UTF8MB4,
)
