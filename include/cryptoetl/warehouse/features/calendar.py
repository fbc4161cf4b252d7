"""The calendar every family joins to, sent from Python (the only rows that do):

``tmp_feat_hours``     every hour of [lo - 167 h, hi): the sentiment windows reach that far back.
``tmp_feat_days``      every UTC day touched by [lo, hi), with its start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from cryptoetl.warehouse.features.dialect import Dialect
from cryptoetl.warehouse.features.sentiment import MAX_WINDOW_HOURS

TEMP_TABLES = ("tmp_feat_hours", "tmp_feat_days")


def fill_calendar(conn: Connection, d: Dialect, lo: datetime, hi: datetime) -> None:
    """Create and fill ``tmp_feat_hours`` and ``tmp_feat_days`` for the interval [lo, hi)."""
    dt, day = d.datetime_type, d.date_type
    conn.execute(text(d.create_temp("tmp_feat_hours", f"time {dt} NOT NULL PRIMARY KEY")))
    conn.execute(text(d.create_temp("tmp_feat_days", f"day {day} NOT NULL PRIMARY KEY, day_start {dt} NOT NULL")))
    first = lo - timedelta(hours=MAX_WINDOW_HOURS - 1)
    hours = int((hi - first) / timedelta(hours=1))
    conn.execute(text("INSERT INTO tmp_feat_hours (time) VALUES (:t)"),
                 [{"t": d.param_time(first + timedelta(hours=i))} for i in range(hours)])
    day0 = lo.replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day0 < hi:
        days.append({"day": d.param_day(day0), "start": d.param_time(day0)})
        day0 += timedelta(days=1)
    conn.execute(text("INSERT INTO tmp_feat_days (day, day_start) VALUES (:day, :start)"), days)
