"""The one write primitive every step uses: ``replace_interval`` (and its streamed form,
``replace_interval_parts``). A rerun of an interval replaces exactly its rows in one transaction,
so reruns never add rows and a failure leaves the previous rows in place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, time

import pandas as pd
from sqlalchemy import Connection, Engine, Table, UniqueConstraint, delete, func, insert, select

from cryptoetl.warehouse.engine import is_date_column, is_mysql, to_naive_utc
from cryptoetl.warehouse.mysql_bulk import _mysql_values, mysql_insert
from cryptoetl.warehouse.prefetch import Prefetch
from cryptoetl.warehouse.records import to_records
from cryptoetl.warehouse.retry import retry_transient

log = logging.getLogger(__name__)

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
    and the interval keeps its previous rows. A lock conflict with another writer (deadlock, lock
    wait timeout) rolls it back and it runs again (``warehouse/retry.py``). Returns the number of
    rows inserted.
    """
    def write() -> int:
        return replace_interval_parts(target, table, [(keys, rows)], time_column=time_column, start=start, end=end)

    if isinstance(target, Connection):  # the caller owns the transaction, and its retry
        return write()
    return retry_transient(write, what=f"{table.name} [{start}, {end})")


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
    prepared = _prepared_parts(target.dialect, table, iter(parts), time_column, lo, hi)
    source = Prefetch(prepared) if prefetch else prepared
    if isinstance(target, Connection):
        # Caller owns the transaction (several tables in one commit).
        return _write_parts(target, table, source, lo, hi)
    with target.begin() as conn:
        return _write_parts(conn, table, source, lo, hi)


class _Part:
    """One part of a replacement, checked and ready to write: its scope and its rows, either as
    MySQL VALUES tuples (``values``) or as records for SQLAlchemy (``records``). ``replace_ok``: the
    VALUES may be written with REPLACE (distinct primary keys, no other unique key)."""

    __slots__ = ("keys", "where", "values", "records", "replace_ok")

    def __init__(self, keys, where, values, records, replace_ok=False):
        self.keys, self.where, self.values, self.records, self.replace_ok = keys, where, values, records, replace_ok


def _prepared_parts(dialect, table: Table, iterator: Iterator, time_column: str, lo: datetime,
                    hi: datetime) -> Iterator[_Part]:
    """Each part of ``iterator`` checked and formatted; closes ``iterator`` when done or stopped."""
    try:
        for keys, rows in iterator:
            yield _prepare_part(dialect, table, keys, rows, time_column, lo, hi)
    finally:  # e.g. a generator holding its own read connection
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _prepare_part(dialect, table: Table, keys: Mapping[str, Sequence] | None, rows: Rows, time_column: str,
                  lo: datetime, hi: datetime) -> _Part:
    """Validate (scope of every row) and format one part. Touches no database."""
    keys = {k: list(v) for k, v in (keys or {}).items()}
    fast = None
    if isinstance(rows, pd.DataFrame) and is_mysql(dialect) and not is_date_column(table, time_column):
        fast = _mysql_values(rows, table, time_column, lo, hi, keys)
    records = [] if fast is not None else to_records(rows, table)
    if is_date_column(table, time_column):
        # A DATE column (daily tables) is scoped by whole days: [start, end) must be midnights.
        if lo.time() != time.min or hi.time() != time.min:
            raise ValueError(f"{table.name}.{time_column} is a DATE: the interval [{lo}, {hi}) must start "
                             "and end at midnight UTC")
        lo, hi = lo.date(), hi.date()
        for rec in records:
            if isinstance(rec.get(time_column), datetime):
                rec[time_column] = rec[time_column].date()
    _check_records(table, records, time_column, lo, hi, keys)
    time_col = table.c[time_column]
    where = [time_col >= lo, time_col < hi] + [table.c[col].in_(vals) for col, vals in keys.items()]
    replace_ok = False
    if fast is not None and _pk_is_only_unique_key(table):
        pk = [c.name for c in table.primary_key.columns]
        # Duplicate keys among the new rows must fail as with INSERT, not overwrite each other.
        replace_ok = set(pk) <= set(rows.columns) and not rows.duplicated(pk).any()
    return _Part(keys, where, fast, records, replace_ok)


