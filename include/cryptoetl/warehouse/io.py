"""Warehouse connection and the one write primitive every step uses: ``replace_interval``.

The warehouse is an Airflow connection (``cryptoetl_warehouse``): MySQL in production
through the mysql provider, a SQLite file locally. ``CRYPTOETL_WAREHOUSE_URL`` overrides
it with a plain SQLAlchemy URL (tests, or a pod whose Secret carries the URL).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time
from functools import cache

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    make_url,
    select,
)

from cryptoetl.config import ConfigError, Settings

log = logging.getLogger(__name__)


def warehouse_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the warehouse: the explicit URL, else the Airflow connection."""
    if settings.warehouse_url:
        return settings.warehouse_url
    from airflow.sdk import BaseHook  # deferred: only needed when resolving a connection

    try:
        conn = BaseHook.get_connection(settings.warehouse_conn_id)
    except Exception as exc:  # the SDK raises its own not-found type
        raise ConfigError(
            f"no warehouse: set CRYPTOETL_WAREHOUSE_URL or create the Airflow connection "
            f"{settings.warehouse_conn_id!r} (env AIRFLOW_CONN_{settings.warehouse_conn_id.upper()})"
        ) from exc
    if conn.conn_type == "mysql":
        from airflow.providers.mysql.hooks.mysql import MySqlHook

        uri = MySqlHook(mysql_conn_id=settings.warehouse_conn_id).get_uri()
        return make_url(uri).update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False)
    if conn.conn_type == "sqlite":
        if not conn.host:
            raise ConfigError(f"sqlite connection {settings.warehouse_conn_id!r} has no host (the file path)")
        return f"sqlite:///{conn.host}"
    raise ConfigError(f"connection {settings.warehouse_conn_id!r} has type {conn.conn_type!r}; use mysql or sqlite")


@cache
def get_engine(url: str) -> Engine:
    """One pooled engine per URL per process."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Several task processes write the same file locally: wait for the lock instead of
        # failing, and use WAL so readers never block the writer.
        engine = create_engine(url, connect_args={"timeout": 120})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=120000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600)


def to_naive_utc(ts: datetime | pd.Timestamp) -> datetime:
    """Aware -> naive UTC, the storage convention. Naive input is taken as UTC already."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


def _frame_records(frame: pd.DataFrame, names: list[str]) -> list[dict]:
    """Vectorised ``_records`` for a DataFrame: whole columns converted at once (the hot path of
    every bulk write), with the same result as the per-value loop."""
    columns = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert(UTC).dt.tz_localize(None)
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            values = [None if pd.isna(v) else v for v in col.dt.to_pydatetime()]
        elif col.dtype == bool:
            values = col.to_numpy().tolist()
        elif col.dtype.kind in "fiu":  # plain numpy numbers (extension dtypes take the generic path)
            arr = col.to_numpy(dtype="float64") if pd.api.types.is_float_dtype(col.dtype) else col.to_numpy()
            values = arr.tolist()  # Python floats/ints
            if pd.api.types.is_float_dtype(col.dtype):
                values = [None if v != v else v for v in values]  # NaN -> NULL
        else:
            values = [None if (v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)))
                      else (to_naive_utc(v) if isinstance(v, pd.Timestamp | datetime)
                            else (v.item() if hasattr(v, "item") else v))
                      for v in col.tolist()]
        columns[name] = values
    n = len(frame)
    missing = [name for name in names if name not in columns]
    keys = list(columns)
    out = []
    for i in range(n):
        rec = dict.fromkeys(missing)
        for key in keys:
            rec[key] = columns[key][i]
        out.append(rec)
    return out


