"""``read_frame``: the one way steps read an interval of a warehouse table back into pandas, in
the writes' conventions reversed (naive UTC in storage -> aware UTC in the frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Column, Connection, Engine, Select, Table, select

from cryptoetl.warehouse.engine import is_date_column, is_mysql, to_naive_utc
from cryptoetl.warehouse.mysql_bulk import plain_types, read_plain


def read_frame(target: Engine | Connection, table: Table, *, time_column: str, start: datetime,
               end: datetime, symbols: Sequence[str] | None = None,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of [start, end) ordered by (symbol, time), with times as aware UTC. ``columns``
    (default: all) selects fewer columns, in that order."""
    cols = table.c
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    if is_date_column(table, time_column):
        lo, hi = lo.date(), hi.date()
    selected = [cols[name] for name in columns] if columns is not None else list(cols)
    stmt = select(*selected).where(cols[time_column] >= lo, cols[time_column] < hi)
    if symbols is not None and "symbol" in cols:
        stmt = stmt.where(cols["symbol"].in_(list(symbols)))
    if "symbol" in cols:
        stmt = stmt.order_by(cols["symbol"], cols[time_column])
    else:
        stmt = stmt.order_by(cols[time_column])

    if isinstance(target, Connection):
        frame = _fetch(target, table, stmt, selected)
    else:
        with target.connect() as conn:
            frame = _fetch(conn, table, stmt, selected)
    if not frame.empty and not is_date_column(table, time_column):
        frame[time_column] = pd.to_datetime(frame[time_column]).dt.tz_localize(UTC)
    return frame


def _fetch(conn: Connection, table: Table, stmt: Select, selected: Sequence[Column]) -> pd.DataFrame:
    if is_mysql(conn.dialect) and plain_types(table):
        return read_plain(conn, stmt, selected)  # large reads: see read_plain for why
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