def _check_records(table: Table, records: list[dict], time_column: str, lo, hi, keys: dict[str, list]) -> None:
    """Raise on the first record outside the part's scope: [lo, hi) and ``keys``."""
    for rec in records:
        ts = rec.get(time_column)
        if ts is None or not (lo <= ts < hi):
            raise ValueError(f"{table.name}: row with {time_column}={ts} is outside [{lo}, {hi})")
        for col, allowed in keys.items():
            if rec.get(col) not in allowed:
                raise ValueError(f"{table.name}: row with {col}={rec.get(col)!r} is outside the keys {allowed}")


def _pk_is_only_unique_key(table: Table) -> bool:
    """REPLACE may stand for DELETE + INSERT only if no other unique key could make it delete a
    row with a different primary key (possibly outside the scope)."""
    return bool(table.primary_key.columns) and not any(ix.unique for ix in table.indexes) and not any(
        isinstance(c, UniqueConstraint) for c in table.constraints)


def _check_disjoint(table: Table, keys: dict[str, list], seen: list[dict[str, list]]) -> None:
    """Refuse a part whose scope overlaps an earlier part's (its delete would erase their rows)."""
    for other in seen:
        shared = set(keys) & set(other)
        if not any(set(map(str, keys[col])).isdisjoint(map(str, other[col])) for col in shared):
            raise ValueError(f"{table.name}: parts overlap (keys {keys} and {other}): each part's keys must differ")
    seen.append(keys)


def _write_parts(conn: Connection, table: Table, source: Iterable[_Part], lo: datetime, hi: datetime) -> int:
    """Write every part of ``source`` in ``conn``'s transaction; closes ``source``. Returns rows inserted."""
    inserted = deleted = 0
    seen: list[dict[str, list]] = []
    try:
        for part in source:
            _check_disjoint(table, part.keys, seen)
            part_deleted, part_inserted = _write_part(conn, table, part)
            deleted += part_deleted
            inserted += part_inserted
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    log.info("%s: replaced [%s, %s) in %s part(s): %s rows deleted, %s inserted", table.name, lo, hi,
             len(seen), deleted, inserted)
    return inserted


def _write_part(conn: Connection, table: Table, part: _Part) -> tuple[int, int]:
    """Replace one part's scope by its rows; returns (rows deleted, rows inserted)."""
    if part.values is not None and part.replace_ok:
        return _replace_in_place(conn, table, part)
    deleted = conn.execute(delete(table).where(*part.where)).rowcount
    if part.values is not None:
        columns, values = part.values
        mysql_insert(conn, "INSERT", table, columns, values)
        return deleted, len(values)
    if part.records:
        conn.execute(insert(table), part.records)
        return deleted, len(part.records)
    return deleted, 0


def _replace_in_place(conn: Connection, table: Table, part: _Part) -> tuple[int, int]:
    # Rerun over existing rows: REPLACE updates each same-key row in place (the PK is
    # the only unique key), ~4x cheaper than DELETE + INSERT of millions of rows. Then
    # the scope must hold exactly the new rows; if older rows are left (keys the new
    # rows lack), fall back to DELETE + INSERT, still in this transaction.
    columns, values = part.values
    mysql_insert(conn, "REPLACE", table, columns, values)
    deleted = 0
    in_scope = conn.execute(select(func.count()).select_from(table).where(*part.where)).scalar_one()
    if in_scope != len(values):
        deleted = conn.execute(delete(table).where(*part.where)).rowcount
        mysql_insert(conn, "INSERT", table, columns, values)
    return deleted, len(values)


def insert_if_absent(engine: Engine, table: Table, row: Mapping) -> None:
    """Insert ``row`` in its own transaction unless another process already did (a duplicate key
    is fine). No savepoint: a deadlock rolls back the whole transaction, its savepoints with it."""
    from sqlalchemy.exc import IntegrityError

    def attempt() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(insert(table).values(**row))
        except IntegrityError:
            pass

    retry_transient(attempt, what=f"insert into {table.name}")
