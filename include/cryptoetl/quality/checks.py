"""The quality gate: set-based checks on the interval a step just wrote.

``python -m cryptoetl check STEP --interval ...`` runs them in the same pod or subprocess image as the
load, right after it (the DAG's second task), records every result in ``data_quality_results`` and
fails when a hard check fails. A failed interval is *bad*: its DAG run is red and retried, no asset
event leaves it, and ``ml_features_materialized`` is not built on its hours until it passes.

The checks, by table (thresholds in ``quality.json``; README "Data health" explains each):
- ``rows``: rows written against rows expected. Hard for the sources: the universe's coins x hours
  for prices (a coin from its first price on; CoinGecko's own short gaps count as covered; a
  warning under ``coverage_min_hours``); every ended day for on-chain; a snapshot a day for the
  universe; sightings a day for news. A warning for the derived tables (a
  row for every price row for indicators and features; every article scored for sentiment), whose
  inputs may still be landing while they run: the health scan reports what stays missing.
- ``coverage`` (hard): a coin that has prices in the week before must not be missing from a whole
  interval of ``coverage_min_hours`` or more. A coin that left the universe (a delisting) is not
  expected. A news source that answers nothing for a whole day fails the same way.
- ``positive`` / ``non_negative`` (hard): price and close > 0; market cap, volume and on-chain
  totals >= 0.
- ``null_rate`` (warning): the share of NULLs per column.
- ``never_priced`` (warning): universe coins without any price yet while others have one (a coin
  not listed yet, or a wrong CoinGecko id): not expected by ``rows``, so named here.
- ``extreme_return`` and ``stale_price`` (warnings): a 1-hour move beyond ``max_abs_return_1h``;
  a coin whose price did not change for ``stale_hours`` hours or more.
- Duplicate keys: every table's primary key makes them impossible, so no check runs for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Connection, and_, func, or_, select

from cryptoetl.intervals import Interval
from cryptoetl.loaders.onchain import STEP_SYMBOLS, completed_days
from cryptoetl.loaders.universe import coins_for
from cryptoetl.quality.health import HOUR, source_gaps
from cryptoetl.quality.rules import limits_for
from cryptoetl.step import Step, StepContext
from cryptoetl.steps import steps
from cryptoetl.warehouse import quality, schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.quality import Result

HISTORY = timedelta(days=7)  # a coin "has history" when it has prices in the week before the interval
DETAIL_KEYS = 10  # keys named in a result's detail


def _names(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - DETAIL_KEYS} more" if len(keys) > DETAIL_KEYS else ""
    return ", ".join(keys[:DETAIL_KEYS]) + more


def _ratio(check: str, got: int, expected: int, minimum: float, what: str, severity: str = "fail") -> Result:
    ratio = 1.0 if expected == 0 else got / expected
    return Result(check, severity, ratio >= minimum, round(ratio, 6), minimum, f"{got} of {expected} {what}")


def _count(conn: Connection, stmt) -> int:
    return int(conn.execute(stmt).scalar() or 0)


def _bounds(interval: Interval) -> tuple[datetime, datetime, float]:
    lo, hi = to_naive_utc(interval.start), to_naive_utc(interval.end)
    return lo, hi, (hi - lo).total_seconds() / 3600


def _value_checks(conn: Connection, table, where, limits: dict, positive: Sequence[str] = (),
                  non_negative: Sequence[str] = ()) -> list[Result]:
    """positive, non_negative and null_rate over the rows matching ``where``."""
    c = table.c
    total = _count(conn, select(func.count()).select_from(table).where(*where))
    out = []
    if positive:
        bad = _count(conn, select(func.count()).select_from(table).where(
            *where, or_(*(c[name] <= 0 for name in positive))))
        out.append(Result("positive", "fail", bad == 0, bad, 0, f"{bad} rows with {' or '.join(positive)} <= 0"))
    if non_negative:
        bad = _count(conn, select(func.count()).select_from(table).where(
            *where, or_(*(c[name] < 0 for name in non_negative))))
        out.append(Result("non_negative", "fail", bad == 0, bad, 0, f"{bad} rows with a negative value"))
    for name, most in limits.get("max_null_rate", {}).items():
        nulls = _count(conn, select(func.count()).select_from(table).where(*where, c[name].is_(None)))
        rate = nulls / total if total else 0.0
        out.append(Result(f"null_rate:{name}", "warn", rate <= most, round(rate, 6), most,
                          f"{nulls} of {total} rows have no {name}"))
    return out


def _series_checks(frame: pd.DataFrame, lo: datetime, limits: dict) -> list[Result]:
    """extreme_return and stale_price from (symbol, time, price) rows, the hour before ``lo`` included."""
    frame = frame.sort_values(["symbol", "time"])
    prev = frame.groupby("symbol")[["time", "price"]].shift(1)
    step = (frame["time"] - prev["time"]) == pd.Timedelta(hours=1)
    moves = (frame["price"] / prev["price"] - 1).abs().where(step & (frame["time"] >= lo) & (prev["price"] > 0))
    most = limits["max_abs_return_1h"]
    jumps = frame.loc[moves > most, "symbol"].unique().tolist()
    inside = frame[frame["time"] >= lo]
    spans = inside.groupby("symbol")["price"].agg(["nunique", "size"])
    stale = spans[(spans["nunique"] == 1) & (spans["size"] >= limits["stale_hours"])].index.tolist()
    return [Result("extreme_return", "warn", not jumps, float(moves.max()) if moves.notna().any() else 0.0, most,
                   f"1-hour moves beyond {most:.0%}: {_names(jumps)}" if jumps else ""),
            Result("stale_price", "warn", not stale, len(stale), limits["stale_hours"],
                   f"unchanged for the whole interval: {_names(stale)}" if stale else "")]


def _covered(frame: pd.DataFrame, symbols: Sequence[str], first: dict, lo: datetime, hi: datetime,
             gap_hours: int) -> tuple[int, int]:
    """(coin-hours expected, coin-hours with a price or inside CoinGecko's own short gap) in [lo, hi).
    A coin is expected from its first price on; before any coin has one (a first load), all are."""
    hours = [lo - HOUR * (gap_hours + 1) + HOUR * i for i in range(int((hi - lo) / HOUR) + 2 * (gap_hours + 1))]
    by_symbol = {symbol: set(times) for symbol, times in frame.groupby("symbol")["time"]}
    expected = covered = 0
    for symbol in symbols:
        since = first[symbol].replace(tzinfo=None) if symbol in first else (lo if not first else hi)
        present = {t.to_pydatetime() for t in by_symbol.get(symbol, ())}
        gaps = source_gaps([h for h in hours if h >= since], present, gap_hours)
        wanted = [h for h in hours if max(lo, since) <= h < hi]
        expected += len(wanted)
        covered += sum(1 for h in wanted if h in present or h in gaps)
    return expected, covered


def check_prices(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    p = schema.price_data_real
    lo, hi, hours = _bounds(interval)
    symbols = [coin.symbol for coin in coins_for(ctx, interval)]
    gap = limits["source_gap_hours"]
    with ctx.engine.connect() as conn:
        where = (p.c.time >= lo, p.c.time < hi, p.c.symbol.in_(symbols))
        first = dict(conn.execute(select(p.c.symbol, func.min(p.c.time)).where(
            p.c.symbol.in_(symbols), p.c.time < hi).group_by(p.c.symbol)).all())
        # the hours after the interval too (a rerun, a backfill): a gap across its end is judged on both sides
        frame = pd.read_sql(select(p.c.symbol, p.c.time, p.c.price).where(
            p.c.time >= lo - timedelta(hours=gap + 1), p.c.time < hi + timedelta(hours=gap + 1),
            p.c.symbol.in_(symbols)), conn)
        expected, covered = _covered(frame, symbols, first, lo, hi, gap)
        frame = frame[frame["time"] < hi]
        inside = frame[frame["time"] >= lo]
        # short (hourly) runs only warn: the day's run holds the day to the threshold
        short = hours < limits["coverage_min_hours"]
        out = [_ratio("rows", covered, expected, limits["min_row_ratio"], "coin-hours with a price or in "
                      f"CoinGecko's own gap ({len(symbols)} coins x {hours:g} h)", "warn" if short else "fail")]
        if not short:
            history = set(conn.execute(select(p.c.symbol).distinct().where(
                p.c.time >= lo - HISTORY, p.c.time < lo, p.c.symbol.in_(symbols))).scalars())
            missing = sorted(history - set(inside["symbol"]))
            out.append(Result("coverage", "fail", not missing, len(missing), 0,
                              f"coins with history and no price in the interval: {_names(missing)}" if missing
                              else ""))
        if first and (never := sorted(set(symbols) - set(first))):  # not listed yet, or a wrong id
            out.append(Result("never_priced", "warn", False, len(never), 0,
                              f"universe coins CoinGecko never gave a price for: {_names(never)}"))
        out += _value_checks(conn, p, where, limits, positive=("price",), non_negative=("market_cap", "total_volume"))
    return out + _series_checks(frame[frame["time"] >= lo - timedelta(hours=1)], lo, limits)


def _rows_like_prices(conn: Connection, table, lo: datetime, hi: datetime, exclude=()) -> tuple[int, int]:
    """(price rows of [lo, hi) outside ``exclude``, how many of them have a row in ``table``)."""
    p = schema.price_data_real
    where = [p.c.time >= lo, p.c.time < hi,
             *(~and_(p.c.time >= to_naive_utc(s), p.c.time < to_naive_utc(e)) for _t, s, e, _c in exclude)]
    expected = _count(conn, select(func.count()).select_from(p).where(*where))
    joined = p.join(table, and_(table.c.symbol == p.c.symbol, table.c.time == p.c.time))
    return expected, _count(conn, select(func.count()).select_from(joined).where(*where))


def check_derived_hourly(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    """technical_indicators and ml_features_materialized: a row for every price row (the features
    leave out the hours of bad input intervals, as their step does)."""
    table = schema.metadata.tables[step.writes]
    lo, hi, _hours = _bounds(interval)
    exclude = quality.bad_ranges(ctx.engine, quality.FEATURE_INPUTS, interval.start, interval.end) \
        if step.writes == schema.ml_features_materialized.name else []
    value_column = "close" if "close" in table.c else "price"
    with ctx.engine.connect() as conn:
        expected, got = _rows_like_prices(conn, table, lo, hi, exclude)
        # a warning: prices may land while the step runs (a concurrent backfill of the next day); the
        # health scan reports what is still missing once it is due, and refills it
        out = [_ratio("rows", got, expected, limits["min_row_ratio"], "price rows with a row here", "warn")]
        where = [table.c.time >= lo, table.c.time < hi]
        if schema.WARMUP_BARS_COLUMN in table.c:  # indicators are NULL by design before the warm-up
            where.append(table.c[schema.WARMUP_BARS_COLUMN] >= schema.WARMUP_COMPLETE_BARS)
        out += _value_checks(conn, table, where, limits, positive=(value_column,))
    return out


def check_onchain(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    o = schema.crypto_onchain_data
    symbol = STEP_SYMBOLS[step.name]
    if symbol not in {coin.symbol for coin in coins_for(ctx, interval)}:
        return [Result("rows", "fail", True, 0, 0, f"{symbol} is not in the universe: nothing expected")]
    days = completed_days(interval, ctx.clock(), step.name)
    if days is None:
        return [Result("rows", "fail", True, 0, 0, "no day of the interval has ended")]
    first, end = days
    where = (o.c.symbol == symbol, o.c.date >= first, o.c.date < end)
    with ctx.engine.connect() as conn:
        got = _count(conn, select(func.count()).select_from(o).where(*where))
        metrics = [name for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
        return [_ratio("rows", got, (end - first).days, limits["min_row_ratio"], f"{symbol} days"),
                *_value_checks(conn, o, where, limits, non_negative=metrics)]


def check_macro(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    """FRED releases are irregular, so a day without a new value is normal; a table that holds no
    value at all after a load means FRED answered nothing."""
    m = schema.macro_indicators
    _lo, hi, _hours = _bounds(interval)
    with ctx.engine.connect() as conn:
        known = _count(conn, select(func.count()).select_from(m).where(m.c.known_at < hi))
    return [Result("rows", "fail", known > 0, known, 1, f"{known} values known by the interval's end")]


def check_news(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    """A news source's own sightings; an interval shorter than a day may have none (hourly runs)."""
    s = schema.crypto_news_sightings
    lo, hi, hours = _bounds(interval)
    source = s.c.source.like("rss:%") if step.source == "rss" else s.c.source == step.source
    with ctx.engine.connect() as conn:
        got = _count(conn, select(func.count()).select_from(s).where(source, s.c.published_at >= lo,
                                                                     s.c.published_at < hi))
    if hours < limits["coverage_min_hours"]:
        return [Result("rows", "fail", True, got, 0, f"{got} articles (an interval under a day may have none)")]
    least = limits["min_rows_per_day"] * int(hours // 24)
    return [Result("rows", "fail", got >= least, got, least, f"{got} articles from {step.source}")]


def check_sentiment(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    n, s = schema.crypto_news, schema.crypto_sentiment_data
    lo, hi, _hours = _bounds(interval)
    where = (n.c.published_at >= lo, n.c.published_at < hi)
    scored = select(s.c.article_id).where(s.c.article_id == n.c.article_id).exists()
    with ctx.engine.connect() as conn:
        expected = _count(conn, select(func.count()).select_from(n).where(*where))
        got = _count(conn, select(func.count()).select_from(n).where(*where, scored))
    return [_ratio("rows", got, expected, limits["min_row_ratio"], "articles scored", "warn")]  # as for indicators


def check_universe(ctx: StepContext, step: Step, interval: Interval, limits: dict) -> list[Result]:
    u = schema.universe_snapshots
    day = interval.start.astimezone(UTC).date()
    with ctx.engine.connect() as conn:
        got = _count(conn, select(func.count()).select_from(u).where(u.c.snapshot_date == day))
    return [Result("rows", "fail", got >= limits["min_rows_per_day"], got, limits["min_rows_per_day"],
                   f"{got} coins in the snapshot of {day}")]


CHECKS: dict[str, Callable[[StepContext, Step, Interval, dict], list[Result]]] = {
    schema.price_data_real.name: check_prices,
    schema.technical_indicators.name: check_derived_hourly,
    schema.ml_features_materialized.name: check_derived_hourly,
    schema.crypto_onchain_data.name: check_onchain,
    schema.macro_indicators.name: check_macro,
    schema.crypto_news.name: check_news,
    schema.crypto_sentiment_data.name: check_sentiment,
    schema.universe_snapshots.name: check_universe,
}


def subject(step: Step) -> str:
    """The name a step's results are recorded under: its table, and its source when steps of other
    sources write the same table (``crypto_news:guardian``); a source's hourly twin shares it."""
    shared = {other.source for other in steps().values() if other.writes == step.writes}
    return f"{step.writes}:{step.source}" if len(shared) > 1 else step.writes


def run_checks(ctx: StepContext, step: Step, interval: Interval) -> list[Result]:
    """Check what ``step`` wrote over ``interval``, and record the results."""
    if step.writes in CHECKS:
        results = CHECKS[step.writes](ctx, step, interval, limits_for(step.writes, ctx.settings.quality_file))
    else:  # a newly registered source: say so on every run, without blocking it
        results = [Result("defined", "warn", False, detail=f"no checks for {step.writes}: add them to "
                                                           "quality/checks.py CHECKS")]
    quality.record_results(ctx.engine, subject(step), interval.start, interval.end, results,
                           datetime.fromtimestamp(ctx.clock(), tz=UTC))
    return results
