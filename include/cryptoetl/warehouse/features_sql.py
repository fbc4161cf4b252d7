"""Set-based rebuild of ``ml_features_materialized``: DELETE + INSERT ... SELECT in the database.

The rows of an interval [lo, hi) are rebuilt in one transaction, entirely inside the warehouse:
no fact row travels to Python (only the hour calendar of the interval is sent). Small session
temporary tables hold the per-hour and per-day context first, so that the final INSERT ... SELECT
joins each price row to a handful of primary-key lookups:

``tmp_feat_hours``     every hour of [lo - 167 h, hi): the calendar (from Python).
``tmp_feat_days``      every UTC day touched by [lo, hi).
``tmp_feat_macro``     per hour: every macro series as of that hour, and its age.
``tmp_feat_onchain``   per symbol and day: the last completed on-chain day.
``tmp_feat_sent_*``    sentiment: per (scope, model, hour) article counts and score sums; the
                       trailing 24 h / 7 d windows as running sums over change points (a bucket
                       enters, then leaves each window); the levels spread per hour (all
                       articles) and per (symbol, hour) (articles that mention the symbol).

Point-in-time rules (every value knowable at the row's ``time`` T, the hour start):

- prices and indicators: the price rows at or before T (returns look back exactly 1/24/168 h; the
  technical step computes them with the indicators);
- macro: of the rows with ``known_at <= T`` and a value, the latest observation (latest vintage
  of it); NULL when that value became known more than ``MACRO_MAX_AGE_DAYS`` before T. The age is
  T minus the observation date, in days. Later vintages never leak back: a vintage is used only
  from its own ``known_at``;
- on-chain: the symbol's latest day with ``complete_at`` <= the start of T's day (on-chain days
  complete at midnight), if it completed within ``ONCHAIN_MAX_AGE_DAYS``; age = T minus that day;
- sentiment: articles with ``published_at`` in (T - window, T], scored by the model; the count is
  0 and the mean NULL when there are none.

MySQL/MariaDB and SQLite differ only in date arithmetic (the ``_Dialect`` helpers). MySQL forbids
naming a temporary table twice in one statement, so no statement does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc

log = logging.getLogger(__name__)

MACRO_MAX_AGE_DAYS = 120  # longer than any gap between releases of the configured series
ONCHAIN_MAX_AGE_DAYS = 7
MAX_WINDOW_HOURS = max(schema.SENTIMENT_WINDOWS_HOURS.values())
_TEMP_TABLES = ("tmp_feat_hours", "tmp_feat_days", "tmp_feat_macro_cand", "tmp_feat_macro", "tmp_feat_onchain_cand",
                "tmp_feat_onchain", "tmp_feat_sent_events", "tmp_feat_sent_changes", "tmp_feat_sent_levels",
                "tmp_feat_sent_all", "tmp_feat_sent_sym")


class _Dialect:
    """Date arithmetic and DDL spelled for MySQL/MariaDB (default) or SQLite."""

    def __init__(self, name: str):
        self.sqlite = name == "sqlite"

    def param_time(self, value: datetime):
        # SQLAlchemy stores SQLite DATETIMEs as 'YYYY-MM-DD HH:MM:SS.ffffff' text; compare like with like.
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else value

    def param_day(self, value: datetime):
        return value.strftime("%Y-%m-%d") if self.sqlite else value.date()

    def plus_hours_expr(self, column: str, hours_expr: str) -> str:
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '+' || {hours_expr} || ' hours') || '.000000')"
        return f"({column} + INTERVAL {hours_expr} HOUR)"

    def plus_days(self, column: str, days: int) -> str:
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '+{days} days') || '.000000')"
        return f"({column} + INTERVAL {days} DAY)"

    def ceil_hour(self, column: str) -> str:
        """The first hour start at or after ``column`` (articles published in (T-1h, T] -> T)."""
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:00:00', {column}, '+3599.999 seconds') || '.000000')"
        return f"CAST(DATE_FORMAT({column} + INTERVAL 3599 SECOND, '%Y-%m-%d %H:00:00') AS DATETIME)"

    def day_of(self, column: str) -> str:
        return f"date({column})" if self.sqlite else f"DATE({column})"

    def days_between(self, later: str, earlier: str) -> str:
        if self.sqlite:  # whole seconds, so the result is exact
            return f"((strftime('%s', {later}) - strftime('%s', {earlier})) / 86400.0)"
        return f"(TIMESTAMPDIFF(SECOND, {earlier}, {later}) / 86400e0)"  # e0: DOUBLE, not DECIMAL(,4)

    def greatest(self, a: str, b: str) -> str:
        # one bound per outer row, so MySQL probes the calendar's key per row (no join buffer)
        return f"max({a}, {b})" if self.sqlite else f"GREATEST({a}, {b})"

    def concat(self, *parts: str) -> str:
        return " || ".join(parts) if self.sqlite else f"CONCAT({', '.join(parts)})"

    def create_temp(self, name: str, body: str) -> str:
        return f"CREATE TEMPORARY TABLE {name} ({body})"

    def drop_temp(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS temp.{name}" if self.sqlite else f"DROP TEMPORARY TABLE IF EXISTS {name}"

    @property
    def datetime_type(self) -> str:
        return "TEXT" if self.sqlite else "DATETIME"

    @property
    def date_type(self) -> str:
        return "TEXT" if self.sqlite else "DATE"

    def straight_join(self) -> str:
        """Join order for range joins: drive from the small interval table, probe the calendar's key."""
        return "CROSS JOIN" if self.sqlite else "STRAIGHT_JOIN"