def _records(rows: pd.DataFrame | Iterable[Mapping], table: Table) -> list[dict]:
    """Rows as plain dicts with only the table's columns; NaN/NaT become NULL."""
    names = [c.name for c in table.columns]
    if isinstance(rows, pd.DataFrame):
        missing = [c.name for c in table.columns if not c.nullable and c.name not in rows.columns]
        if missing:
            raise ValueError(f"{table.name}: rows lack required columns {missing}")
        frame = rows[[n for n in names if n in rows.columns]]
        return _frame_records(frame, names)
    else:
        records = [{k: v for k, v in dict(r).items() if k in names} for r in rows]
    out = []
    for rec in records:
        clean = dict.fromkeys(names)  # every column in every record: one executemany shape
        for key, value in rec.items():
            if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
                clean[key] = None
            elif isinstance(value, pd.Timestamp | datetime):
                clean[key] = to_naive_utc(value)
            elif hasattr(value, "item"):  # numpy scalar -> Python
                clean[key] = value.item()
            else:
                clean[key] = value
        out.append(clean)
    return out


_MYSQL_ROWS_PER_INSERT = 5000
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 ._:/+-]*$")  # no quote, backslash, comma or percent sign


def _mysql_values(frame: pd.DataFrame, table: Table, time_column: str, lo: datetime, hi: datetime,
                  keys: Mapping[str, list]) -> tuple[str, list[str]] | None:
    """Bulk-INSERT VALUES tuples for MySQL, formatted column-wise by pandas/numpy in C instead of
    value by value by the driver (the driver's escaping dominated large writes). Validates the
    scope like the generic path. Returns None when a column holds something this path does not
    format (then the generic, driver-escaped path is used): text other than plain identifiers,
    infinities, extension dtypes."""
    names = [c.name for c in table.columns if c.name in frame.columns]
    missing = [c.name for c in table.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: rows lack required columns {missing}")
    out = {}
    for name in names:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert(UTC).dt.tz_localize(None)
        if name == time_column:
            if not pd.api.types.is_datetime64_dtype(col.dtype):
                return None
            inside = (col >= pd.Timestamp(lo)) & (col < pd.Timestamp(hi))
            if not inside.all():
                bad = col[~inside].iloc[0]
                raise ValueError(f"{table.name}: row with {time_column}={bad} is outside [{lo}, {hi})")
        if name in keys and not col.isin(keys[name]).all():
            bad = col[~col.isin(keys[name])].iloc[0]
            raise ValueError(f"{table.name}: row with {name}={bad!r} is outside the keys {keys[name]}")
        if pd.api.types.is_datetime64_dtype(col.dtype):
            text_values = col.to_numpy().astype("datetime64[us]").astype(str)
            out[name] = np.where(col.isna().to_numpy(), "NULL", np.char.add(np.char.add("'", text_values), "'"))
        elif col.dtype == bool:
            out[name] = col.astype("int8").to_numpy()
        elif col.dtype.kind == "f":
            if np.isinf(col.to_numpy()).any():
                return None
            out[name] = col.to_numpy()
        elif col.dtype.kind in "iu":
            out[name] = col.to_numpy()
        elif col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            values = [None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else v
                      for v in col.tolist()]
            if not all(v is None or (isinstance(v, str) and _SAFE_TEXT.match(v)) for v in values):
                return None
            out[name] = ["NULL" if v is None else f"'{v}'" for v in values]
        else:
            return None
    text = pd.DataFrame(out, columns=names).to_csv(header=False, index=False, na_rep="NULL",
                                                   quoting=csv.QUOTE_NONE, lineterminator="\n")
    return ", ".join(names), [f"({line})" for line in text.splitlines()]


def _plain_types(table: Table) -> bool:
    """Only strings, floats and DATETIMEs: the types the MySQL driver returns exactly as SQLAlchemy would."""
    return all(isinstance(c.type, String | Float | DateTime) for c in table.columns)


def _is_date_column(table: Table, column: str) -> bool:
    return isinstance(table.c[column].type, Date) and not isinstance(table.c[column].type, DateTime)


def replace_interval(
    target: Engine | Connection,
    table: Table,
    rows: pd.DataFrame | Iterable[Mapping],
    *,
    time_column: str,
    start: datetime,
    end: datetime,
    keys: Mapping[str, Sequence] | None = None,
) -> int:
    """Replace exactly the rows of ``table`` with ``start <= time_column < end`` (and, when
    given, ``column IN values`` for each entry of ``keys``) by ``rows``, in one transaction.

    Every row must fall inside that scope, so a step can never write outside its interval;
    a violation raises before anything is touched. On any error the transaction rolls back
    and the interval keeps its previous rows. Returns the number of rows inserted.
    """
    if start >= end:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    keys = {k: list(v) for k, v in (keys or {}).items()}
    fast = None
    if isinstance(rows, pd.DataFrame) and target.dialect.name == "mysql" and not _is_date_column(table, time_column):
        fast = _mysql_values(rows, table, time_column, lo, hi, keys)
    records = [] if fast is not None else _records(rows, table)
    if _is_date_column(table, time_column):
        # A DATE column (daily tables) is scoped by whole days: [start, end) must be midnights.
        if lo.time() != time.min or hi.time() != time.min:
            raise ValueError(f"{table.name}.{time_column} is a DATE: the interval [{lo}, {hi}) must start "
                             "and end at midnight UTC")
        lo, hi = lo.date(), hi.date()
        for rec in records:
            if isinstance(rec.get(time_column), datetime):
                rec[time_column] = rec[time_column].date()
    for rec in records:
        ts = rec.get(time_column)
        if ts is None or not (lo <= ts < hi):
            raise ValueError(f"{table.name}: row with {time_column}={ts} is outside [{lo}, {hi})")
        for col, allowed in keys.items():
            if rec.get(col) not in allowed:
                raise ValueError(f"{table.name}: row with {col}={rec.get(col)!r} is outside the keys {allowed}")

    time_col = table.c[time_column]
    where = [time_col >= lo, time_col < hi] + [table.c[col].in_(vals) for col, vals in keys.items()]

    def _write(conn: Connection) -> int:
        deleted = conn.execute(delete(table).where(*where)).rowcount
        if fast is not None:
            columns, values = fast
            for i in range(0, len(values), _MYSQL_ROWS_PER_INSERT):
                conn.exec_driver_sql(f"INSERT INTO {table.name} ({columns}) VALUES "
                                     + ",".join(values[i:i + _MYSQL_ROWS_PER_INSERT]))
            inserted = len(values)
        else:
            if records:
                conn.execute(insert(table), records)
            inserted = len(records)
        log.info("%s: replaced [%s, %s): %s rows deleted, %s inserted", table.name, lo, hi, deleted, inserted)
        return inserted

    if isinstance(target, Connection):
        # Caller owns the transaction (several tables in one commit).
        return _write(target)
    with target.begin() as conn:
        return _write(conn)


def read_frame(target: Engine | Connection, table: Table, *, time_column: str, start: datetime,
               end: datetime, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of [start, end) ordered by (symbol, time), with times as aware UTC."""
    cols = table.c
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    if _is_date_column(table, time_column):
        lo, hi = lo.date(), hi.date()
    stmt = select(table).where(cols[time_column] >= lo, cols[time_column] < hi)
    if symbols is not None and "symbol" in cols:
        stmt = stmt.where(cols["symbol"].in_(list(symbols)))
    if "symbol" in cols:
        stmt = stmt.order_by(cols["symbol"], cols[time_column])
    else:
        stmt = stmt.order_by(cols[time_column])
    def _fetch(conn: Connection) -> pd.DataFrame:
        if conn.dialect.name == "mysql" and _plain_types(table):
            # Large reads (a warm-up window for hundreds of symbols): the DBAPI cursor returns
            # datetimes and floats already converted in C; skipping SQLAlchemy's per-row
            # processing makes this ~2x faster. Same rows, same types for these columns.
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute(str(compiled), tuple(compiled.params[k] for k in compiled.positiontup))
                columns = [d[0] for d in cursor.description]
                return pd.DataFrame.from_records(list(cursor.fetchall()), columns=columns)
            finally:
                cursor.close()
        result = conn.execute(stmt)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    if isinstance(target, Connection):
        frame = _fetch(target)
    else:
        with target.connect() as conn:
            frame = _fetch(conn)
    if not frame.empty and not _is_date_column(table, time_column):
        frame[time_column] = pd.to_datetime(frame[time_column]).dt.tz_localize(UTC)
    return frame
