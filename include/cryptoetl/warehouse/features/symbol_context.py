"""``tmp_feat_sym_ctx``: per (symbol, hour), the context of every family that has one (on-chain, the
symbol's own sentiment) in one table, so that each feature row probes one (symbol, hour) table instead
of one per family. Each family upserts its own columns (``Dialect.upsert``), in any order; a
(symbol, hour) that only one family has keeps NULL in the other's columns."""

from __future__ import annotations

from collections.abc import Sequence

from cryptoetl.warehouse.features.dialect import Dialect

TABLE = "tmp_feat_sym_ctx"
KEY = ("symbol", "time")
TEMP_TABLES = (TABLE,)


def create(d: Dialect, columns: Sequence[tuple[str, str]]) -> str:
    """The table, with every family's (name, SQL type) ``columns``, all nullable."""
    body = ", ".join([f"symbol VARCHAR(16) NOT NULL, time {d.datetime_type} NOT NULL",
                      *(f"{name} {kind} NULL" for name, kind in columns), f"PRIMARY KEY ({', '.join(KEY)})"])
    return d.create_temp(TABLE, body)


def upsert(d: Dialect, columns: Sequence[str], select: str) -> str:
    """Write a family's ``columns`` from ``select`` (symbol, time, then the columns; ending in WHERE)."""
    return d.upsert(TABLE, KEY, columns, select)
