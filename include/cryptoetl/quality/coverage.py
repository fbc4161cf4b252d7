"""Coverage per table x day and per coin x day: what the data-health page draws as heatmaps.

Set-based reads (one ``GROUP BY`` day query per table, dates from ``func.date``, which SQLite and
MariaDB both have), read-only, and independent of Airflow. Each cell is ``present`` against
``expected`` in the table's unit:

- the price family (``price_data_real``, ``technical_indicators``, ``ml_features_materialized``):
  coin-hours. A coin is expected from its first price on (over all history), every hour that has
  ended: 24 a day, fewer on its first day and today. The coins are those with a price in the window
  (a coin whose prices stopped before the window is not shown). The derived tables are held to the
  same hours as the prices, so a price hole shows in all three.
- ``crypto_onchain_data``: coin-days, each coin from its first day on, for days that have ended.
- ``crypto_sentiment_data``: articles scored (by any model) against ``crypto_news`` articles that day.
- ``crypto_news``, ``universe_snapshots``: rows against ``min_rows_per_day`` (``quality.json``; else 1).
- ``macro_indicators``: values becoming known (``known_at``), expected on the days after US business
  days (``health.fred_publishes_before``).

Nothing is expected before a table's first row. A day is *due* once its daily run is due, ``due_hours``
(``quality.json``) after it ends; a day not due yet that is short is *pending*, not *empty*: its rows
are late, not missing. The same rules as ``health.holes``, which names the backfills; this module
only measures. CoinGecko's own short gaps (which ``health`` reports apart) count as missing hours here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Date, Engine, and_, func, literal, select

from cryptoetl.quality.health import DAY, HOUR, fred_publishes_before
from cryptoetl.quality.rules import limits_for
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc

PRICE_FAMILY = ("price_data_real", "technical_indicators", "ml_features_materialized")
# The column that places a row on a day; the tables drawn, in this order.
DAY_COLUMN = {"price_data_real": "time", "technical_indicators": "time", "ml_features_materialized": "time",
              "macro_indicators": "known_at", "crypto_onchain_data": "date", "crypto_news": "published_at",
              "crypto_sentiment_data": "published_at", "universe_snapshots": "snapshot_date"}
TABLES = tuple(DAY_COLUMN)
UNIT = {**dict.fromkeys(PRICE_FAMILY, "coin-hours"), "macro_indicators": "values", "crypto_onchain_data": "coin-days",
        "crypto_news": "articles", "crypto_sentiment_data": "articles scored", "universe_snapshots": "coins"}
STATES = ("full", "partial", "pending", "empty", "none")


@dataclass(frozen=True)
class Cell:
    present: int
    expected: int  # 0: nothing expected that day (before the data began, a weekend for FRED, the future)
    due: bool  # the day's daily run is due (``due_hours`` after the day ended): what is short is missing
    unit: str

    @property
    def ratio(self) -> float | None:
        return None if self.expected == 0 else min(1.0, self.present / self.expected)

    @property
    def state(self) -> str:
        """full | partial | pending (short, but not due yet) | empty | none."""
        if self.expected == 0:
            return "full" if self.present else "none"
        if self.present >= self.expected:
            return "full"
        if not self.due:
            return "pending"
        return "partial" if self.present else "empty"


def days(start: date, end: date) -> list[date]:
    """The days of [start, end)."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _as_time(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _due_day(table: str, day: date, now: datetime, quality_file: str | None) -> bool:
    """Whether ``day`` is due in ``table``: its daily run is due ``due_hours`` after the day ends."""
    due = timedelta(hours=float(limits_for(table, quality_file)["due_hours"]))
    return _midnight(day) + DAY + due <= to_naive_utc(now)


def _per_coin_day(conn: Connection, table: str, lo: datetime, hi: datetime) -> dict[str, dict[date, int]]:
    """{symbol: {day: rows}} of an hourly table over [lo, hi): one GROUP BY symbol, day."""
    t = schema.metadata.tables[table]
    day = func.date(t.c.time, type_=Date)
    out: dict[str, dict[date, int]] = defaultdict(dict)
    for symbol, on, rows in conn.execute(select(t.c.symbol, day, func.count()).where(
            t.c.time >= lo, t.c.time < hi).group_by(t.c.symbol, day)):
        out[symbol][_as_date(on)] = int(rows)
    return out


