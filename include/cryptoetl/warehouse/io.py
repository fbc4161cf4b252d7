"""Warehouse connection and the one write primitive every step uses: ``replace_interval``.

The warehouse is an Airflow connection (``cryptoetl_warehouse``): MySQL in production
through the mysql provider, a SQLite file locally. ``CRYPTOETL_WAREHOUSE_URL`` overrides
it with a plain SQLAlchemy URL (tests, or a pod whose Secret carries the URL).
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time
from functools import cache

import msgspec
import numpy as np
import pandas as pd
from sqlalchemy import (
    CHAR,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    String,
    Table,
    UniqueConstraint,
    cast,
    create_engine,
    delete,
    event,
    func,
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
_JSON_NUMBERS = msgspec.json.Encoder()


def _mysql_values(frame: pd.DataFrame, table: Table, time_column: str, lo: datetime, hi: datetime,
                  keys: Mapping[str, list]) -> tuple[str, list[str]] | None:
    """Bulk-INSERT VALUES tuples for MySQL, formatted column-wise in C instead of value by value by
    the driver (the driver's escaping dominated large writes). Validates the scope like the generic
    path. Returns None when a column holds something this path does not format (then the generic,
    driver-escaped path is used): text other than plain identifiers, infinities, extension dtypes.

    Numbers are written by msgspec's JSON encoder: the shortest text that reads back as the same
    double (what ``repr`` gives, ~10x faster than ``repr``/``to_csv``), ``null`` for NaN (SQL keywords
    are case-insensitive: NULL). Datetimes and identifiers become quoted literals."""
    names = [c.name for c in table.columns if c.name in frame.columns]
    missing = [c.name for c in table.columns if not c.nullable and c.name not in frame.columns]
    if missing:
        raise ValueError(f"{table.name}: rows lack required columns {missing}")
    literals: dict[str, list[str]] = {}  # SQL literals, one per row
    numbers: dict[str, np.ndarray] = {}  # encoded as JSON numbers, NaN as null
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
            # Each distinct time formatted once (all symbols share the hours); NaT -> NULL.
            codes, uniques = pd.factorize(col.to_numpy().astype("datetime64[us]"))
            micros = np.asarray(uniques, dtype="datetime64[us]")
            unit = "s" if not (micros.astype("int64") % 1_000_000).any() else "us"
            quoted = [f"'{v}'" for v in micros.astype(f"datetime64[{unit}]").astype(str).tolist()]
            literals[name] = np.array([*quoted, "NULL"], dtype=object)[codes].tolist()  # code -1: NULL
        elif col.dtype == bool:
            numbers[name] = col.to_numpy().astype("int8")
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
            arr = col.to_numpy()
            if np.isinf(arr).any():
                return None
            numbers[name] = arr
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
            numbers[name] = col.to_numpy()
        elif col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            codes, uniques = pd.factorize(col.to_numpy(dtype=object))  # None/NaN/NA: code -1
            values = list(uniques)
            if not all(isinstance(v, str) and _SAFE_TEXT.match(v) for v in values):
                return None
            literals[name] = np.array([*(f"'{v}'" for v in values), "NULL"], dtype=object)[codes].tolist()
        else:
            return None
    columns = ", ".join([*literals, *numbers])
    if len(frame) == 0 or not names:
        return columns, []
    parts = list(literals.values())
    if numbers:
        arrays = list(numbers.values())
        if all(a.dtype == np.float64 for a in arrays):
            matrix = np.column_stack(arrays).tolist()  # one C pass to Python floats
        else:  # ints stay ints
            matrix = list(zip(*(a.tolist() for a in arrays), strict=True))
        encoded = _JSON_NUMBERS.encode(matrix).decode("ascii")  # [[1.5,null],[2.0,3e-300]]
        parts.append(encoded[2:-2].split("],["))
    template = "(" + ",".join(["{}"] * len(parts)) + ")"
    return columns, list(map(template.format, *parts))


def _plain_types(table: Table) -> bool:
    """Only strings, floats and DATETIMEs: the types the MySQL driver returns exactly as SQLAlchemy would."""
    return all(isinstance(c.type, String | Float | DateTime) for c in table.columns)


def _is_date_column(table: Table, column: str) -> bool:
    return isinstance(table.c[column].type, Date) and not isinstance(table.c[column].type, DateTime)


Rows = pd.DataFrame | Iterable[Mapping]


def replace_interval(
    target: Engine | Connection,
    table: Table,
    rows: Rows,
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
    return replace_interval_parts(target, table, [(keys, rows)], time_column=time_column, start=start, end=end)


def replace_interval_parts(
    target: Engine | Connection,
    table: Table,
    parts: Iterable[tuple[Mapping[str, Sequence] | None, Rows]],
    *,
    time_column: str,
    start: datetime,
    end: datetime,
    prefetch: bool = False,
) -> int:
    """``replace_interval`` streamed part by part, still in ONE transaction: each part is
    ``(keys, rows)``, and for each part in turn its rows are checked against the part's scope
    (``[start, end)`` and ``keys``), the scope is deleted and the rows are inserted. Large
    replacements (a full backfill of hundreds of symbols) thus never hold every row in memory.

    The parts' scopes must not overlap: their ``keys`` must differ in some column's values
    (a part without keys covers the whole interval and must be the only one). A bad part, a
    failing insert or an exception raised by ``parts`` itself rolls the whole transaction back:
    every part's scope keeps its previous rows. Committed only after the last part.

    ``prefetch=True`` (MySQL): the next part is produced and formatted in a background thread
    while the current one is written, so reading and computing overlap with the server's work.
    ``parts`` is then iterated in that thread, so it must not use ``target``'s connection.
    Returns the number of rows inserted.
    """
    if start >= end:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    dialect = target.dialect
    iterator = iter(parts)

    def _prepared():
        try:
            for keys, rows in iterator:
                yield _prepare_part(dialect, table, keys, rows, time_column, lo, hi)
        finally:  # e.g. a generator holding its own read connection
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    source = _Prefetch(_prepared()) if prefetch else _prepared()

    def _write(conn: Connection) -> int:
        inserted = deleted = 0
        seen: list[dict[str, list]] = []
        try:
            for part in source:
                _check_disjoint(table, part.keys, seen)
                if part.values is not None and part.replace_ok:
                    # Rerun over existing rows: REPLACE updates each same-key row in place (the PK is
                    # the only unique key), ~4x cheaper than DELETE + INSERT of millions of rows. Then
                    # the scope must hold exactly the new rows; if older rows are left (keys the new
                    # rows lack), fall back to DELETE + INSERT, still in this transaction.
                    columns, values = part.values
                    _mysql_insert(conn, "REPLACE", table, columns, values)
                    in_scope = conn.execute(select(func.count()).select_from(table).where(*part.where)).scalar_one()
                    if in_scope != len(values):
                        deleted += conn.execute(delete(table).where(*part.where)).rowcount
                        _mysql_insert(conn, "INSERT", table, columns, values)
                    inserted += len(values)
                    continue
                deleted += conn.execute(delete(table).where(*part.where)).rowcount
                if part.values is not None:
                    columns, values = part.values
                    _mysql_insert(conn, "INSERT", table, columns, values)
                    inserted += len(values)
                elif part.records:
                    conn.execute(insert(table), part.records)
                    inserted += len(part.records)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        log.info("%s: replaced [%s, %s) in %s part(s): %s rows deleted, %s inserted", table.name, lo, hi,
                 len(seen), deleted, inserted)
        return inserted

    if isinstance(target, Connection):
        # Caller owns the transaction (several tables in one commit).
        return _write(target)
    with target.begin() as conn:
        return _write(conn)


def _mysql_insert(conn: Connection, verb: str, table: Table, columns: str, values: list[str]) -> None:
    for i in range(0, len(values), _MYSQL_ROWS_PER_INSERT):
        conn.exec_driver_sql(f"{verb} INTO {table.name} ({columns}) VALUES "
                             + ",".join(values[i:i + _MYSQL_ROWS_PER_INSERT]))


def _pk_is_only_unique_key(table: Table) -> bool:
    """REPLACE may stand for DELETE + INSERT only if no other unique key could make it delete a
    row with a different primary key (possibly outside the scope)."""
    return bool(table.primary_key.columns) and not any(ix.unique for ix in table.indexes) and not any(
        isinstance(c, UniqueConstraint) for c in table.constraints)


class _Part:
    """One part of a replacement, checked and ready to write: its scope and its rows, either as
    MySQL VALUES tuples (``values``) or as records for SQLAlchemy (``records``). ``replace_ok``: the
    VALUES may be written with REPLACE (distinct primary keys, no other unique key)."""

    __slots__ = ("keys", "where", "values", "records", "replace_ok")

    def __init__(self, keys, where, values, records, replace_ok=False):
        self.keys, self.where, self.values, self.records, self.replace_ok = keys, where, values, records, replace_ok


def _prepare_part(dialect, table: Table, keys: Mapping[str, Sequence] | None, rows: Rows, time_column: str,
                  lo: datetime, hi: datetime) -> _Part:
    """Validate (scope of every row) and format one part. Touches no database."""
    keys = {k: list(v) for k, v in (keys or {}).items()}
    fast = None
    if isinstance(rows, pd.DataFrame) and dialect.name == "mysql" and not _is_date_column(table, time_column):
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
    replace_ok = False
    if fast is not None and _pk_is_only_unique_key(table):
        pk = [c.name for c in table.primary_key.columns]
        # Duplicate keys among the new rows must fail as with INSERT, not overwrite each other.
        replace_ok = set(pk) <= set(rows.columns) and not rows.duplicated(pk).any()
    return _Part(keys, where, fast, records, replace_ok)


def _check_disjoint(table: Table, keys: dict[str, list], seen: list[dict[str, list]]) -> None:
    """Refuse a part whose scope overlaps an earlier part's (its delete would erase their rows)."""
    for other in seen:
        shared = set(keys) & set(other)
        if not any(set(map(str, keys[col])).isdisjoint(map(str, other[col])) for col in shared):
            raise ValueError(f"{table.name}: parts overlap (keys {keys} and {other}): each part's keys must differ")
    seen.append(keys)


class _Prefetch:
    """Iterate ``iterable`` in a background thread, at most ``depth`` items ahead. Exceptions are
    re-raised in the consumer; ``close()`` stops the producer (and closes ``iterable``) and waits for it."""

    _DONE = object()

    def __init__(self, iterable: Iterable, depth: int = 1):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(iterable),), daemon=True,
                                        name="cryptoetl-prefetch")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
            self._put((True, self._DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def read_frame(target: Engine | Connection, table: Table, *, time_column: str, start: datetime,
               end: datetime, symbols: Sequence[str] | None = None,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of [start, end) ordered by (symbol, time), with times as aware UTC. ``columns``
    (default: all) selects fewer columns, in that order."""
    cols = table.c
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    if _is_date_column(table, time_column):
        lo, hi = lo.date(), hi.date()
    selected = [cols[name] for name in columns] if columns is not None else list(cols)
    stmt = select(*selected).where(cols[time_column] >= lo, cols[time_column] < hi)
    if symbols is not None and "symbol" in cols:
        stmt = stmt.where(cols["symbol"].in_(list(symbols)))
    if "symbol" in cols:
        stmt = stmt.order_by(cols["symbol"], cols[time_column])
    else:
        stmt = stmt.order_by(cols[time_column])

    def _fetch(conn: Connection) -> pd.DataFrame:
        if conn.dialect.name == "mysql" and _plain_types(table):
            # Large reads (a warm-up window for hundreds of symbols): the DBAPI cursor returns floats
            # already converted in C; skipping SQLAlchemy's per-row processing makes this ~2x faster.
            # DATETIMEs come as text (CAST AS CHAR) and are parsed by pandas at once, not by the
            # driver one Python datetime at a time. Same rows, same types for these columns.
            datetimes = [c.name for c in selected if isinstance(c.type, DateTime)]
            fast = stmt.with_only_columns(*(cast(c, CHAR).label(c.name) if c.name in datetimes else c
                                            for c in selected))
            compiled = fast.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute(str(compiled), tuple(compiled.params[k] for k in compiled.positiontup))
                names = [d[0] for d in cursor.description]
                frame = pd.DataFrame.from_records(list(cursor.fetchall()), columns=names)
            finally:
                cursor.close()
            for name in datetimes:
                frame[name] = pd.to_datetime(frame[name], format="ISO8601").astype("datetime64[us]")
            return frame
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
