"""Set-based rebuild of ``ml_features_materialized``: DELETE + INSERT ... SELECT in the database.

The rows of an interval [lo, hi) are rebuilt in one transaction, entirely inside the warehouse:
no price, indicator or news row travels to Python (only per-hour rows are sent: the calendar, and
the macro values as of each hour, from the macro rows that can still be current). Small session
temporary tables hold the per-hour context first, so that the final INSERT ... SELECT
joins each indicator row (which carries its price row) to a handful of primary-key lookups. One
module per part, each with its point-in-time rule (every value knowable at the row's ``time`` T,
the hour start):

``calendar``   ``tmp_feat_hours``: the hours the context covers.
``macro``      ``tmp_feat_macro``: per hour, every macro series as of that hour, and its age.
``symbol_context``  ``tmp_feat_sym_ctx``: per (symbol, hour), the columns of the next two families.
``onchain``    its columns there: per symbol and hour, the latest on-chain day its source had published.
``sentiment``  ``tmp_feat_sent_*``: per (scope, model, hour), trailing-window counts and means.
``universe``   ``tmp_feat_snap``: per hour, the universe snapshot known then (the coin's rank).
``select``     ``tmp_feat_hour_ctx``: the per-hour tables above gathered in one (in memory), then
               the final INSERT ... SELECT (over the indicator rows, which carry their prices).

Each family also states how far past a changed input interval the features change
(``LOOKAHEAD_HOURS``, merged here): a rebuild triggered by that input covers that much more.

MySQL/MariaDB and SQLite differ only in date arithmetic (the ``dialect.Dialect`` helpers). MySQL
forbids naming a temporary table twice in one statement, so no statement does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

# sqlalchemy's select under another name: ``select`` in this package is the submodule.
from sqlalchemy import Connection, Engine, bindparam, func, text
from sqlalchemy import select as sql_select

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import is_mysql, to_naive_utc
from cryptoetl.warehouse.features import calendar, macro, onchain, sentiment, symbol_context, universe
from cryptoetl.warehouse.features import select as final
from cryptoetl.warehouse.features.dialect import Dialect
from cryptoetl.warehouse.features.macro import MACRO_MAX_AGE_DAYS
from cryptoetl.warehouse.features.onchain import ONCHAIN_MAX_AGE_DAYS
from cryptoetl.warehouse.features.select import insert_select_sql
from cryptoetl.warehouse.features.sentiment import MAX_WINDOW_HOURS
from cryptoetl.warehouse.retry import retry_transient

__all__ = ["LOOKAHEAD_HOURS", "MACRO_MAX_AGE_DAYS", "ONCHAIN_MAX_AGE_DAYS", "insert_select_sql", "price_span",
           "rebuild"]

log = logging.getLogger(__name__)

# How far past a changed input interval (by table) the features change.
LOOKAHEAD_HOURS: dict[str, int] = {**final.LOOKAHEAD_HOURS, **macro.LOOKAHEAD_HOURS, **onchain.LOOKAHEAD_HOURS,
                                   **sentiment.LOOKAHEAD_HOURS, **universe.LOOKAHEAD_HOURS}
_TEMP_TABLES = (*calendar.TEMP_TABLES, *macro.TEMP_TABLES, *symbol_context.TEMP_TABLES, *onchain.TEMP_TABLES,
                *sentiment.TEMP_TABLES, *universe.TEMP_TABLES, *final.TEMP_TABLES)


def _context_statements(d: Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :lo, :hi,
    :onchain_lo, :ext_lo_open, :hi_close (see ``rebuild``). The macro family fills its table itself."""
    symbol_columns = [*onchain.symbol_columns(d), *sentiment.spread_columns()]
    return [(symbol_context.create(d, symbol_columns), False), *onchain.context_statements(d),
            *sentiment.context_statements(d), *universe.context_statements(d)]


def _drop_temps(conn: Connection, d: Dialect) -> None:
    for sql in d.drop_temps(_TEMP_TABLES):
        conn.execute(text(sql))


def _fill_context(conn: Connection, d: Dialect, lo: datetime, hi: datetime,
                  macro_columns: Sequence[tuple[str, str, str]], params: dict) -> None:
    """Every family's temporary tables for [lo, hi), then the hour table the final statement probes."""
    calendar.fill_calendar(conn, d, lo, hi)
    macro.fill_macro(conn, d, lo, hi, macro_columns)
    for sql, expanding in _context_statements(d):
        statement = text(sql)
        if expanding:
            statement = statement.bindparams(bindparam("symbols", expanding=True))
        conn.execute(statement, params)
    for sql in final.hour_context_statements(d, macro_columns, int((hi - lo) / timedelta(hours=1))):
        conn.execute(text(sql))