def _first_prices(conn: Connection, lo: datetime, hi: datetime) -> dict[str, datetime]:
    """{symbol: its first price hour ever} for every coin with a price in [lo, hi). One query: a
    correlated MIN per coin, an index seek on the primary key (symbol, time) in both databases."""
    p = schema.price_data_real
    coins = select(p.c.symbol).where(p.c.time >= lo, p.c.time < hi).distinct().subquery()
    earlier = p.alias("earlier")
    first = select(func.min(earlier.c.time)).where(earlier.c.symbol == coins.c.symbol).scalar_subquery()
    return {symbol: _as_time(t) for symbol, t in conn.execute(select(coins.c.symbol, first))}


def _elapsed_hours(day: date, first: datetime, now_hour: datetime) -> int:
    """Hours of ``day`` from ``first`` on that have ended by ``now_hour``."""
    lo, hi = max(_midnight(day), first), min(_midnight(day) + DAY, now_hour)
    return max(0, int((hi - lo) / HOUR))


def _hour_cells(present: dict[str, dict[date, int]], first: dict[str, datetime], window: list[date],
                table: str, now: datetime, quality_file: str | None) -> dict[str, dict[date, Cell]]:
    now_hour = to_naive_utc(now).replace(minute=0, second=0, microsecond=0)
    due = {day: _due_day(table, day, now, quality_file) for day in window}
    coins = sorted(set(first) | set(present))
    return {coin: {day: Cell(present.get(coin, {}).get(day, 0),
                             _elapsed_hours(day, first[coin], now_hour) if coin in first else 0, due[day],
                             "hours") for day in window} for coin in coins}


def coin_days(engine: Engine, table: str, start: date, end: date, now: datetime,
              quality_file: str | None = None) -> dict[str, dict[date, Cell]]:
    """{symbol: {day: Cell(hours present, hours expected)}} of a price-family table over the days
    [start, end), every coin with a price in that window."""
    if table not in PRICE_FAMILY:
        raise ValueError(f"coin_days: {table!r} is not hourly per coin; one of {', '.join(PRICE_FAMILY)}")
    lo, hi = _midnight(start), _midnight(end)
    with engine.connect() as conn:
        first = _first_prices(conn, lo, hi)
        present = _per_coin_day(conn, table, lo, hi)
    return _hour_cells(present, first, days(start, end), table, now, quality_file)


def _sum_cells(per_coin: dict[str, dict[date, Cell]], window: list[date], table: str, now: datetime,
               quality_file: str | None) -> dict[date, Cell]:
    out = {}
    for day in window:
        cells = [coin[day] for coin in per_coin.values()]
        out[day] = Cell(sum(min(c.present, c.expected) for c in cells), sum(c.expected for c in cells),
                        _due_day(table, day, now, quality_file), UNIT[table])
    return out


def _per_day(conn: Connection, table: str, lo: datetime, hi: datetime, *, distinct: str | None = None) -> dict[
        date, int]:
    """{day: rows} (or distinct values of ``distinct``) of ``table`` over [lo, hi)."""
    t = schema.metadata.tables[table]
    column = t.c[DAY_COLUMN[table]]
    day = column if isinstance(column.type, Date) else func.date(column, type_=Date)
    bounds = (lo.date(), hi.date()) if isinstance(column.type, Date) else (lo, hi)
    counted = func.count(t.c[distinct].distinct()) if distinct else func.count()
    rows = conn.execute(select(day, counted).where(column >= bounds[0], column < bounds[1]).group_by(day))
    return {_as_date(on): int(n) for on, n in rows}


def _first_day(conn: Connection, table: str) -> date | None:
    t = schema.metadata.tables[table]
    first = conn.execute(select(func.min(t.c[DAY_COLUMN[table]]))).scalar()
    return None if first is None else _as_date(first)


