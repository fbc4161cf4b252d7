"""Data health: holes and stale tables (quality/health.py), the bounded self-healing that backfills
them through Airflow's REST API (quality/heal.py, against a small in-process fake of Airflow 3's
/auth/token and /api/v2/backfills), and the health step and command (quality/report.py, cli.py).

The warehouse is seeded with plain SQL inserts (no API call). Data is SYNTHETIC.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import settings_for
from sqlalchemy import delete, func, insert, select

from cryptoetl.config import UNIVERSE
from cryptoetl.intervals import Interval
from cryptoetl.quality import heal as healing
from cryptoetl.quality.heal import MAX_ATTEMPTS, AirflowApi, AirflowApiError, decide, heal
from cryptoetl.quality.health import Hole, fred_publishes_before, freshness, holes
from cryptoetl.quality.report import DataHealthAlert, run_health
from cryptoetl.step import StepContext
from cryptoetl.warehouse import quality, schema

H = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)  # every day up to 03-19 is due (due_hours after its end)
COINS = {coin.symbol: coin for coin in UNIVERSE}


def day(d: int) -> datetime:
    """00:00 UTC of 2026-03-``d``."""
    return datetime(2026, 3, d, tzinfo=UTC)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def _ctx(engine, symbols=("BTC", "ETH", "SOL"), now: datetime = NOW, **overrides) -> StepContext:
    settings = settings_for(engine, symbols=tuple(COINS[s] for s in symbols), **overrides)
    return StepContext(settings=settings, engine=engine, clock=lambda: now.timestamp())


def _insert(engine, table, rows: list[dict]) -> None:
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(table), rows)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    return [start + H * i for i in range(int((end - start) / H))]


def _seed_prices(engine, symbol: str, start: datetime, end: datetime, *, derived: bool = True) -> None:
    """Hourly prices of [start, end), with their indicator and feature rows when ``derived``."""
    times = [_naive(t) for t in _hours(start, end)]
    prices = [{"symbol": symbol, "time": t, "price": 100.0 + i * 0.01, "market_cap": 1e9, "total_volume": 1e6,
               "source": "sandbox-synthetic"} for i, t in enumerate(times)]
    _insert(engine, schema.price_data_real, prices)
    if derived:
        counts = {c.name: 0 for c in schema.ml_features_materialized.c if c.name.endswith("_count")}
        _insert(engine, schema.technical_indicators, [{"symbol": symbol, "time": r["time"], "close": r["price"]}
                                                      for r in prices])
        _insert(engine, schema.ml_features_materialized, [
            {"symbol": symbol, "time": r["time"], "price": r["price"], "is_synthetic": True, **counts} for r in prices])


def _drop(engine, table, symbol: str, start: datetime, end: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.symbol == symbol, table.c.time >= _naive(start),
                                         table.c.time < _naive(end)))


def _drop_everywhere(engine, symbol: str, start: datetime, end: datetime) -> None:
    for table in (schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized):
        _drop(engine, table, symbol, start, end)


def _shape(hole: Hole) -> tuple:
    return hole.table, hole.step, hole.start, hole.end, hole.keys, hole.missing, hole.unit


# -- holes -----------------------------------------------------------------------------------------

def test_holes_in_prices_and_a_derived_table_with_the_backfill_that_fills_each(engine):
    for symbol in ("BTC", "ETH"):
        _seed_prices(engine, symbol, day(9), NOW - H)
    _seed_prices(engine, "SOL", day(15) + 12 * H, NOW - H)  # listed later: nothing expected before
    _drop_everywhere(engine, "ETH", day(14), day(15))  # a whole day of one coin
    _drop_everywhere(engine, "BTC", day(15) + 2 * H, day(15) + 9 * H)  # 7 h: longer than CoinGecko's gaps
    _drop_everywhere(engine, "BTC", day(12) + 5 * H, day(12) + 11 * H)  # 6 h inside: CoinGecko's own gap
    _drop_everywhere(engine, "BTC", day(20), day(20) + 9 * H)  # today's hours: late, not missing
    _drop(engine, schema.technical_indicators, "BTC", day(17) + 5 * H, day(17) + 11 * H)

    found, source_gaps = holes(_ctx(engine), day(10), day(21))

    assert [_shape(h) for h in found] == [
        ("price_data_real", "prices", day(14), day(16), ("BTC", "ETH"), 24 + 7, "coin-hours"),
        ("technical_indicators", "technical", day(17), day(18), ("BTC",), 6, "coin-hours"),
    ]
    assert source_gaps == 6
    prices, technical = found
    assert prices.dag_id == "prices_coingecko" and prices.fillable
    assert prices.backfill_dates() == (date(2026, 3, 14), date(2026, 3, 15))
    # a prices refill fetches again: the landing store may hold an outage's empty answer
    assert prices.command() == ("airflow backfill create --dag-id prices_coingecko --from-date 2026-03-14 "
                                "--to-date 2026-03-15 --reprocess-behavior completed "
                                "--dag-run-conf '{\"options\": [\"refetch\"]}'")
    # a derived DAG's run of day D covers the hours up to its time on D+1: one day earlier, one day later
    assert technical.command() == ("airflow backfill create --dag-id technical_indicators --from-date 2026-03-16 "
                                   "--to-date 2026-03-18 --reprocess-behavior completed")


def test_gaps_at_the_edges_of_the_scanned_days(engine):
    _seed_prices(engine, "BTC", day(9), NOW - H)
    _drop_everywhere(engine, "BTC", day(10), day(10) + 3 * H)  # 3 h at the range's start, a price the hour before
    _drop_everywhere(engine, "BTC", day(19) + 14 * H, day(20) + 3 * H)  # into today: its due hours are a hole
    found, source_gaps = holes(_ctx(engine, ["BTC"]), day(10), day(21))
    assert source_gaps == 3
    assert [_shape(h) for h in found] == [("price_data_real", "prices", day(19), day(20), ("BTC",), 10, "coin-hours")]
    # a range ending earlier: only its days
    found, _gaps = holes(_ctx(engine, ["BTC"]), day(10), day(19))
    assert found == []


@pytest.mark.parametrize("edge", ["range start", "due end"])
def test_a_short_source_gap_across_an_edge_of_the_scanned_hours_is_not_a_hole(engine, edge):
    """4 h missing with prices on both sides is CoinGecko's own gap wherever the scan's edges fall: at
    the range's start (the health DAG's window), or where the due days end (the price closing the gap
    is loaded, only not due yet: for a whole day every hourly health run backfills prices with refetch
    for a gap CoinGecko will never fill, until the next midnight is due and the gap is one again)."""
    _seed_prices(engine, "BTC", day(5), NOW - H)
    if edge == "range start":
        _drop_everywhere(engine, "BTC", day(10) - 2 * H, day(10) + 2 * H)
    else:  # 22:00-02:00 across the midnight where the due days end
        _drop_everywhere(engine, "BTC", day(20) - 2 * H, day(20) + 2 * H)
    found, source_gaps = holes(_ctx(engine, ["BTC"]), day(10), day(21))
    assert [_shape(h) for h in found] == []
    assert source_gaps == 2  # the gap's hours inside the scanned ones


def test_daily_holes_of_onchain_news_macro_and_sentiment(engine):
    onchain = [{"symbol": "BTC", "date": d.date(), "data_source": "blockchain.info-sandbox-synthetic",
                "is_synthetic": True, "transaction_count": 1.0, "complete_at": _naive(d + DAY + 6 * H)}
               for d in (day(n) for n in range(10, 20)) if d != day(13)]
    _insert(engine, schema.crypto_onchain_data, onchain)
    _insert(engine, schema.crypto_news_sightings, [
        {"source": "guardian", "article_id": f"g{n}", "published_at": _naive(day(n) + 9 * H), "title": "SYNTHETIC",
         "url": f"https://news.test/{n}", "is_synthetic": True} for n in range(10, 20) if n not in (12, 13)])
    # FRED values become known the day after each US business day: Tuesday to Saturday (03-14 is a
    # Saturday: Friday's values); none on 03-15/16 (after the weekend) is normal; 03-11 has none
    known = [n for n in range(10, 20) if day(n).weekday() in (1, 2, 3, 4, 5) and n != 11]
    _insert(engine, schema.macro_indicators, [
        {"series_id": "DFF", "observation_date": date(2026, 3, n - 2), "realtime_start": date(2026, 3, n - 1),
         "indicator_name": "fed_funds_rate", "value": 3.6, "known_at": _naive(day(n) + 6 * H),
         "known_at_rule": "alfred+30h", "frequency": "daily", "units": "Percent", "source": "fred-sandbox-synthetic"}
        for n in known])
    _insert(engine, schema.crypto_news, [
        {"article_id": f"a{i}", "published_at": _naive(day(16) + (3 + i) * H), "source": "guardian",
         "title": "SYNTHETIC", "url": f"https://news.test/a{i}", "category": "crypto", "is_synthetic": True}
        for i in range(3)])
    _insert(engine, schema.crypto_sentiment_data, [
        {"article_id": "a0", "model_id": "test/cryptobert", "model_revision": "r1", "model_key": "cryptobert",
         "published_at": _naive(day(16) + 3 * H), "label": "neutral", "score": 0.0, "p_positive": 0.3,
         "p_negative": 0.3, "p_neutral": 0.4, "text_sha256": "0" * 64, "is_synthetic": True}])

    found, _gaps = holes(_ctx(engine), day(10), day(21))

    by_table = {h.table: h for h in found}
    assert sorted(_shape(h) for h in found) == sorted([
        ("crypto_onchain_data:blockchain_info", "onchain_btc", day(13), day(14), (), 1, "days"),
        ("crypto_news:guardian", "news_guardian", day(12), day(14), (), 2, "days"),
        ("macro_indicators", "macro", day(11), day(12), (), 1, "days"),
        ("crypto_sentiment_data", "sentiment", day(16), day(17), (), 2, "articles"),
    ])  # no ETH on-chain, no CryptoPanic: a source that never delivered has no history to miss
    assert by_table["crypto_onchain_data:blockchain_info"].command() == (
        "airflow backfill create --dag-id onchain_blockchain_info --from-date 2026-03-13 --to-date 2026-03-13 "
        "--reprocess-behavior completed")
    assert by_table["crypto_news:guardian"].backfill_dates() == (date(2026, 3, 12), date(2026, 3, 13))
    assert by_table["crypto_sentiment_data"].backfill_dates() == (date(2026, 3, 15), date(2026, 3, 17))


@pytest.mark.parametrize("table", ["crypto_onchain_data", "macro_indicators"])
def test_a_daily_tables_own_due_hours_decide_which_days_are_due(engine, tmp_path, table):
    """With due_hours 36 (CRYPTOETL_QUALITY_FILE), at 03-20 12:00 the days up to 03-18 are due, not 03-19;
    with the packaged due_hours 03-19 is due, and missing."""
    overrides = tmp_path / "quality.json"
    overrides.write_text(json.dumps({table: {"due_hours": 36}}))
    if table == "crypto_onchain_data":
        _insert(engine, schema.crypto_onchain_data, [
            {"symbol": "BTC", "date": day(n).date(), "data_source": "blockchain.info-sandbox-synthetic",
             "is_synthetic": True, "transaction_count": 1.0, "complete_at": _naive(day(n) + DAY + 6 * H)}
            for n in range(10, 19)])
    else:  # 03-16 to 03-18, and not 03-19 (a Thursday: Wednesday's values)
        _insert(engine, schema.macro_indicators, [
            {"series_id": "DFF", "observation_date": date(2026, 3, n - 2), "realtime_start": date(2026, 3, n - 1),
             "indicator_name": "fed_funds_rate", "value": 3.6, "known_at": _naive(day(n) + 6 * H),
             "known_at_rule": "alfred+30h", "frequency": "daily", "units": "Percent",
             "source": "fred-sandbox-synthetic"} for n in (16, 17, 18)])
    [hole] = holes(_ctx(engine), day(16), day(21))[0]
    assert (hole.table.split(":")[0], hole.start, hole.end, hole.missing) == (table, day(19), day(20), 1)
    found, _gaps = holes(_ctx(engine, quality_file=str(overrides)), day(16), day(21))
    assert [_shape(h) for h in found] == []


def test_macro_mondays_are_not_holes_when_values_become_known_the_day_after_each_business_day(engine):
    """What the macro step loads from FRED (the sandbox shows it too): values known at 06:00 Tuesday to
    Saturday, from releases Monday to Friday. Nothing is missing."""
    known = [n for n in range(10, 20) if day(n).weekday() in (1, 2, 3, 4, 5)]  # 03-10 .. 03-19: Tue-Sat
    _insert(engine, schema.macro_indicators, [
        {"series_id": "DFF", "observation_date": date(2026, 3, n - 2), "realtime_start": date(2026, 3, n - 1),
         "indicator_name": "fed_funds_rate", "value": 3.6, "known_at": _naive(day(n) + 6 * H),
         "known_at_rule": "lag+1bd+30h", "frequency": "daily", "units": "Percent",
         "source": "fred-sandbox-synthetic"} for n in known])
    found, _gaps = holes(_ctx(engine), day(10), day(21))
    assert [_shape(h) for h in found] == []  # not 03-15 (after a Saturday) nor 03-16 (a Monday)

    with engine.begin() as conn:  # Thursday's values (known Friday 03-13) are missing: a hole
        m = schema.macro_indicators
        conn.execute(delete(m).where(m.c.known_at == _naive(day(13) + 6 * H)))
    found, _gaps = holes(_ctx(engine), day(10), day(21))
    assert [_shape(h) for h in found] == [("macro_indicators", "macro", day(13), day(14), (), 1, "days")]


def test_no_macro_value_is_expected_the_day_after_a_us_federal_holiday(engine):
    """Presidents' Day (Monday 2026-02-16): no FRED release, so nothing becomes known on 02-17; the
    day after the Tuesday is expected again."""
    assert not fred_publishes_before(date(2026, 2, 17))  # after Presidents' Day
    assert not fred_publishes_before(date(2026, 2, 16)) and not fred_publishes_before(date(2026, 2, 15))  # weekend
    assert fred_publishes_before(date(2026, 2, 18)) and fred_publishes_before(date(2026, 2, 14))  # Tue, Fri
    assert not fred_publishes_before(date(2026, 7, 4))  # 07-03: Independence Day observed (07-04 a Saturday)
    assert not fred_publishes_before(date(2026, 12, 26)) and not fred_publishes_before(date(2027, 1, 2))

    known = [date(2026, 2, n) for n in (10, 11, 12, 13, 14, 18, 19, 20, 21)]  # Tue-Sat, but not 02-17
    _insert(engine, schema.macro_indicators, [
        {"series_id": "DFF", "observation_date": d - 2 * DAY, "realtime_start": d - DAY,
         "indicator_name": "fed_funds_rate", "value": 3.6, "known_at": datetime.combine(d, datetime.min.time()) + 6 * H,
         "known_at_rule": "lag+1bd+30h", "frequency": "daily", "units": "Percent",
         "source": "fred-sandbox-synthetic"} for d in known])
    feb = datetime(2026, 2, 10, tzinfo=UTC)
    found, _gaps = holes(_ctx(engine), feb, feb + 12 * DAY)
    assert [_shape(h) for h in found] == []

    with engine.begin() as conn:  # the Tuesday after the holiday published: its value is due on 02-18
        conn.execute(delete(schema.macro_indicators).where(
            schema.macro_indicators.c.known_at == datetime(2026, 2, 18, 6)))
    found, _gaps = holes(_ctx(engine), feb, feb + 12 * DAY)
    assert [_shape(h) for h in found] == [
        ("macro_indicators", "macro", feb + 8 * DAY, feb + 9 * DAY, (), 1, "days")]


def test_freshness_counts_an_hourly_row_from_the_end_of_its_hour(engine):
    _seed_prices(engine, "BTC", NOW - 3 * H, NOW - H, derived=False)  # newest 11:00: fresh until its hour ends
    _insert(engine, schema.technical_indicators, [{"symbol": "BTC", "time": _naive(NOW - 28 * H), "close": 1.0}])
    counts = {c.name: 0 for c in schema.ml_features_materialized.c if c.name.endswith("_count")}
    _insert(engine, schema.ml_features_materialized, [{"symbol": "BTC", "time": _naive(NOW - 30 * H), "price": 1.0,
                                                       "is_synthetic": True, **counts}])
    _insert(engine, schema.universe_snapshots, [{"known_at": _naive(NOW - 27 * H), "symbol": "BTC",
                                                 "snapshot_date": (NOW - 27 * H).date(), "coingecko_id": "bitcoin",
                                                 "source": "sandbox-synthetic"}])
    got = {f.table: f for f in freshness(engine, NOW)}
    assert {t: (f.newest, f.age_hours(NOW), f.target_hours, f.stale(NOW)) for t, f in got.items()} == {
        "price_data_real": (NOW - H, 1.0, 26, False),
        "technical_indicators": (NOW - 27 * H, 27.0, 27, False),  # exactly at its target: still fresh
        "ml_features_materialized": (NOW - 29 * H, 29.0, 28, True),
        "universe_snapshots": (NOW - 27 * H, 27.0, 26, True),
        **{t: (None, None, got[t].target_hours, True) for t in (
            "macro_indicators", "crypto_onchain_data", "crypto_news", "crypto_sentiment_data")},
    }
    assert {t: got[t].target_hours for t in ("macro_indicators", "crypto_onchain_data")} == {
        "macro_indicators": 120, "crypto_onchain_data": 60}


# -- decide: the bounds (pure) ---------------------------------------------------------------------

def _hole(table: str, step: str, start: datetime, days: int, **extra) -> Hole:
    return Hole(table, step, start, start + DAY * days, (), 24 * days, "coin-hours", **extra)


def _attempt(hole: Hole, created: datetime, backfill_id: int = 1, action: str = "backfill") -> dict:
    return {"dag_id": hole.dag_id, "action": action, "interval_start": hole.start, "interval_end": hole.end,
            "created_at": created, "backfill_id": backfill_id, "table_name": hole.table}


def _actions(decisions) -> list[tuple]:
    return [(d.hole.table, d.action, d.hole.start, d.hole.end) for d in decisions]


def test_the_budget_trims_a_long_hole_and_defers_the_rest():
    prices = _hole("price_data_real", "prices", day(1), 10)
    macro = _hole("macro_indicators", "macro", day(12), 2)
    news = _hole("crypto_news:guardian", "news_guardian", day(15), 3)
    assert _actions(decide([news, macro, prices], [], {}, NOW, 7)) == [
        ("price_data_real", "backfill", day(1), day(8)),  # oldest days first, 7 of 10
        ("macro_indicators", "budget", day(12), day(14)),
        ("crypto_news:guardian", "budget", day(15), day(18)),
    ]
    assert _actions(decide([news, macro], [], {}, NOW, 4)) == [
        ("macro_indicators", "backfill", day(12), day(14)),
        ("crypto_news:guardian", "backfill", day(15), day(17)),
    ]
    assert _actions(decide([macro], [], {}, NOW, 0)) == [("macro_indicators", "budget", day(12), day(14))]


def test_a_dag_with_a_running_backfill_is_skipped_and_one_dag_gets_one_backfill_a_run():
    first = _hole("price_data_real", "prices", day(1), 1)
    second = _hole("price_data_real", "prices", day(5), 1)
    macro = _hole("macro_indicators", "macro", day(3), 1)
    got = decide([first, second, macro], [], {"prices_coingecko": {42}, "macro_fred": set()}, NOW, 7)
    assert [(d.hole.table, d.action) for d in got] == [
        ("price_data_real", "running"), ("macro_indicators", "backfill"), ("price_data_real", "running")]
    # without a running one: the first hole's backfill is created, the second waits for the next run
    got = decide([first, second], [], {}, NOW, 7)
    assert [(d.hole.start, d.action) for d in got] == [(day(1), "backfill"), (day(5), "running")]


@pytest.mark.parametrize("attempts,since,action", [
    (1, timedelta(minutes=59), "wait"), (1, timedelta(minutes=61), "backfill"),
    (2, timedelta(hours=1, minutes=59), "wait"), (2, timedelta(hours=2, minutes=1), "backfill"),
    (3, timedelta(hours=3, minutes=59), "wait"), (3, timedelta(hours=4, minutes=1), "backfill"),
    (7, timedelta(hours=63), "wait"), (7, timedelta(hours=65), "backfill"),
    (MAX_ATTEMPTS, timedelta(days=10), "gave_up"),
])
def test_backoff_doubles_between_attempts_and_gives_up_after_the_last(attempts, since, action):
    hole = _hole("price_data_real", "prices", day(10), 1)
    newest = NOW - since
    history = [_attempt(hole, newest - k * timedelta(days=3), backfill_id=100 + k) for k in range(attempts)]
    [decision] = decide([hole], history, {"prices_coingecko": set()}, NOW, 7)
    assert decision.action == action
    if action == "backfill":
        assert decision.detail == f"attempt {attempts + 1}"


def test_an_attempt_on_other_days_or_another_dag_does_not_count():
    hole = _hole("price_data_real", "prices", day(10), 1)
    other_day = {**_attempt(hole, NOW - timedelta(minutes=5)), "interval_start": day(11), "interval_end": day(12)}
    other_dag = {**_attempt(hole, NOW - timedelta(minutes=5)), "dag_id": "macro_fred"}
    skipped = {**_attempt(hole, NOW - timedelta(minutes=5)), "action": "gave_up", "backfill_id": None}
    [decision] = decide([hole], [other_day, other_dag, skipped], {}, NOW, 7)
    assert (decision.action, decision.detail) == ("backfill", "attempt 1")


def test_derived_holes_inside_an_input_hole_follow_it():
    prices = _hole("price_data_real", "prices", day(10), 2)
    inside = _hole("technical_indicators", "technical", day(11), 1)
    features_inside = _hole("ml_features_materialized", "features", day(10), 1)
    elsewhere = _hole("technical_indicators", "technical", day(15), 1)
    onchain = _hole("crypto_onchain_data:blockchain_info", "onchain_btc", day(17), 1)
    features_onchain = _hole("ml_features_materialized", "features", day(17), 1)
    got = {(d.hole.table, d.hole.start): d.action
           for d in decide([prices, inside, features_inside, elsewhere, onchain, features_onchain], [], {}, NOW, 30)}
    assert got == {
        ("price_data_real", day(10)): "backfill",
        ("technical_indicators", day(11)): "follows",
        ("ml_features_materialized", day(10)): "follows",  # its input technical_indicators... and prices' hole
        ("technical_indicators", day(15)): "backfill",
        ("crypto_onchain_data:blockchain_info", day(17)): "backfill",
        ("ml_features_materialized", day(17)): "backfill",  # an on-chain hole leaves feature rows, with NULLs
    }


def test_a_derived_hole_over_days_an_input_was_just_backfilled_follows_the_rebuild():
    """The health run right after a prices refill sees the indicators and features not rebuilt yet:
    their rebuild is under way (the refill's asset events), so no backfill of their own; later, yes."""
    features = _hole("ml_features_materialized", "features", day(10), 2)
    refill = {"dag_id": "prices_coingecko", "action": "backfill", "backfill_id": 3, "table_name": "price_data_real",
              "interval_start": day(9), "interval_end": day(13), "created_at": NOW - timedelta(minutes=20)}
    [decision] = decide([features], [refill], {}, NOW, 7)
    assert decision.action == "follows"
    [decision] = decide([features], [{**refill, "created_at": NOW - timedelta(hours=2)}], {}, NOW, 7)
    assert decision.action == "backfill"  # the rebuild had its time: the hole is the features' own
    [decision] = decide([features], [{**refill, "interval_start": day(14), "interval_end": day(15)}], {}, NOW, 7)
    assert decision.action == "backfill"  # a refill of other days


def test_a_hole_the_source_cannot_serve_is_reported_not_refilled():
    hole = _hole("price_data_real", "prices", day(1), 1, fillable=False, why="beyond the plan")
    [decision] = decide([hole], [], {}, NOW, 7)
    assert (decision.action, decision.detail) == ("cannot", "beyond the plan")


# -- heal: through a fake Airflow REST API ---------------------------------------------------------

TOKEN = "jwt-for-healer"
POST_FIELDS = {"dag_id", "from_date", "to_date", "run_backwards", "dag_run_conf", "reprocess_behavior",
               "max_active_runs", "run_on_latest_version"}  # BackfillPostBody (StrictBaseModel: no others)


class FakeAirflow:
    """/auth/token and /api/v2/backfills as Airflow 3 serves them (simple auth manager, routes
    public/backfills.py): 201 + access_token; POST 200 BackfillResponse or 409 while the DAG has a
    backfill not completed; GET ?dag_id= (required) -> {"backfills": [...], "total_entries": n}."""

    def __init__(self) -> None:
        self.backfills: list[dict] = []
        self.posts: list[dict] = []
        self.token_requests = 0
        self.refuse_next = False  # answer 409 once, as when another backfill started in between
        self.forbidden: set[str] = set()  # DAGs this account may not backfill: 403
        self.lock = threading.Lock()

    def complete(self, backfill_id: int) -> None:
        with self.lock:
            next(b for b in self.backfills if b["id"] == backfill_id)["completed_at"] = "2026-03-20T13:00:00Z"

    def handle(self, method: str, path: str, headers, body: dict | None) -> tuple[int, dict]:
        url = urlsplit(path)
        with self.lock:
            if method == "POST" and url.path == "/auth/token":
                self.token_requests += 1
                if body == {"username": "healer", "password": "s3cret"}:
                    return 201, {"access_token": TOKEN}
                return 401, {"detail": "Invalid credentials"}
            if url.path != "/api/v2/backfills":
                return 404, {"detail": "Not Found"}
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {"detail": "Not authenticated"}
            if method == "GET":
                query = parse_qs(url.query)
                if "dag_id" not in query:
                    return 422, {"detail": [{"type": "missing", "loc": ["query", "dag_id"]}]}
                found = [b for b in self.backfills if b["dag_id"] == query["dag_id"][0]]
                return 200, {"backfills": found, "total_entries": len(found)}
            self.posts.append(body)
            if set(body) - POST_FIELDS or {"dag_id", "from_date", "to_date"} - set(body):
                return 422, {"detail": "invalid body"}
            dag = body["dag_id"]
            if dag in self.forbidden:
                return 403, {"detail": "Forbidden"}
            if self.refuse_next or any(b["dag_id"] == dag and b["completed_at"] is None for b in self.backfills):
                self.refuse_next = False
                return 409, {"detail": f"There is already a running backfill for dag {dag}"}
            made = {"id": len(self.backfills) + 1, "dag_id": dag, "from_date": body["from_date"],
                    "to_date": body["to_date"], "dag_run_conf": body.get("dag_run_conf"), "is_paused": False,
                    "reprocess_behavior": body.get("reprocess_behavior", "none"),
                    "max_active_runs": body.get("max_active_runs", 10), "created_at": "2026-03-20T12:00:00Z",
                    "completed_at": None, "updated_at": "2026-03-20T12:00:00Z", "dag_display_name": dag}
            self.backfills.append(made)
            return 200, made


@pytest.fixture
def airflow():
    fake = FakeAirflow()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(method, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            self._answer("GET")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://healer:s3cret@127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _recorded(engine) -> list[tuple]:
    return sorted((a["dag_id"], a["table_name"], a["interval_start"], a["interval_end"], a["action"], a["backfill_id"])
                  for a in quality.actions(engine))


def test_heal_creates_the_backfill_and_not_a_second_one_while_it_runs(engine, airflow):
    ctx = _ctx(engine, airflow_api_url=airflow.url)
    api = healing.api_from_settings(ctx.settings)
    hole = Hole("price_data_real", "prices", day(14), day(16), ("ETH",), 48, "coin-hours")

    [made] = heal(ctx, [hole], api, NOW)
    assert (made.action, made.backfill_id) == ("backfill", 1)
    assert airflow.posts == [{"dag_id": "prices_coingecko", "from_date": "2026-03-14T00:00:00Z",
                              "to_date": "2026-03-15T00:00:00Z", "reprocess_behavior": "completed",
                              "max_active_runs": 2, "dag_run_conf": {"options": ["refetch"]}}]
    [action] = quality.actions(engine)
    assert (action["dag_id"], action["table_name"], action["interval_start"], action["interval_end"],
            action["action"], action["backfill_id"], action["created_at"]) == (
        "prices_coingecko", "price_data_real", day(14), day(16), "backfill", 1, NOW)
    assert hole.command() in action["detail"] and action["detail"].startswith("attempt 1")

    # the next hourly runs: the backfill still runs, so no second one (nor a 409 to provoke)
    for later in (NOW + H, NOW + 3 * H):
        [again] = heal(ctx, [hole], api, later)
        assert again.action == "running"
    assert len(airflow.posts) == 1 and len(quality.actions(engine)) == 1

    # done, and the hole is still there: the second attempt, past its one hour of backoff
    airflow.complete(1)
    [second] = heal(ctx, [hole], api, NOW + 3 * H)
    assert (second.action, second.backfill_id, second.detail.split(":")[0]) == ("backfill", 2, "attempt 2")
    airflow.complete(2)
    [third] = heal(ctx, [hole], api, NOW + 4 * H)  # two attempts: two hours after the last
    assert third.action == "wait" and len(airflow.posts) == 2
    assert _recorded(engine) == [("prices_coingecko", "price_data_real", day(14), day(16), "backfill", 1),
                                 ("prices_coingecko", "price_data_real", day(14), day(16), "backfill", 2)]
    assert airflow.token_requests == 1  # one JWT for the whole session


def test_heal_backfills_a_derived_dag_a_day_wider_without_the_refetch_option(engine, airflow):
    ctx = _ctx(engine, airflow_api_url=airflow.url)
    hole = Hole("technical_indicators", "technical", day(17), day(18), ("BTC",), 6, "coin-hours")
    [made] = heal(ctx, [hole], AirflowApi(airflow.url), NOW)
    assert made.action == "backfill"
    assert airflow.posts == [{"dag_id": "technical_indicators", "from_date": "2026-03-16T00:00:00Z",
                              "to_date": "2026-03-18T00:00:00Z", "reprocess_behavior": "completed",
                              "max_active_runs": 2, "dag_run_conf": {}}]
    assert _recorded(engine) == [("technical_indicators", "technical_indicators", day(17), day(18), "backfill", 1)]


def test_an_api_error_on_one_hole_keeps_the_backfills_already_created_on_record(engine, airflow):
    """A 403 for one DAG is that hole's error: the backfill made before it stays recorded (so it counts
    as an attempt, with its backoff), and the run goes on."""
    ctx = _ctx(engine, airflow_api_url=airflow.url)
    airflow.forbidden = {"macro_fred"}
    prices = Hole("price_data_real", "prices", day(11), day(12), ("ETH",), 24, "coin-hours")
    macro = Hole("macro_indicators", "macro", day(12), day(13), (), 1, "days")
    got = heal(ctx, [prices, macro], AirflowApi(airflow.url), NOW)
    assert [(d.hole.dag_id, d.action) for d in got] == [("prices_coingecko", "backfill"), ("macro_fred", "error")]
    assert "HTTP 403" in got[1].detail
    assert [(a[0], a[4]) for a in _recorded(engine)] == [("macro_fred", "error"), ("prices_coingecko", "backfill")]


def test_percent_encoded_credentials_are_decoded(airflow):
    quoted = airflow.url.replace("healer:s3cret", "heal%65r:s3cr%65t")  # what a password with @ / % needs
    assert AirflowApi(quoted).running("prices_coingecko") == set() and airflow.token_requests == 1


def test_a_409_from_airflow_means_running_and_records_nothing(engine, airflow):
    ctx = _ctx(engine, airflow_api_url=airflow.url)
    airflow.refuse_next = True
    hole = Hole("macro_indicators", "macro", day(11), day(12), (), 1, "days")
    [decision] = heal(ctx, [hole], AirflowApi(airflow.url), NOW)
    assert decision.action == "running" and "Airflow refused" in decision.detail
    assert quality.actions(engine) == []
    assert [p["dag_id"] for p in airflow.posts] == ["macro_fred"]


def test_airflow_refusing_the_credentials_is_an_error(airflow):
    api = AirflowApi(airflow.url.replace("s3cret", "wrong"))
    with pytest.raises(AirflowApiError, match="auth/token: HTTP 401"):
        api.running("prices_coingecko")
    with pytest.raises(AirflowApiError, match="user:password@host:port"):
        AirflowApi("not a url")


def test_giving_up_is_recorded_once_not_on_every_run(engine):
    ctx = _ctx(engine)
    hole = Hole("price_data_real", "prices", day(17), day(18), ("ETH",), 24, "coin-hours")
    with engine.begin() as conn:
        for k in range(MAX_ATTEMPTS):
            quality.record_action(conn, now=NOW - timedelta(days=2) + k * H, dag_id="prices_coingecko",
                                  table="price_data_real", start=day(17), end=day(18), action="backfill",
                                  backfill_id=k + 1)
    for later in (NOW, NOW + H, NOW + 5 * H):
        [decision] = heal(ctx, [hole], None, later)
        assert decision.action == "gave_up"
    gave_up = [a for a in quality.actions(engine) if a["action"] == "gave_up"]
    assert [(a["dag_id"], a["interval_start"], a["created_at"]) for a in gave_up] == [
        ("prices_coingecko", day(17), NOW)]


# -- the health step and command -------------------------------------------------------------------

def _seed_fresh_everything(engine) -> None:
    for symbol in ("BTC", "ETH"):
        _seed_prices(engine, symbol, NOW - 3 * DAY, NOW - H)
    _insert(engine, schema.macro_indicators, [{
        "series_id": "DFF", "observation_date": date(2026, 3, 18), "realtime_start": date(2026, 3, 19),
        "indicator_name": "fed_funds_rate", "value": 3.6, "known_at": _naive(NOW - 6 * H),
        "known_at_rule": "alfred+30h", "frequency": "daily", "units": "Percent", "source": "fred-sandbox-synthetic"}])
    _insert(engine, schema.crypto_onchain_data, [{
        "symbol": s, "date": date(2026, 3, 19), "data_source": "sandbox-synthetic", "is_synthetic": True,
        "transaction_count": 1.0, "complete_at": _naive(NOW - 6 * H)} for s in ("BTC", "ETH")])
    _insert(engine, schema.crypto_news, [{
        "article_id": "a1", "published_at": _naive(NOW - 2 * H), "source": "guardian", "title": "SYNTHETIC",
        "url": "https://news.test/a1", "category": "crypto", "is_synthetic": True}])
    _insert(engine, schema.crypto_news_sightings, [{
        "source": "guardian", "article_id": "a1", "published_at": _naive(NOW - 2 * H), "title": "SYNTHETIC",
        "url": "https://news.test/a1", "is_synthetic": True}])
    _insert(engine, schema.crypto_sentiment_data, [{
        "article_id": "a1", "model_id": "test/cryptobert", "model_revision": "r1", "model_key": "cryptobert",
        "published_at": _naive(NOW - 2 * H), "label": "neutral", "score": 0.0, "p_positive": 0.3, "p_negative": 0.3,
        "p_neutral": 0.4, "text_sha256": "0" * 64, "is_synthetic": True}])
    _insert(engine, schema.universe_snapshots, [{
        "known_at": _naive(NOW - 11 * H), "symbol": "BTC", "snapshot_date": date(2026, 3, 20),
        "coingecko_id": "bitcoin", "source": "sandbox-synthetic"}])


def test_run_health_passes_when_all_is_fresh_and_raises_when_a_table_is_stale(engine, capsys):
    ctx = _ctx(engine, ["BTC", "ETH"])
    _seed_fresh_everything(engine)
    assert run_health(ctx, Interval(NOW - H, NOW)) == 0
    out = capsys.readouterr().out
    assert "Holes: none" in out and "STALE" not in out

    with engine.begin() as conn:
        conn.execute(delete(schema.universe_snapshots))
        conn.execute(insert(schema.universe_snapshots), [{
            "known_at": _naive(NOW - 30 * H), "symbol": "BTC", "snapshot_date": date(2026, 3, 19),
            "coingecko_id": "bitcoin", "source": "sandbox-synthetic"}])
    with pytest.raises(DataHealthAlert, match=r"^stale: universe_snapshots$"):
        run_health(ctx, Interval(NOW - H, NOW))
    assert "universe_snapshots" in capsys.readouterr().out


def test_run_health_raises_for_a_hole_given_up_on(engine, capsys):
    ctx = _ctx(engine, ["BTC", "ETH"])
    _seed_fresh_everything(engine)
    _drop_everywhere(engine, "ETH", day(17) + 14 * H, day(17) + 22 * H)  # 8 h: a hole
    with engine.begin() as conn:
        for k in range(MAX_ATTEMPTS):
            quality.record_action(conn, now=NOW - DAY + k * H, dag_id="prices_coingecko", table="price_data_real",
                                  start=day(17), end=day(18), action="backfill", backfill_id=k + 1)
    for _run in range(2):
        with pytest.raises(DataHealthAlert, match=r"^needs a person: price_data_real 2026-03-17$"):
            run_health(ctx, Interval(NOW - H, NOW))
    assert sum(a["action"] == "gave_up" for a in quality.actions(engine)) == 1
    assert "--dag-id prices_coingecko --from-date 2026-03-17 --to-date 2026-03-17" in capsys.readouterr().out


def test_health_command_prints_the_holes_and_the_command_that_refills_each(engine, monkeypatch, capsys):
    from cryptoetl.cli import main

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - 8 * DAY
    _seed_prices(engine, "BTC", first, today)
    _drop_everywhere(engine, "BTC", first + 3 * DAY, first + 4 * DAY)
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRYPTOETL_SYMBOLS", "BTC")
    assert main(["health", "--start", f"{first:%Y-%m-%d}", "--end", f"{today - 2 * DAY:%Y-%m-%d}"]) == 0
    out = capsys.readouterr().out
    hole_day = f"{first + 3 * DAY:%Y-%m-%d}"
    assert "Holes: 1" in out
    assert (f"airflow backfill create --dag-id prices_coingecko --from-date {hole_day} --to-date {hole_day} "
            "--reprocess-behavior completed --dag-run-conf") in out
    assert "Self-healing is off" not in out  # no --heal: nothing to say about it
    assert quality.actions(engine) == []
    with engine.connect() as conn:  # a report only: nothing written
        assert conn.execute(select(func.count()).select_from(schema.data_health_actions)).scalar_one() == 0


def test_settings_carry_the_health_configuration():
    from cryptoetl.config import Settings

    settings = Settings.from_env({"CRYPTOETL_HEALTH_DAYS": "3", "CRYPTOETL_HEAL_MAX_INTERVALS": "0",
                                  "CRYPTOETL_AIRFLOW_API_URL": "http://healer:s3cret@airflow:8080"})
    assert (settings.health_days, settings.heal_max_intervals) == (3, 0)
    assert healing.api_from_settings(settings) is None  # a budget of 0: report only
    assert healing.api_from_settings(replace(settings, heal_max_intervals=2)).base == "http://airflow:8080"
    assert "s3cret" not in repr(settings)


def test_a_table_with_no_freshness_target_is_not_watched(engine, tmp_path):
    """freshness_hours null: a table this deployment does not load (no CryptoPanic key, say) stays out
    of the freshness list, so it cannot keep data_health red."""
    own = tmp_path / "quality.json"
    own.write_text(json.dumps({"crypto_news": {"freshness_hours": None}}))
    watched = {f.table for f in freshness(engine, NOW, str(own))}
    assert "crypto_news" not in watched and "price_data_real" in watched
    assert "crypto_news" in {f.table for f in freshness(engine, NOW)}
