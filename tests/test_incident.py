"""The incident this system replaces: five days of prices lost without anyone noticing.

CoinGecko (the sandbox, SYNTHETIC data) answers nothing for five days while the daily runs go on.
The quality gate fails each of those days, the features are not built on them, the health check
reports the hole in its first run after the days are due and plans one bounded backfill for it;
after CoinGecko recovers, that backfill (with ``refetch``, as the health check asks) and the
rebuilds its asset events trigger leave every table byte-identical to an uninterrupted run.
Nothing is filled with placeholders meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from helpers import dump, settings_for, utc
from sqlalchemy import func, select

from cryptoetl.intervals import Interval
from cryptoetl.quality import heal
from cryptoetl.quality.checks import run_checks
from cryptoetl.quality.health import REFETCH, holes
from cryptoetl.sources.coingecko import CoinGeckoClient
from cryptoetl.step import SourceDataMissing, StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import schema

FIRST = utc(2026, 3, 1)
DAYS = 12
OUTAGE = range(3, 8)  # days 3..7: five days
NOW = FIRST + timedelta(days=DAYS, hours=1, minutes=5)  # the health run after the last day is due
TABLES = (schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized)


def _ctx(engine, sandbox, options=(), now=NOW):
    """As at ``now``: a scheduled run of day D runs just after D ends, and CoinGecko serves nothing later."""
    client = CoinGeckoClient(sandbox.base_url, rate_per_minute=60_000, sleep=lambda s: None, max_retries=0)
    return StepContext(settings=settings_for(engine, sandbox), engine=engine, clients={CoinGeckoClient: client},
                       clock=now.timestamp, options=frozenset(options))


def _at_end_of(i: int):
    return _day(i).end + timedelta(minutes=5)


def _day(i: int) -> Interval:
    return Interval(FIRST + timedelta(days=i), FIRST + timedelta(days=i + 1))


def _derived(ctx, interval: Interval) -> None:
    """What the gate's asset event triggers: technical over the interval and its lookahead, then the
    features over that and theirs (operators.resolve_intervals)."""
    technical, features = get_step("technical"), get_step("features")
    built = interval.extended(technical.lookahead_for("price_data_real"))
    technical.execute(ctx, built)
    features.execute(ctx, built.extended(features.lookahead_for("technical_indicators")))


def _daily_run(ctx, i: int) -> list[str]:
    """A scheduled day: load, gate; downstream only when the gate passed (its asset event). A load
    that fails is the task failing: the gate does not run, nothing leaves the run."""
    try:
        get_step("prices").execute(ctx, _day(i))
    except SourceDataMissing as exc:
        return [f"load: {exc}"]
    failed = [r.check for r in run_checks(ctx, get_step("prices"), _day(i)) if r.status == "fail"]
    if not failed:
        _derived(ctx, _day(i))
    return failed


def test_five_lost_days_are_reported_refilled_and_end_byte_identical(tmp_path, sandbox_clean):
    from conftest import _sqlite_engine

    reference, incident = _sqlite_engine(tmp_path / "reference.db"), _sqlite_engine(tmp_path / "incident.db")
    for i in range(DAYS):
        assert _daily_run(_ctx(reference, sandbox_clean, now=_at_end_of(i)), i) == []

    reported_at = None
    for i in range(DAYS):
        outage = i in OUTAGE
        sandbox_clean.set_faults([{"kind": "empty", "count": -1, "path_contains": "market_chart"}] if outage else [])
        failed = _daily_run(_ctx(incident, sandbox_clean, now=_at_end_of(i)), i)
        assert bool(failed) is outage, (i, failed)  # every lost day fails (its load refuses to erase), no other
        # the hourly health run once the day is due (its daily run ends within the hour)
        health = _day(i).end + timedelta(hours=1, minutes=5)
        found, _gaps = holes(_ctx(incident, sandbox_clean, now=health), health - timedelta(days=7), health)
        if reported_at is None and any(h.table == "price_data_real" for h in found):
            reported_at = i
    assert reported_at == OUTAGE[0]  # reported by the first health run after the first lost day is due
    sandbox_clean.set_faults([])
    lost = Interval(_day(OUTAGE[0]).start, _day(OUTAGE[-1]).end)
    with incident.connect() as conn:  # honest gaps: no placeholder row anywhere in the lost days
        for table in TABLES:
            assert conn.execute(select(func.count()).select_from(table).where(
                table.c.time >= lost.start.replace(tzinfo=None), table.c.time < lost.end.replace(tzinfo=None))
            ).scalar() == 0, table.name

    # CoinGecko is back. The health run plans one bounded backfill of the whole hole: the lost days,
    # and the first hour after them (its point was stamped in the last lost hour).
    ctx = _ctx(incident, sandbox_clean)
    found, _gaps = holes(ctx, FIRST, NOW)
    price_holes = [h for h in found if h.table == "price_data_real"]
    assert [(h.start, set(h.keys)) for h in price_holes] == [(lost.start, {c.symbol for c in ctx.settings.symbols})]
    assert price_holes[0].end in (lost.end, lost.end + timedelta(days=1))
    decisions = heal.decide(found, [], {}, NOW, budget=7)
    (backfill,) = [d for d in decisions if d.action == "backfill"]
    assert backfill.hole.dag_id == "prices_coingecko" and backfill.hole.start == lost.start
    assert all(d.action == "follows" for d in decisions if d.hole.table != "price_data_real")
    first, last = backfill.hole.backfill_dates()
    assert f"--from-date {first} --to-date {last}" in backfill.hole.command()

    # The backfill's runs (conf options ["refetch"], as heal passes them) and what their events trigger.
    for i in range((first - FIRST.date()).days, (last - FIRST.date()).days + 1):
        assert _daily_run(_ctx(incident, sandbox_clean, options={REFETCH}), i) == []
    for table in TABLES:
        assert dump(incident, table) == dump(reference, table), table.name
    found, _gaps = holes(ctx, FIRST, NOW)
    assert [h for h in found if h.table in {t.name for t in TABLES}] == []
