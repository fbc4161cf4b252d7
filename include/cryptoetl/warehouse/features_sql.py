"""Set-based rebuild of ``ml_features_materialized``: DELETE + INSERT ... SELECT in the database.

The rows of an interval are rebuilt in one transaction, entirely inside the warehouse: no row
travels to Python. The statement is the same on MySQL/MariaDB and SQLite except for "this hour
minus N hours", which each dialect spells its own way (``_minus_hours``).

``transforms/features.py`` is the reference implementation of the same rules in pandas; the
tests check that both agree on data with gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from cryptoetl.transforms.features import RETURN_LAGS_HOURS
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.io import to_naive_utc

log = logging.getLogger(__name__)


def _minus_hours(dialect: str, column: str, hours: int) -> str:
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite DATETIMEs as 'YYYY-MM-DD HH:MM:SS.ffffff'; hourly keys have no
        # fractional seconds, so the shifted key is rebuilt in exactly that form.
        return f"(datetime({column}, '-{hours} hours') || '.000000')"
    return f"({column} - INTERVAL {hours} HOUR)"


def insert_select_sql(dialect: str) -> str:
    """The INSERT ... SELECT that builds every feature row of [:lo, :hi) for :symbols."""
    returns = ",\n       ".join(
        f"p.price / p{hours}.price - 1.0 AS {name}" for name, hours in RETURN_LAGS_HOURS.items())
    lag_joins = "\n".join(
        f"LEFT JOIN price_data_real p{hours} ON p{hours}.symbol = p.symbol "
        f"AND p{hours}.time = {_minus_hours(dialect, 'p.time', hours)}"
        for hours in RETURN_LAGS_HOURS.values())
    technical = ", ".join(f"t.{name}" for name in schema.TECHNICAL_COLUMNS)
    columns = ", ".join(["symbol", "time", *schema.FEATURE_COLUMNS, "is_synthetic"])
    return f"""INSERT INTO ml_features_materialized ({columns})
SELECT p.symbol, p.time, p.price, p.market_cap, p.total_volume,
       {returns},
       {technical},
       CASE WHEN p.source = 'coingecko' THEN 0 ELSE 1 END AS is_synthetic
FROM price_data_real p
{lag_joins}
LEFT JOIN technical_indicators t ON t.symbol = p.symbol AND t.time = p.time
WHERE p.time >= :lo AND p.time < :hi AND p.symbol IN :symbols"""


def rebuild(target: Engine | Connection, start: datetime, end: datetime, symbols: Sequence[str]) -> int:
    """Replace the feature rows of [start, end) for ``symbols``; returns the rows inserted."""
    if start >= end:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    params = {"lo": lo, "hi": hi, "symbols": list(symbols)}
    table = schema.ml_features_materialized

    def _write(conn: Connection) -> int:
        dialect = conn.dialect.name
        deleted = conn.execute(table.delete().where(
            table.c.time >= lo, table.c.time < hi, table.c.symbol.in_(list(symbols)))).rowcount
        statement = text(insert_select_sql(dialect)).bindparams(bindparam("symbols", expanding=True))
        inserted = conn.execute(statement, params).rowcount
        log.info("ml_features_materialized: rebuilt [%s, %s) in SQL: %s rows deleted, %s inserted",
                 lo, hi, deleted, inserted)
        return inserted

    if isinstance(target, Connection):
        return _write(target)
    with target.begin() as conn:
        return _write(conn)


def price_span(engine: Engine, symbols: Sequence[str]) -> tuple[datetime, datetime] | None:
    """[first price hour, last price hour + 1h) for a full rebuild, or None without prices."""
    p = schema.price_data_real
    with engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(p.c.time), func.max(p.c.time)).where(
            p.c.symbol.in_(list(symbols)))).one()
    if lo is None:
        return None
    return lo, hi + timedelta(hours=1)
