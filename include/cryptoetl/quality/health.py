"""Gaps and freshness across history: what is missing, what is late, and the backfill that fills it.

``holes(ctx, start, end)`` looks at the data itself (so history loaded before the quality gate
existed is covered too):
- every missing (coin, hour) in ``price_data_real`` for the coins of each day's universe, from each
  coin's first price on; a run of at most ``source_gap_hours`` missing hours with prices on both
  sides is CoinGecko's own gap (it has no point there), reported apart and never refilled;
- every price hour without its ``technical_indicators`` row or its ``ml_features_materialized`` row;
- every missing day of on-chain totals (per coin), of each backfillable news source's articles, of
  scored articles, and days with no FRED value becoming known (the day after each US business day);
- every day of a price or indicator interval whose latest quality check failed (its rows are there,
  but the features leave those hours out until a rerun passes);
- every table whose newest row is older than its freshness target (``freshness_hours``).

Only the days whose daily run is due (``due_hours`` after the day ends) count: the hours of today
are late, not missing, and freshness reports them. Each hole names the DAG and the exact ``airflow backfill
create`` command that refills it; ``heal.py`` creates those backfills itself.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache

from sqlalchemy import and_, func, select

from cryptoetl.intervals import Interval, midnight
from cryptoetl.loaders.onchain import STEP_SYMBOLS
from cryptoetl.loaders.universe import coins_for
from cryptoetl.quality.rules import limits_for, tables
from cryptoetl.step import StepContext
from cryptoetl.steps import steps
from cryptoetl.warehouse import quality, schema
from cryptoetl.warehouse.engine import to_naive_utc

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
REFETCH = "refetch"  # the prices step's option (loaders/prices.py): call CoinGecko again for landed blocks

# Where each table keeps the time that places a row (freshness: its newest value).
TIME_COLUMN = {
    "price_data_real": "time", "technical_indicators": "time", "ml_features_materialized": "time",
    "macro_indicators": "known_at", "crypto_onchain_data": "complete_at", "crypto_news": "published_at",
    "crypto_sentiment_data": "published_at", "universe_snapshots": "known_at",
}


@dataclass(frozen=True)
class Hole:
    table: str  # the table (with the source, for a table several sources write)
    step: str  # the step that fills it; its DAG is the one to backfill
    start: datetime  # aware UTC midnight: the days [start, end) hold the hole
    end: datetime
    keys: tuple[str, ...]  # the coins (or sources) missing; empty when the whole table is
    missing: int  # missing coin-hours (hourly tables) or days
    unit: str  # "coin-hours" | "days" | "articles"
    fillable: bool = True
    why: str = ""  # why it cannot be refilled, when it cannot

    @property
    def dag_id(self) -> str:
        return steps()[self.step].dag_id

    def backfill_dates(self) -> tuple[date, date]:
        """--from-date/--to-date (logical dates, inclusive) whose runs cover the days of the hole: a
        daily source DAG's run of day D has the logical date D; a derived DAG's timed run (00:30,
        01:00, 02:00) covers the hours up to its time of the next day, so its range starts a day
        earlier and ends a day later."""
        first, last = self.start.date(), (self.end - DAY).date()
        if steps()[self.step].triggered_by:
            return first - DAY, last + DAY
        return first, last

    def conf(self) -> dict | None:
        """The runs' conf: a prices refill fetches again (the landing store may hold an outage's empty
        answer, which only a new call replaces)."""
        return {"options": [REFETCH]} if any(o.name == REFETCH for o in steps()[self.step].options) else None

    def command(self) -> str:
        lo, hi = self.backfill_dates()
        conf = f" --dag-run-conf '{json.dumps(self.conf())}'" if self.conf() else ""
        return (f"airflow backfill create --dag-id {self.dag_id} --from-date {lo} --to-date {hi} "
                f"--reprocess-behavior completed{conf}")


def _day_runs(missing: dict[date, set[str]], counts: dict[date, int], table: str, step: str, unit: str,
              **extra) -> list[Hole]:
    """Holes from {day: keys missing} and {day: missing count}: consecutive days become one hole."""
    out: list[Hole] = []
    for day in sorted(missing):
        last = out[-1] if out else None
        if last is not None and last.end == midnight(day):
            out[-1] = Hole(table, step, last.start, midnight(day) + DAY, tuple(sorted(set(last.keys) | missing[day])),
                           last.missing + counts[day], unit, **extra)
        else:
            out.append(Hole(table, step, midnight(day), midnight(day) + DAY, tuple(sorted(missing[day])),
                            counts[day], unit, **extra))
    return out


def source_gaps(hours: list[datetime], present: set[datetime], longest: int) -> set[datetime]:
    """The missing hours that are CoinGecko's own short gaps: runs of at most ``longest`` hours with a
    price right before and right after."""
    gaps: set[datetime] = set()
    run: list[datetime] = []
    for hour in hours:
        if hour in present:
            if run and len(run) <= longest and run[0] - HOUR in present:
                gaps.update(run)
            run = []
        else:
            run.append(hour)
    return gaps


def _price_holes(ctx: StepContext, lo: datetime, hi: datetime, limits: dict) -> tuple[list[Hole], int]:
    """(holes, CoinGecko's own missing coin-hours) in price_data_real over [lo, hi)."""
    p = schema.price_data_real
    expected: dict[date, set[str]] = {}
    day = lo
    while day < hi:
        expected[day.date()] = {coin.symbol for coin in coins_for(ctx, Interval(day, day + DAY))}
        day += DAY
    symbols = sorted(set().union(*expected.values())) if expected else []
    edge = HOUR * (limits["source_gap_hours"] + 1)  # a gap across either edge is judged on both its sides
    with ctx.engine.connect() as conn:
        first = dict(conn.execute(select(p.c.symbol, func.min(p.c.time)).where(p.c.symbol.in_(symbols))
                                  .group_by(p.c.symbol)).all())
        rows = conn.execute(select(p.c.symbol, p.c.time).where(
            p.c.symbol.in_(symbols), p.c.time >= to_naive_utc(lo - edge), p.c.time < to_naive_utc(hi + edge))).all()
    present: dict[str, set[datetime]] = defaultdict(set)
    for symbol, hour in rows:
        present[symbol].add(hour.replace(tzinfo=UTC))
    missing: dict[date, set[str]] = defaultdict(set)
    counts: dict[date, int] = defaultdict(int)
    own_gaps = 0
    around = [lo - edge + HOUR * i for i in range(int((hi - lo + 2 * edge) / HOUR))]
    for symbol in symbols:
        if symbol not in first:
            continue  # never priced: a coin not listed yet is not missing
        since = first[symbol].replace(tzinfo=UTC)
        gaps = source_gaps([h for h in around if h >= since], present[symbol], limits["source_gap_hours"])
        wanted = [h for h in around if lo <= h < hi and h >= since and symbol in expected.get(h.date(), ())]
        for hour in wanted:
            if hour in gaps:
                own_gaps += 1
            elif hour not in present[symbol]:
                missing[hour.date()].add(symbol)
                counts[hour.date()] += 1
    return _day_runs(missing, counts, p.name, "prices", "coin-hours"), own_gaps


def _derived_holes(ctx: StepContext, table, step: str, lo: datetime, hi: datetime) -> list[Hole]:
    """Price hours of [lo, hi) without their row in ``table``."""
    p = schema.price_data_real
    joined = p.outerjoin(table, and_(table.c.symbol == p.c.symbol, table.c.time == p.c.time))
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(p.c.symbol, p.c.time).select_from(joined).where(
            p.c.time >= to_naive_utc(lo), p.c.time < to_naive_utc(hi), table.c.symbol.is_(None))).all()
    missing: dict[date, set[str]] = defaultdict(set)
    counts: dict[date, int] = defaultdict(int)
    for symbol, hour in rows:
        missing[hour.date()].add(symbol)
        counts[hour.date()] += 1
    return _day_runs(missing, counts, table.name, step, "coin-hours")


