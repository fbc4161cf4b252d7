"""The fast MySQL path for large writes and reads, where the driver's per-value work dominated:
writes send VALUES text formatted column-wise in C (``_mysql_values`` + ``mysql_insert``), reads
take rows straight from the DBAPI cursor (``read_plain``). Each is used only for data it reproduces
exactly; everything else takes the generic SQLAlchemy path (``writes``, ``reads``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import msgspec
import numpy as np
import pandas as pd
from sqlalchemy import CHAR, Column, Connection, DateTime, Float, Select, String, Table, cast

_MYSQL_ROWS_PER_INSERT = 5000
_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 ._:/+-]*$")  # no quote, backslash, comma or percent sign
_JSON_NUMBERS = msgspec.json.Encoder()


# --- writes ----------------------------------------------------------------------------------------

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
        if name == time_column and not pd.api.types.is_datetime64_dtype(col.dtype):
            return None
        _check_scope(table, name, col, time_column, lo, hi, keys)
        formatted = _format_column(col)
        if formatted is None:
            return None
        kind, values = formatted
        (literals if kind == "literals" else numbers)[name] = values
    columns = ", ".join([*literals, *numbers])
    if len(frame) == 0 or not names:
        return columns, []
    return columns, _value_tuples(literals, numbers)


def _check_scope(table: Table, name: str, col: pd.Series, time_column: str, lo: datetime, hi: datetime,
                 keys: Mapping[str, list]) -> None:
    """Raise if a value of column ``name`` lies outside the part's scope: [lo, hi) and ``keys``."""
    if name == time_column:
        inside = (col >= pd.Timestamp(lo)) & (col < pd.Timestamp(hi))
        if not inside.all():
            bad = col[~inside].iloc[0]
            raise ValueError(f"{table.name}: row with {time_column}={bad} is outside [{lo}, {hi})")
    if name in keys and not col.isin(keys[name]).all():
        bad = col[~col.isin(keys[name])].iloc[0]
        raise ValueError(f"{table.name}: row with {name}={bad!r} is outside the keys {keys[name]}")


def _format_column(col: pd.Series) -> tuple[str, list[str] | np.ndarray] | None:
    """``("literals", one SQL literal per row)`` or ``("numbers", an array for the JSON encoder)``;
    None when this path does not format the column."""
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return "literals", _datetime_literals(col)
    if col.dtype == bool:
        return "numbers", col.to_numpy().astype("int8")
    if isinstance(col.dtype, np.dtype) and col.dtype.kind == "f":
        arr = col.to_numpy()
        if np.isinf(arr).any():
            return None
        return "numbers", arr
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
        return "numbers", col.to_numpy()
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
        text = _text_literals(col)
        return None if text is None else ("literals", text)
    return None


def _datetime_literals(col: pd.Series) -> list[str]:
    # Each distinct time formatted once (all symbols share the hours); NaT -> NULL.
    codes, uniques = pd.factorize(col.to_numpy().astype("datetime64[us]"))
    micros = np.asarray(uniques, dtype="datetime64[us]")
    unit = "s" if not (micros.astype("int64") % 1_000_000).any() else "us"
    quoted = [f"'{v}'" for v in micros.astype(f"datetime64[{unit}]").astype(str).tolist()]
    return np.array([*quoted, "NULL"], dtype=object)[codes].tolist()  # code -1: NULL


def _text_literals(col: pd.Series) -> list[str] | None:
    """Quoted literals of plain identifiers (None/NaN/NA: NULL); None if any text needs escaping."""
    codes, uniques = pd.factorize(col.to_numpy(dtype=object))  # None/NaN/NA: code -1
    values = list(uniques)
    if not all(isinstance(v, str) and _SAFE_TEXT.match(v) for v in values):
        return None
    return np.array([*(f"'{v}'" for v in values), "NULL"], dtype=object)[codes].tolist()


def _value_tuples(literals: dict[str, list[str]], numbers: dict[str, np.ndarray]) -> list[str]:
    """One ``(...)`` VALUES tuple per row: the literal columns, then the number columns."""
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
    return list(map(template.format, *parts))


def mysql_insert(conn: Connection, verb: str, table: Table, columns: str, values: list[str]) -> None:
    """``verb`` (INSERT or REPLACE) the VALUES tuples of ``_mysql_values``, a few thousand per statement."""
    for i in range(0, len(values), _MYSQL_ROWS_PER_INSERT):
        conn.exec_driver_sql(f"{verb} INTO {table.name} ({columns}) VALUES "
                             + ",".join(values[i:i + _MYSQL_ROWS_PER_INSERT]))


# --- reads -----------------------------------------------------------------------------------------

def plain_types(table: Table) -> bool:
    """Only strings, floats and DATETIMEs: the types the MySQL driver returns exactly as SQLAlchemy would."""
    return all(isinstance(c.type, String | Float | DateTime) for c in table.columns)


def read_plain(conn: Connection, stmt: Select, selected: Sequence[Column]) -> pd.DataFrame:
    """The rows of ``stmt`` (over a ``plain_types`` table) read through the raw DBAPI cursor.

    Large reads (a warm-up window for hundreds of symbols): the DBAPI cursor returns floats
    already converted in C; skipping SQLAlchemy's per-row processing makes this ~2x faster.
    DATETIMEs come as text (CAST AS CHAR) and are parsed by pandas at once, not by the
    driver one Python datetime at a time. Same rows, same types for these columns."""
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
