"""The calendar the families join to, sent from Python (with ``macro.py``'s per-hour values, the only rows that are):

``tmp_feat_hours``     every hour of [lo - 167 h, hi): the sentiment windows reach that far back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from cryptoetl.warehouse.features.dialect import Dialect
from cryptoetl.warehouse.features.sentiment import MAX_WINDOW_HOURS

TEMP_TABLES = ("tmp_feat_hours",)


def fill_calendar(conn: Connection, d: Dialect, lo: datetime, hi: datetime) -> None:
    """Create and fill ``tmp_feat_hours`` for the interval [lo, hi)."""
    conn.execute(text(d.create_temp("tmp_feat_hours", f"time {d.datetime_type} NOT NULL PRIMARY KEY")))
    first = lo - timedelta(hours=MAX_WINDOW_HOURS - 1)
    hours = int((hi - first) / timedelta(hours=1))
    conn.execute(text("INSERT INTO tmp_feat_hours (time) VALUES (:t)"),
                 [{"t": d.param_time(first + timedelta(hours=i))} for i in range(hours)])