def _missing_days(days_with_data: Iterable[date], first: date | None, lo: datetime, hi: datetime,
                  expected: Callable[[date], bool] = lambda day: True) -> dict[date, set[str]]:
    have = set(days_with_data)
    out: dict[date, set[str]] = {}
    day = lo.date()
    while midnight(day) < hi:
        if first is not None and day >= first and day not in have and expected(day):
            out[day] = set()
        day += DAY
    return out


def fred_publishes_before(day: date) -> bool:
    """Whether FRED values become known on ``day``: they are published on US business days (Monday to
    Friday but federal holidays) and usable 30 h later, so on the day after a business day."""
    before = day - DAY
    return before.weekday() < 5 and before not in _us_holidays(before.year)


@cache
def _us_holidays(year: int) -> frozenset[date]:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = USFederalHolidayCalendar().holidays(f"{year}-01-01", f"{year}-12-31")
    return frozenset(d.date() for d in days)


def _daily_holes(ctx: StepContext, lo: datetime, upto: Callable[[str], datetime]) -> list[Hole]:
    """On-chain days per coin, news days per backfillable source, the days FRED values become known;
    each table up to its own due day (``upto``)."""
    out: list[Hole] = []
    o, s, m = schema.crypto_onchain_data, schema.crypto_news_sightings, schema.macro_indicators
    registered = steps()
    with ctx.engine.connect() as conn:
        for step, symbol in STEP_SYMBOLS.items():
            first = conn.execute(select(func.min(o.c.date)).where(o.c.symbol == symbol)).scalar()
            days = conn.execute(select(o.c.date).where(o.c.symbol == symbol, o.c.date >= lo.date())).scalars()
            missing = _missing_days(days, first, lo, upto(o.name))
            out += _day_runs(missing, dict.fromkeys(missing, 1), f"{o.name}:{registered[step].source}", step, "days")
        for step in registered.values():
            if step.writes != schema.crypto_news.name or not step.backfillable or step.source == "rss":
                continue
            first = conn.execute(select(func.min(s.c.published_at)).where(s.c.source == step.source)).scalar()
            days = {t.date() for t in conn.execute(select(s.c.published_at).where(
                s.c.source == step.source, s.c.published_at >= to_naive_utc(lo))).scalars()}
            missing = _missing_days(days, first.date() if first else None, lo, upto(schema.crypto_news.name))
            out += _day_runs(missing, dict.fromkeys(missing, 1), f"{s.name.removesuffix('_sightings')}:{step.source}",
                             step.name, "days")
        first = conn.execute(select(func.min(m.c.known_at))).scalar()
        days = {t.date() for t in conn.execute(select(m.c.known_at).where(m.c.known_at >= to_naive_utc(lo))).scalars()}
        missing = _missing_days(days, first.date() if first else None, lo, upto(m.name), fred_publishes_before)
        out += _day_runs(missing, dict.fromkeys(missing, 1), m.name, "macro", "days")
    return out


