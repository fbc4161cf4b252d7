"""Macro features: every configured series as of each hour, and its age (``tmp_feat_macro``).

Point in time: of the rows with ``known_at <= T`` and a value, the latest observation (latest
vintage of it); NULL when that value became known more than ``MACRO_MAX_AGE_DAYS`` before T. The
age is T minus the observation date, in days. Later vintages never leak back: a vintage is used
only from its own ``known_at``.

How: a row is a *candidate* when its (observation, vintage) is later than that of every row known
before it; the candidate current at T is the last one known at or before T, until the next
candidate is known or ``MACRO_MAX_AGE_DAYS`` pass. The chain is walked here, in Python, over the
rows known in the ``MACRO_MAX_AGE_DAYS`` before the interval (older ones can no longer be current)
plus one aggregate per series for the latest (observation, vintage) known before those; the hours
are then filled by a binary search per series. In SQL this needed a running MAX window, which
MariaDB computes in time quadratic in the rows of a series, and a range join of candidates to hours,
which it ran as a block-nested loop: the full rebuild grew quadratically with history. The rows
sent back are one per hour (the calendar's scale), never per coin.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Connection, and_, func, select, text

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features.dialect import Dialect

MACRO_MAX_AGE_DAYS = 120  # longer than any gap between releases of the configured series
# A macro value is used by every hour until the next release, at most MACRO_MAX_AGE_DAYS.
LOOKAHEAD_HOURS = {"macro_indicators": MACRO_MAX_AGE_DAYS * 24}
TEMP_TABLES = ("tmp_feat_macro",)
MAX_AGE = timedelta(days=MACRO_MAX_AGE_DAYS)
SECOND = np.timedelta64(1, "s")


def _best_before(conn: Connection, series: list[str], cut: datetime) -> dict[str, tuple]:
    """Per series, the latest (observation_date, realtime_start) of the rows known at or before ``cut``."""
    m = schema.macro_indicators
    known = and_(m.c.series_id.in_(series), m.c.value.is_not(None), m.c.known_at <= cut)
    latest = select(m.c.series_id, func.max(m.c.observation_date).label("obs")).where(known) \
        .group_by(m.c.series_id).subquery()
    rows = conn.execute(select(m.c.series_id, m.c.observation_date, func.max(m.c.realtime_start))
                        .join(latest, and_(latest.c.series_id == m.c.series_id, latest.c.obs == m.c.observation_date))
                        .where(known).group_by(m.c.series_id, m.c.observation_date))
    return {series_id: (obs, vintage) for series_id, obs, vintage in rows}


def candidates(conn: Connection, series: list[str], lo: datetime, hi: datetime) -> dict[str, list[tuple]]:
    """Per series, the candidates that can be current in [lo, hi): (valid_from, valid_to, value,
    observation_date), ordered by valid_from."""
    m = schema.macro_indicators
    cut = lo - MAX_AGE  # a candidate known at or before this has expired by lo
    best = _best_before(conn, series, cut)
    rows = conn.execute(select(m.c.series_id, m.c.known_at, m.c.observation_date, m.c.realtime_start, m.c.value)
                        .where(m.c.series_id.in_(series), m.c.value.is_not(None), m.c.known_at > cut,
                               m.c.known_at < hi)
                        .order_by(m.c.series_id, m.c.known_at, m.c.observation_date, m.c.realtime_start))
    chain: dict[str, list[list]] = {}
    for series_id, known_at, obs, vintage, value in rows:
        if series_id in best and (obs, vintage) <= best[series_id]:
            continue  # an older observation (or vintage) than one known before it
        best[series_id] = (obs, vintage)
        chain.setdefault(series_id, []).append([known_at, known_at + MAX_AGE, value, obs])
    for links in chain.values():
        for link, following in zip(links, links[1:], strict=False):
            link[1] = min(link[1], following[0])  # until the next candidate is known
    return {series_id: [tuple(link) for link in links] for series_id, links in chain.items()}


def fill_macro(conn: Connection, d: Dialect, lo: datetime, hi: datetime,
               columns: Sequence[tuple[str, str, str]] = schema.MACRO_FEATURE_COLUMNS) -> None:
    """Create and fill ``tmp_feat_macro`` for the hours of [lo, hi). ``columns``: (series_id, value
    column, age column) of every series to fill (``schema.macro_feature_columns``)."""
    dt = d.datetime_type
    macro_cols = ", ".join(f"{value} DOUBLE, {age} DOUBLE" for _, value, age in columns)
    conn.execute(text(d.create_temp("tmp_feat_macro", f"time {dt} NOT NULL PRIMARY KEY, {macro_cols}")))
    hours = np.arange(np.datetime64(lo, "s"), np.datetime64(hi, "s"), np.timedelta64(3600, "s"))
    chain = candidates(conn, [series_id for series_id, _, _ in columns], lo, hi)
    values: dict[str, np.ndarray] = {}
    for series_id, value, age in columns:
        links = chain.get(series_id, [])
        values[value] = np.full(len(hours), np.nan)
        values[age] = np.full(len(hours), np.nan)
        if not links:
            continue
        valid_from = np.array([link[0] for link in links], dtype="datetime64[s]")
        valid_to = np.array([link[1] for link in links], dtype="datetime64[s]")
        current = np.searchsorted(valid_from, hours, side="right") - 1  # the last candidate known by then
        used = (current >= 0) & (hours < valid_to[np.maximum(current, 0)])
        pick = current[used]
        values[value][used] = np.array([link[2] for link in links], dtype="float64")[pick]
        observed = np.array([link[3] for link in links], dtype="datetime64[s]")[pick]
        # whole seconds / 86400, as the SQL of the other families computes ages (identical doubles)
        values[age][used] = ((hours[used] - observed) // SECOND).astype("float64") / 86400.0
    names = [column for _, value, age in columns for column in (value, age)]
    known = np.zeros(len(hours), dtype=bool)
    for name in names:
        known |= ~np.isnan(values[name])
    rows = [{"time": d.param_time(hours[i].item()),
             **{name: None if np.isnan(values[name][i]) else float(values[name][i]) for name in names}}
            for i in np.flatnonzero(known)]
    if rows:
        conn.execute(text(f"INSERT INTO tmp_feat_macro (time, {', '.join(names)}) "
                          f"VALUES (:time, {', '.join(':' + name for name in names)})"), rows)