# --- the final statement ---------------------------------------------------------------------------

def insert_select_sql(dialect: str) -> str:
    """The INSERT ... SELECT that builds every feature row of [:lo, :hi) for :symbols (after the
    temporary tables are filled by ``rebuild``)."""
    d = _Dialect(dialect)
    returns = [f"t.{name}" for name in schema.RETURN_LAGS_HOURS]  # computed by the technical step
    technical = [f"t.{name}" for name in schema.TECHNICAL_COLUMNS]
    macro = [f"m.{column}" for _, value, age in schema.MACRO_FEATURE_COLUMNS for column in (value, age)]
    onchain = [f"o.{name} AS onchain_{name}" for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
    onchain.append(f"{d.days_between('p.time', 'o.date')} AS onchain_age_days")
    scope_alias = {"sym": "ss", "all": "sa"}  # tmp_feat_sent_sym / tmp_feat_sent_all
    sentiment = []  # in schema order: model, scope, window, stat
    for model in schema.SENTIMENT_MODELS:
        for scope, alias in scope_alias.items():
            for window in schema.SENTIMENT_WINDOWS_HOURS:
                count, mean = (schema.sentiment_column(model, scope, window, stat) for stat in ("count", "mean"))
                sentiment += [f"COALESCE({alias}.{model}_{window}_n, 0) AS {count}",
                              f"{alias}.{model}_{window}_mean AS {mean}"]
    select_list = ",\n       ".join([
        "p.symbol", "p.time", "p.price", "p.market_cap", "p.total_volume", *returns, *technical, *macro, *onchain,
        *sentiment, "CASE WHEN p.source = 'coingecko' THEN 0 ELSE 1 END AS is_synthetic"])
    columns = ", ".join(["symbol", "time", *schema.FEATURE_COLUMNS, "is_synthetic"])
    return f"""INSERT INTO ml_features_materialized ({columns})
SELECT {select_list}
FROM price_data_real p
LEFT JOIN technical_indicators t ON t.symbol = p.symbol AND t.time = p.time
LEFT JOIN tmp_feat_macro m ON m.time = p.time
LEFT JOIN tmp_feat_onchain o ON o.symbol = p.symbol AND o.day = {d.day_of('p.time')}
LEFT JOIN tmp_feat_sent_sym ss ON ss.symbol = p.symbol AND ss.time = p.time
LEFT JOIN tmp_feat_sent_all sa ON sa.time = p.time
WHERE p.time >= :lo AND p.time < :hi AND p.symbol IN :symbols"""


# --- the context tables ------------------------------------------------------------------------------

def _context_statements(d: _Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :lo, :hi, :ext_lo."""
    dt, day = d.datetime_type, d.date_type
    stmts: list[tuple[str, bool]] = []

    # macro: a row is a candidate when its (observation, vintage) is later than that of every row
    # known before it; the candidate current at T is then the last one known at or before T.
    series = ", ".join(f"'{series_id}'" for series_id, _ in schema.MACRO_FEATURE_SERIES)
    key = d.concat("observation_date", "realtime_start")
    stmts.append((d.create_temp("tmp_feat_macro_cand", f"series_id VARCHAR(32) NOT NULL, valid_from {dt} NOT NULL, "
                                f"valid_to {dt} NOT NULL, value DOUBLE, observation_date {day} NOT NULL"), False))
    stmts.append((f"""INSERT INTO tmp_feat_macro_cand (series_id, valid_from, valid_to, value, observation_date)
SELECT series_id, known_at,
       CASE WHEN next_known IS NULL OR next_known > {d.plus_days('known_at', MACRO_MAX_AGE_DAYS)}
            THEN {d.plus_days('known_at', MACRO_MAX_AGE_DAYS)} ELSE next_known END,
       value, observation_date
FROM (SELECT series_id, known_at, value, observation_date,
             LEAD(known_at) OVER (PARTITION BY series_id ORDER BY known_at, k) AS next_known
      FROM (SELECT series_id, known_at, value, observation_date, k,
                   MAX(k) OVER (PARTITION BY series_id ORDER BY known_at, k ROWS UNBOUNDED PRECEDING) AS best
            FROM (SELECT series_id, known_at, value, observation_date, {key} AS k
                  FROM macro_indicators
                  WHERE series_id IN ({series}) AND value IS NOT NULL AND known_at < :hi) known) ranked
      WHERE k = best) chain
WHERE (next_known IS NULL OR next_known > :macro_lo) AND known_at < :hi""", False))
    pivot = []
    for series_id, value, age in schema.MACRO_FEATURE_COLUMNS:
        pivot.append(f"MAX(CASE WHEN c.series_id = '{series_id}' THEN c.value END) AS {value}")
        pivot.append(f"MAX(CASE WHEN c.series_id = '{series_id}' THEN "
                     f"{d.days_between('h.time', 'c.observation_date')} END) AS {age}")
    macro_cols = ", ".join(f"{value} DOUBLE, {age} DOUBLE" for _, value, age in schema.MACRO_FEATURE_COLUMNS)
    stmts.append((d.create_temp("tmp_feat_macro", f"time {dt} NOT NULL PRIMARY KEY, {macro_cols}"), False))
    stmts.append((f"""INSERT INTO tmp_feat_macro (time, {', '.join(c for _, v, a in schema.MACRO_FEATURE_COLUMNS
                                                           for c in (v, a))})
SELECT h.time, {', '.join(pivot)}
FROM tmp_feat_macro_cand c {d.straight_join()} tmp_feat_hours h
WHERE h.time >= {d.greatest('c.valid_from', ':lo')} AND h.time < c.valid_to
GROUP BY h.time""", False))

    # on-chain: each day is current from its complete_at until the next day completes (at most
    # ONCHAIN_MAX_AGE_DAYS); a row hour uses the day current at the start of its own day.
    metrics = [name for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
    metric_cols = ", ".join(f"{name} DOUBLE" for name in metrics)
    names = ", ".join(metrics)
    stmts.append((d.create_temp("tmp_feat_onchain_cand", f"symbol VARCHAR(16) NOT NULL, date {day} NOT NULL, "
                                f"valid_from {dt} NOT NULL, valid_to {dt} NOT NULL, {metric_cols}"), False))
    stmts.append((f"""INSERT INTO tmp_feat_onchain_cand (symbol, date, valid_from, valid_to, {names})
SELECT symbol, date, complete_at,
       CASE WHEN next_complete IS NULL OR next_complete > {d.plus_days('complete_at', ONCHAIN_MAX_AGE_DAYS)}
            THEN {d.plus_days('complete_at', ONCHAIN_MAX_AGE_DAYS)} ELSE next_complete END, {names}
FROM (SELECT symbol, date, complete_at, {names},
             LEAD(complete_at) OVER (PARTITION BY symbol ORDER BY date) AS next_complete
      FROM crypto_onchain_data WHERE symbol IN :symbols AND complete_at < :hi) chain
WHERE complete_at > :onchain_lo""", True))
    stmts.append((d.create_temp("tmp_feat_onchain", f"symbol VARCHAR(16) NOT NULL, day {day} NOT NULL, "
                                f"date {day} NOT NULL, {metric_cols}, PRIMARY KEY (symbol, day)"), False))
    stmts.append((f"""INSERT INTO tmp_feat_onchain (symbol, day, date, {names})
SELECT c.symbol, dd.day, c.date, {', '.join(f'c.{n}' for n in metrics)}
FROM tmp_feat_onchain_cand c {d.straight_join()} tmp_feat_days dd
WHERE dd.day_start >= c.valid_from AND dd.day_start < c.valid_to""", False))

    # sentiment: hourly buckets (an article published in (T - 1h, T] counts from hour T on), one
    # series per model for all articles ('*') and one per (mentioned symbol, model).
    stmts.append((d.create_temp("tmp_feat_sent_events", f"symbol VARCHAR(16) NOT NULL, model_key VARCHAR(16) NOT NULL, "
                                f"time {dt} NOT NULL, n INTEGER NOT NULL, total DOUBLE NOT NULL, "
                                "PRIMARY KEY (symbol, model_key, time)"), False))
    models = ", ".join(f"'{m}'" for m in schema.SENTIMENT_MODELS)
    bucket = d.ceil_hour("a.published_at")
    scored = (f"FROM crypto_news a JOIN crypto_sentiment_data s ON s.article_id = a.article_id "
              f"AND s.model_key IN ({models})")
    window = "a.published_at > :ext_lo_open AND a.published_at <= :hi_close"
    stmts.append((f"""INSERT INTO tmp_feat_sent_events (symbol, model_key, time, n, total)
SELECT '*', s.model_key, {bucket}, COUNT(*), SUM(s.score)
{scored}
WHERE {window}
GROUP BY s.model_key, {bucket}""", False))
    stmts.append((f"""INSERT INTO tmp_feat_sent_events (symbol, model_key, time, n, total)
SELECT mt.symbol, s.model_key, {bucket}, COUNT(*), SUM(s.score)
{scored}
JOIN crypto_news_mentions mt ON mt.article_id = a.article_id
WHERE {window} AND mt.symbol IN :symbols
GROUP BY mt.symbol, s.model_key, {bucket}""", True))

    # Trailing windows as change points: a bucket enters every window at its hour and leaves the
    # 24 h / 7 d window 24 / 168 hours later. A running sum over the change points of a series
    # gives its window levels, constant until the next change point; each level is then spread
    # over the hours it covers. The work grows with the news, not with symbols x hours.
    combos = [(m, w, hours) for m in schema.SENTIMENT_MODELS for w, hours in schema.SENTIMENT_WINDOWS_HOURS.items()]
    deltas = ", ".join(f"n_{m}_{w}, t_{m}_{w}" for m, w, _ in combos)
    stmts.append((d.create_temp("tmp_feat_sent_changes", f"symbol VARCHAR(16) NOT NULL, time {dt} NOT NULL, "
                                + ", ".join(f"n_{m}_{w} INTEGER NOT NULL, t_{m}_{w} DOUBLE NOT NULL"
                                            for m, w, _ in combos)), False))

    def change(sign: str, leaving: int | None) -> str:
        """Deltas of each bucket: entering every window (leaving None), or leaving one window."""
        cols = []
        for m, _, hours in combos:
            hit = f"e.model_key = '{m}'" + ("" if leaving is None else f" AND {hours} = {leaving}")
            cols += [f"CASE WHEN {hit} THEN {sign}e.n ELSE 0 END", f"CASE WHEN {hit} THEN {sign}e.total ELSE 0 END"]
        when = "e.time" if leaving is None else d.plus_hours_expr("e.time", str(leaving))
        return (f"INSERT INTO tmp_feat_sent_changes (symbol, time, {deltas})\n"
                f"SELECT e.symbol, {when}, {', '.join(cols)} FROM tmp_feat_sent_events e WHERE {when} < :hi")

    stmts.append((change("", None), False))
    for hours in sorted(set(schema.SENTIMENT_WINDOWS_HOURS.values())):
        stmts.append((change("-", hours), False))
    levels = ", ".join(f"n_{m}_{w} INTEGER NOT NULL, t_{m}_{w} DOUBLE NOT NULL" for m, w, _ in combos)
    stmts.append((d.create_temp("tmp_feat_sent_levels", f"symbol VARCHAR(16) NOT NULL, time {dt} NOT NULL, "
                                f"valid_to {dt} NOT NULL, {levels}, PRIMARY KEY (symbol, time)"), False))
    running = ", ".join(f"SUM(SUM({c}_{m}_{w})) OVER (PARTITION BY symbol ORDER BY time ROWS UNBOUNDED PRECEDING)"
                        for m, w, _ in combos for c in ("n", "t"))
    stmts.append((f"""INSERT INTO tmp_feat_sent_levels (symbol, time, valid_to, {deltas})
SELECT symbol, time, COALESCE(LEAD(time) OVER (PARTITION BY symbol ORDER BY time), :hi), {running}
FROM tmp_feat_sent_changes
GROUP BY symbol, time""", False))

    defs, names_, exprs = [], [], []
    for m, w, _ in combos:
        defs += [f"{m}_{w}_n INTEGER", f"{m}_{w}_mean DOUBLE"]
        names_ += [f"{m}_{w}_n", f"{m}_{w}_mean"]
        exprs += [f"v.n_{m}_{w}", f"CASE WHEN v.n_{m}_{w} > 0 THEN v.t_{m}_{w} / v.n_{m}_{w} END"]
    any_article = " OR ".join(f"v.n_{m}_{w} > 0" for m, w, _ in combos)
    spread = (f"FROM tmp_feat_sent_levels v {d.straight_join()} tmp_feat_hours h\n"
              f"WHERE h.time >= {d.greatest('v.time', ':lo')} AND h.time < v.valid_to AND ({any_article})")
    stmts.append((d.create_temp("tmp_feat_sent_all", f"time {dt} NOT NULL PRIMARY KEY, {', '.join(defs)}"), False))
    stmts.append((f"INSERT INTO tmp_feat_sent_all (time, {', '.join(names_)})\n"
                  f"SELECT h.time, {', '.join(exprs)}\n{spread} AND v.symbol = '*'", False))
    stmts.append((d.create_temp("tmp_feat_sent_sym", f"symbol VARCHAR(16) NOT NULL, time {dt} NOT NULL, "
                                f"{', '.join(defs)}, PRIMARY KEY (symbol, time)"), False))
    stmts.append((f"INSERT INTO tmp_feat_sent_sym (symbol, time, {', '.join(names_)})\n"
                  f"SELECT v.symbol, h.time, {', '.join(exprs)}\n{spread} AND v.symbol <> '*'", False))
    return stmts


def _fill_calendar(conn: Connection, d: _Dialect, lo: datetime, hi: datetime) -> None:
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


def rebuild(target: Engine | Connection, start: datetime, end: datetime, symbols: Sequence[str]) -> int:
    """Replace the feature rows of [start, end) for ``symbols``; returns the rows inserted."""
    if start >= end:
        raise ValueError(f"empty or inverted interval [{start}, {end})")
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    if lo.minute or lo.second or lo.microsecond or hi.minute or hi.second or hi.microsecond:
        raise ValueError(f"features are hourly: [{start}, {end}) must start and end on the hour")
    table = schema.ml_features_materialized

    def _write(conn: Connection) -> int:
        d = _Dialect(conn.dialect.name)
        params = {
            "lo": d.param_time(lo), "hi": d.param_time(hi), "symbols": list(symbols),
            "macro_lo": d.param_time(lo), "onchain_lo": d.param_time(lo - timedelta(days=ONCHAIN_MAX_AGE_DAYS + 1)),
            "ext_lo_open": d.param_time(lo - timedelta(hours=MAX_WINDOW_HOURS)),
            "hi_close": d.param_time(hi - timedelta(hours=1)),
        }
        # The DELETE first: on SQLite it takes the write lock before anything is read (waiting for
        # other writers), instead of a read transaction that cannot be upgraded once another
        # writer has committed ("database is locked" at once, with no wait).
        deleted = conn.execute(table.delete().where(
            table.c.time >= lo, table.c.time < hi, table.c.symbol.in_(list(symbols)))).rowcount
        for name in _TEMP_TABLES:
            conn.execute(text(d.drop_temp(name)))
        try:
            _fill_calendar(conn, d, lo, hi)
            for sql, expanding in _context_statements(d):
                statement = text(sql)
                if expanding:
                    statement = statement.bindparams(bindparam("symbols", expanding=True))
                conn.execute(statement, params)
            statement = text(insert_select_sql(conn.dialect.name)).bindparams(bindparam("symbols", expanding=True))
            inserted = conn.execute(statement, {k: params[k] for k in ("lo", "hi", "symbols")}).rowcount
        finally:
            for name in _TEMP_TABLES:
                conn.execute(text(d.drop_temp(name)))
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