def _unscored_holes(ctx: StepContext, lo: datetime, hi: datetime) -> list[Hole]:
    from cryptoetl.report import unscored_days

    days = unscored_days(ctx.engine, lo, hi)
    return _day_runs({day: set() for day in days}, days, schema.crypto_sentiment_data.name, "sentiment", "articles")


def _due_before(table: str, now: datetime, quality_file: str | None) -> datetime:
    """The days before this are due in ``table``: a day is loaded by the daily run at its end, so its
    rows must be there ``due_hours`` after it ends (the latest hours of an hourly twin are freshness's
    business, not holes)."""
    due = now - timedelta(hours=limits_for(table, quality_file)["due_hours"])
    return due.replace(hour=0, minute=0, second=0, microsecond=0)


def holes(ctx: StepContext, start: datetime, end: datetime) -> tuple[list[Hole], int]:
    """(every hole in [start, end), CoinGecko's own missing coin-hours). Fillability is judged later
    (``heal.plan``): a hole is a hole whether or not the source can still serve it."""
    now = datetime.fromtimestamp(ctx.clock(), tz=UTC)
    qf = ctx.settings.quality_file
    lo = start.replace(hour=0, minute=0, second=0, microsecond=0)

    def upto(table: str) -> datetime:
        return min(end, _due_before(table, now, qf))

    price_holes, source_gaps = _price_holes(ctx, lo, upto(schema.price_data_real.name),
                                            limits_for(schema.price_data_real.name, qf))
    found = [*price_holes,
             *_derived_holes(ctx, schema.technical_indicators, "technical", lo, upto("technical_indicators")),
             *_derived_holes(ctx, schema.ml_features_materialized, "features", lo, upto("ml_features_materialized")),
             *_daily_holes(ctx, lo, upto),
             *_unscored_holes(ctx, lo, upto("crypto_sentiment_data"))]
    found += [h for h in _gate_holes(ctx, lo, upto) if not any(
        o.table == h.table and o.start < h.end and o.end > h.start for o in found)]
    return [h for h in found if h.start < end], source_gaps


def _gate_holes(ctx: StepContext, lo: datetime, upto: Callable[[str], datetime]) -> list[Hole]:
    """Days of price or indicator intervals whose latest check failed: their rows are there, but the
    features leave those hours out until a rerun passes, so the rerun is what refills them."""
    out = []
    for table, start, stop, checks in quality.bad_ranges(ctx.engine, quality.FEATURE_INPUTS, lo, upto(
            schema.price_data_real.name)):
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
        last = stop if stop == stop.replace(hour=0, minute=0, second=0, microsecond=0) else \
            stop.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
        step = "prices" if table == schema.price_data_real.name else "technical"
        out.append(Hole(table, step, first, last, (), int((last - first) / DAY), f"days failing {checks}"))
    return out


@dataclass(frozen=True)
class Freshness:
    table: str
    newest: datetime | None  # aware UTC; None for an empty table
    target_hours: float

    def age_hours(self, now: datetime) -> float | None:
        return None if self.newest is None else (now - self.newest).total_seconds() / 3600

    def stale(self, now: datetime) -> bool:
        age = self.age_hours(now)
        return age is None or age > self.target_hours


def freshness(engine, now: datetime, quality_file: str | None = None) -> list[Freshness]:
    """The newest row of every table with a freshness target. An hourly table's newest row is the
    start of its hour, so its age counts from the end of that hour."""
    out = []
    with engine.connect() as conn:
        for table, limits in tables(quality_file).items():
            if limits.get("freshness_hours") is None:  # null: a table this deployment does not load
                continue
            column = schema.metadata.tables[table].c[TIME_COLUMN[table]]
            newest = conn.execute(select(func.max(column))).scalar()
            if newest is not None:
                newest = (newest if isinstance(newest, datetime) else datetime.fromisoformat(str(newest))).replace(
                    tzinfo=UTC)
                if TIME_COLUMN[table] == "time":
                    newest += HOUR
            out.append(Freshness(table, newest, float(limits["freshness_hours"])))
    return out