def _drop_hours(conn: Connection, lo: datetime, hi: datetime, symbols: Sequence[str],
                ranges: Sequence[tuple[datetime, datetime]]) -> int:
    """Delete the feature rows of ``ranges`` inside [lo, hi); the rows deleted."""
    table = schema.ml_features_materialized
    return sum(conn.execute(table.delete().where(
        table.c.time >= max(lo, to_naive_utc(bad_lo)), table.c.time < min(hi, to_naive_utc(bad_hi)),
        table.c.symbol.in_(list(symbols)))).rowcount for bad_lo, bad_hi in ranges)


def rebuild(target: Engine | Connection, start: datetime, end: datetime, symbols: Sequence[str],
            macro_series: Iterable[tuple[str, str]] = (), exclude: Sequence[tuple[datetime, datetime]] = ()) -> int:
    """Replace the feature rows of [start, end) for ``symbols``; the rows inserted. Macro columns: the
    packaged series' and ``macro_series``'s (a custom CRYPTOETL_MACRO_SERIES; ``migrate`` adds them).
    ``exclude``: [start, end) ranges (inputs that failed their quality gate) left without rows."""
    macro_columns = schema.macro_feature_columns(macro_series)
    if start >= end:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    if lo.minute or lo.second or lo.microsecond or hi.minute or hi.second or hi.microsecond:
        raise ValueError(f"features are hourly: [{start}, {end}) must start and end on the hour")
    table = schema.ml_features_materialized

    def _write(conn: Connection) -> int:
        d = Dialect(conn.dialect.name)
        params = {
            "lo": d.param_time(lo), "hi": d.param_time(hi), "symbols": list(symbols),
            "onchain_lo": d.param_time(lo - timedelta(days=ONCHAIN_MAX_AGE_DAYS + 1)),
            "ext_lo_open": d.param_time(lo - timedelta(hours=MAX_WINDOW_HOURS)),
            "hi_close": d.param_time(hi - timedelta(hours=1)),
        }
        # The DELETE first: on SQLite it takes the write lock before anything is read (waiting for
        # other writers), instead of a read transaction that cannot be upgraded once another
        # writer has committed ("database is locked" at once, with no wait).
        deleted = conn.execute(table.delete().where(
            table.c.time >= lo, table.c.time < hi, table.c.symbol.in_(list(symbols)))).rowcount
        _drop_temps(conn, d)
        try:
            _fill_context(conn, d, lo, hi, macro_columns, params)
            statement = text(insert_select_sql(conn.dialect.name, macro_columns)).bindparams(
                bindparam("symbols", expanding=True))
            inserted = conn.execute(statement, {k: params[k] for k in ("lo", "hi", "symbols")}).rowcount
            inserted -= _drop_hours(conn, lo, hi, symbols, exclude)
        finally:
            _drop_temps(conn, d)
        log.info("ml_features_materialized: [%s, %s) rebuilt: %s rows deleted, %s inserted", lo, hi, deleted, inserted)
        return inserted

    if isinstance(target, Connection):
        return _write(target)

    def one_transaction() -> int:
        with target.connect() as conn:
            if is_mysql(conn.dialect):
                # READ COMMITTED: the INSERT ... SELECT then reads the source tables without shared
                # locks. Under MariaDB's default REPEATABLE READ it share-locks every row it reads
                # (2.5M at 80 symbols), and a technical run writing indicators meanwhile waited and
                # failed (1205) or deadlocked (1213). The rebuild still sees committed rows only.
                conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                return _write(conn)

    return retry_transient(one_transaction, what=f"ml_features_materialized [{lo}, {hi})")


def price_span(engine: Engine, symbols: Sequence[str]) -> tuple[datetime, datetime] | None:
    """[first price hour, last price hour + 1h) for a full rebuild, or None without prices."""
    p = schema.price_data_real
    with engine.connect() as conn:
        lo, hi = conn.execute(sql_select(func.min(p.c.time), func.max(p.c.time)).where(
            p.c.symbol.in_(list(symbols)))).one()
    if lo is None:
        return None
    return lo, hi + timedelta(hours=1)
