"""Rows in the shape SQLAlchemy's executemany writes: plain dicts with exactly the table's columns,
Python scalars, naive UTC datetimes, NULL for NaN/NaT. The generic (any dialect) write path; the
MySQL bulk path formats VALUES text instead (``mysql_bulk``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Table

from cryptoetl.warehouse.engine import to_naive_utc


def to_records(rows: pd.DataFrame | Iterable[Mapping], table: Table) -> list[dict]:
    """Rows as plain dicts with only the table's columns; NaN/NaT become NULL."""
    names = [c.name for c in table.columns]
    if isinstance(rows, pd.DataFrame):
        missing = [c.name for c in table.columns if not c.nullable and c.name not in rows.columns]
        if missing:
            raise ValueError(f"{table.name}: rows lack required columns {missing}")
        frame = rows[[n for n in names if n in rows.columns]]
        return _frame_records(frame, names, _defaults(table))
    else:
        records = [{k: v for k, v in dict(r).items() if k in names} for r in rows]
    out = []
    for rec in records:
        clean = _defaults(table)  # every column in every record: one executemany shape
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


def _defaults(table: Table) -> dict:
    """A record of the table's column defaults: NULL, or the column's own scalar default (a column
    added by a migration, like ``is_trimmed``, stays valid for writers that do not know it)."""
    out = {}
    for column in table.columns:
        default = column.default
        out[column.name] = default.arg if default is not None and default.is_scalar else None
    return out


def _frame_records(frame: pd.DataFrame, names: list[str], defaults: dict) -> list[dict]:
    """Vectorised ``to_records`` for a DataFrame: whole columns converted at once (the hot path of
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
        rec = {name: defaults[name] for name in missing}
        for key in keys:
            rec[key] = columns[key][i]
        out.append(rec)
    return out