def _onchain_cells(conn: Connection, lo: datetime, hi: datetime, window: list[date], now: datetime,
                   quality_file: str | None) -> dict[date, Cell]:
    o = schema.crypto_onchain_data
    first = {symbol: _as_date(d) for symbol, d in conn.execute(select(o.c.symbol, func.min(o.c.date))
                                                                  .group_by(o.c.symbol))}
    present = _per_day(conn, o.name, lo, hi)
    today = to_naive_utc(now).date()
    return {day: Cell(present.get(day, 0), sum(1 for f in first.values() if f <= day) if day < today else 0,
                      _due_day(o.name, day, now, quality_file), UNIT[o.name]) for day in window}


def _count_cells(conn: Connection, table: str, lo: datetime, hi: datetime, window: list[date], now: datetime,
                 quality_file: str | None) -> dict[date, Cell]:
    """Rows per day against ``min_rows_per_day`` (FRED: a value on the day after each US business day);
    sentiment: articles scored against the articles published that day."""
    first, today = _first_day(conn, table), to_naive_utc(now).date()
    if table == schema.crypto_sentiment_data.name:
        present = _per_day(conn, table, lo, hi, distinct="article_id")
        wanted = _per_day(conn, schema.crypto_news.name, lo, hi)
    else:
        present = _per_day(conn, table, lo, hi)
        wanted = dict.fromkeys(window, int(limits_for(table, quality_file).get("min_rows_per_day", 1)))
    fred = table == schema.macro_indicators.name
    out = {}
    for day in window:
        expected = wanted.get(day, 0)
        if first is None or day < first or day > today or (fred and not fred_publishes_before(day)):
            expected = 0
        out[day] = Cell(present.get(day, 0), expected, _due_day(table, day, now, quality_file), UNIT[table])
    return out


def table_days(engine: Engine, start: date, end: date, now: datetime,
               quality_file: str | None = None) -> dict[str, dict[date, Cell]]:
    """{table: {day: Cell}} for every table of ``TABLES`` over the days [start, end)."""
    lo, hi, window = _midnight(start), _midnight(end), days(start, end)
    out: dict[str, dict[date, Cell]] = {}
    with engine.connect() as conn:
        first = _first_prices(conn, lo, hi)
        for table in PRICE_FAMILY:
            per_coin = _hour_cells(_per_coin_day(conn, table, lo, hi), first, window, table, now, quality_file)
            out[table] = _sum_cells(per_coin, window, table, now, quality_file)
        out["crypto_onchain_data"] = _onchain_cells(conn, lo, hi, window, now, quality_file)
        for table in ("macro_indicators", "crypto_news", "crypto_sentiment_data", "universe_snapshots"):
            out[table] = _count_cells(conn, table, lo, hi, window, now, quality_file)
    return {table: out[table] for table in TABLES}


def _synthetic_condition(table: str):
    t = schema.metadata.tables[table]
    if "is_synthetic" in t.c:
        return t.c.is_synthetic.is_(True)
    if "source" in t.c:
        return t.c.source.like("%synthetic%")
    return None


def synthetic_tables(engine: Engine, start: date, end: date) -> list[str]:
    """The tables of ``TABLES`` holding synthetic rows (sandbox data, tiny demo models) in [start, end):
    ``is_synthetic`` where the table has it, else a source like '%synthetic%'. ``technical_indicators``
    has neither: it is synthetic when the prices it is computed from are."""
    lo, hi = _midnight(start), _midnight(end)
    found = []
    with engine.connect() as conn:
        for table in TABLES:
            condition = _synthetic_condition(table)
            if condition is None:
                continue
            t = schema.metadata.tables[table]
            column = t.c[DAY_COLUMN[table]]
            bounds = (lo.date(), hi.date()) if isinstance(column.type, Date) else (lo, hi)
            hit = conn.execute(select(literal(1)).where(and_(condition, column >= bounds[0], column < bounds[1]))
                               .limit(1)).first()
            if hit is not None:
                found.append(table)
    if "price_data_real" in found:
        found.insert(found.index("price_data_real") + 1, "technical_indicators")
    return found
