"""The full ml_features_materialized: point-in-time audit, NULL rules, no leakage, triggers.

The audit recomputes every feature of every (symbol, hour) row in plain Python from only the raw
rows that were knowable at that hour (``known_at <= T``, ``complete_at <= T``, ``published_at <= T``)
and compares with what the set-based SQL rebuild wrote, on SQLite and on MariaDB. The data is
tiny, SYNTHETIC, and built to hit the edges: revisions known later than newer observations, a
vintage known at an odd hour, NULL macro values, values older than the age caps, on-chain gaps and
days usable only from their publication delay (one at an odd minute), articles published exactly
on an hour boundary, mentions of one symbol only.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from helpers import settings_for
from sqlalchemy import select

from cryptoetl.config import UNIVERSE
from cryptoetl.intervals import Interval
from cryptoetl.loaders.technical import run_technical
from cryptoetl.sources import blockchain_info, etherscan
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import features, schema
from cryptoetl.warehouse.writes import replace_interval

T0 = datetime(2026, 3, 1)  # naive UTC, like the warehouse
DAYS = 9
LO, HI = T0 + timedelta(days=2), T0 + timedelta(days=DAYS)
SYMBOLS = ["BTC", "ETH"]


def _prices() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frames = []
    for i, symbol in enumerate(SYMBOLS):
        times = pd.date_range(T0, periods=24 * DAYS, freq="h", tz="UTC")
        walk = 100.0 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, len(times))))
        frame = pd.DataFrame({"symbol": symbol, "time": times, "price": walk, "market_cap": walk * 1e6,
                              "total_volume": walk * 1e3, "source": "sandbox-synthetic"})
        frames.append(frame.drop(index=[70, 130] if symbol == "BTC" else [100]))  # gaps
    return pd.concat(frames, ignore_index=True)


def _macro_rows() -> list[dict]:
    def row(series_id, obs, rs, known_at, value):
        name = dict(schema.MACRO_FEATURE_SERIES)[series_id]
        return {"series_id": series_id, "observation_date": obs, "realtime_start": rs, "indicator_name": name,
                "value": value, "known_at": known_at, "known_at_rule": "alfred+30h", "frequency": "monthly",
                "units": "u", "source": "fred-sandbox-synthetic"}

    d = T0.date()
    return [
        # UNRATE: Jan first release, then Feb release known 3 days into the window, and at the same
        # time a revision of Jan (older observation: must not win over Feb); a later Feb revision.
        row("UNRATE", date(2026, 1, 1), date(2026, 2, 6), T0 - timedelta(days=20, hours=-6), 4.1),
        row("UNRATE", date(2026, 2, 1), d + timedelta(days=4), T0 + timedelta(days=4, hours=7, minutes=30), 4.3),
        row("UNRATE", date(2026, 1, 1), d + timedelta(days=4), T0 + timedelta(days=4, hours=7, minutes=30), 4.0),
        row("UNRATE", date(2026, 2, 1), d + timedelta(days=6), T0 + timedelta(days=6, hours=6), 4.4),
        # a revision of Jan known after Feb: Feb stays the latest observation
        row("UNRATE", date(2026, 1, 1), d + timedelta(days=7), T0 + timedelta(days=7, hours=1), 3.9),
        # DFF: daily, one NULL ('.') value that must be skipped, not used
        *[row("DFF", d + timedelta(days=k - 2), d + timedelta(days=k - 1), T0 + timedelta(days=k, hours=6),
              None if k == 5 else 3.5 + k / 100) for k in range(DAYS)],
        # CPI: known 125 days before the window ends: valid for 120 days, then NULL
        row("CPIAUCSL", date(2025, 10, 1), date(2025, 11, 1), T0 + timedelta(days=5) - timedelta(days=120), 320.5),
        # VIX: known only after the window (must never appear)
        row("VIXCLS", d + timedelta(days=DAYS), d + timedelta(days=DAYS + 1), T0 + timedelta(days=DAYS + 1), 20.0),
    ]


def _published(day: date, delay: timedelta) -> datetime:
    """When an on-chain day becomes usable, as the loader stores it: the next midnight + the delay."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time()) + delay


def _onchain_rows() -> list[dict]:
    out = []
    for k in range(-3, DAYS):
        if k in (3, 4):  # a two-day gap for BTC: the latest published day carries forward, older
            continue
        day = T0.date() + timedelta(days=k)
        # day 6 usable at an odd minute (as if written under a longer delay): from the next hour on
        delay = blockchain_info.PUBLICATION_DELAY + (timedelta(minutes=30) if k == 6 else timedelta())
        out.append({"symbol": "BTC", "date": day, "data_source": "blockchain.info-sandbox-synthetic",
                    "is_synthetic": True, "transaction_count": 300_000.0 + k, "hash_rate": 6e8 + k,
                    "complete_at": _published(day, delay)})
    day = T0.date() - timedelta(days=1)  # ETH: one day only, too old after 7 days
    out.append({"symbol": "ETH", "date": day, "data_source": "etherscan-pro-sandbox-synthetic",
                "is_synthetic": True, "transaction_count": 1.2e6, "block_count": 7100.0,
                "complete_at": _published(day, etherscan.PUBLICATION_DELAY)})
    return out


def _news() -> tuple[list[dict], list[dict], list[dict]]:
    rng = np.random.default_rng(5)
    articles, mentions, scores = [], [], []
    for i in range(60):
        published = T0 + timedelta(minutes=int(rng.integers(0, DAYS * 24 * 60)))
        if i == 0:
            published = LO + timedelta(hours=10)  # exactly on an hour boundary
        category = "crypto" if i % 3 else "general"
        article_id = f"a{i:03d}"
        articles.append({"article_id": article_id, "published_at": published, "source": "guardian",
                         "title": f"SYNTHETIC article {i}", "summary": None, "url": f"https://x.test/{i}",
                         "category": category, "is_synthetic": True})
        if i % 2:
            mentions.append({"article_id": article_id, "symbol": "BTC"})
        model_key = "cryptobert" if category == "crypto" else "finbert"
        p_pos, p_neg = float(rng.uniform(0, 0.6)), float(rng.uniform(0, 0.4))
        scores.append({"article_id": article_id, "model_id": f"test/{model_key}", "model_revision": "r1",
                       "model_key": model_key, "published_at": published, "label": "neutral",
                       "score": p_pos - p_neg, "p_positive": p_pos, "p_negative": p_neg,
                       "p_neutral": 1 - p_pos - p_neg})
    return articles, mentions, scores


def _insert(engine, table, rows):
    if table is schema.crypto_sentiment_data:  # bookkeeping columns of the sentiment step
        rows = [{"text_sha256": "0" * 64, "is_synthetic": True, **r} for r in rows]
    rows = [{**{c.name: None for c in table.columns if c.nullable}, **r} for r in rows]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


@pytest.fixture
def warehouse(engine):
    return _build(engine)


@pytest.fixture
def sqlite_warehouse(sqlite_engine):
    return _build(sqlite_engine)


def _build(engine):
    prices = _prices()
    replace_interval(engine, schema.price_data_real, prices, time_column="time",
                     start=prices["time"].min(), end=prices["time"].max() + pd.Timedelta(hours=1))
    settings = settings_for(engine, symbols=UNIVERSE[:2])
    run_technical(StepContext(settings=settings, engine=engine),
                  Interval(T0.replace(tzinfo=UTC), T0.replace(tzinfo=UTC) + timedelta(days=DAYS)))
    _insert(engine, schema.macro_indicators, _macro_rows())
    _insert(engine, schema.crypto_onchain_data, _onchain_rows())
    articles, mentions, scores = _news()
    _insert(engine, schema.crypto_news, articles)
    _insert(engine, schema.crypto_news_mentions, mentions)
    _insert(engine, schema.crypto_sentiment_data, scores)
    _insert(engine, schema.universe_snapshots, _snapshot_rows())
    return engine


def _snapshot_rows() -> list[dict]:
    """Three universe snapshots taken at odd minutes; the second does not list ETH."""
    rows = []
    for known_at, ranks in ((T0 + timedelta(days=3, hours=5, minutes=17), {"BTC": 1, "ETH": 2}),
                            (T0 + timedelta(days=5, minutes=3), {"BTC": 1}),
                            (T0 + timedelta(days=6, hours=23, minutes=59), {"ETH": 1, "BTC": 2})):
        rows += [{"known_at": known_at, "symbol": symbol, "snapshot_date": known_at.date(), "coingecko_id": symbol,
                  "market_cap_rank": rank, "market_cap": 1.0, "price": 1.0, "total_volume": 1.0,
                  "source": "sandbox-synthetic"} for symbol, rank in ranks.items()]
    return rows


def _frame(engine, table) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(select(table))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _ts(value) -> datetime:
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=None)


def _expected_row(raw: dict[str, pd.DataFrame], symbol: str, t: datetime) -> dict:
    """Every non-price feature of (symbol, t), from only the raw rows knowable at t."""
    out: dict = {}
    macro = raw["macro"]
    for series_id, value_col, age_col in schema.MACRO_FEATURE_COLUMNS:
        known = macro[(macro.series_id == series_id) & (macro.known_at <= t) & macro.value.notna()]
        out[value_col] = out[age_col] = None
        if not known.empty:
            best = known.sort_values(["observation_date", "realtime_start"]).iloc[-1]
            if best.known_at > t - timedelta(days=features.MACRO_MAX_AGE_DAYS):
                out[value_col] = best.value
                out[age_col] = (t - datetime.combine(best.observation_date, datetime.min.time())) / timedelta(days=1)
    onchain = raw["onchain"]  # a day is usable from its complete_at: its end + the source's delay
    usable = onchain[(onchain.symbol == symbol) & (onchain.complete_at <= t)]
    best = usable.sort_values("date").iloc[-1] if not usable.empty else None
    if best is not None and best.complete_at <= t - timedelta(days=features.ONCHAIN_MAX_AGE_DAYS):
        best = None
    for name, _ in schema.ONCHAIN_METRIC_COLUMNS:
        out[f"onchain_{name}"] = None if best is None or pd.isna(best[name]) else best[name]
    out["onchain_age_days"] = None if best is None else \
        (t - datetime.combine(best.date, datetime.min.time())) / timedelta(days=1)
    scored = raw["scored"]
    mentioned = set(raw["mentions"].loc[raw["mentions"].symbol == symbol, "article_id"])
    for model in schema.SENTIMENT_MODELS:
        for scope in schema.SENTIMENT_SCOPES:
            for window, hours in schema.SENTIMENT_WINDOWS_HOURS.items():
                rows = scored[(scored.model_key == model) & (scored.published_at > t - timedelta(hours=hours))
                              & (scored.published_at <= t)]
                if scope == "sym":
                    rows = rows[rows.article_id.isin(mentioned)]
                out[schema.sentiment_column(model, scope, window, "count")] = len(rows)
                out[schema.sentiment_column(model, scope, window, "mean")] = rows.score.mean() if len(rows) else None
    snaps = raw["snapshots"]
    known = snaps[snaps.known_at <= t]
    latest = known[known.known_at == known.known_at.max()] if not known.empty else known
    rank = latest.loc[latest.symbol == symbol, "market_cap_rank"]
    out["universe_rank"] = None if rank.empty else rank.iloc[0]
    prices = raw["prices"]
    bars = int(((prices.symbol == symbol) & (prices.time > t - timedelta(hours=720)) & (prices.time <= t)).sum())
    out[schema.WARMUP_BARS_COLUMN] = bars
    out["warmup_complete"] = bars >= schema.WARMUP_COMPLETE_BARS
    return out


def _raw(engine) -> dict[str, pd.DataFrame]:
    macro = _frame(engine, schema.macro_indicators)
    macro["known_at"] = macro.known_at.map(_ts)
    macro["observation_date"] = macro.observation_date.map(lambda v: pd.Timestamp(v).date())
    macro["realtime_start"] = macro.realtime_start.map(lambda v: pd.Timestamp(v).date())
    onchain = _frame(engine, schema.crypto_onchain_data)
    onchain["complete_at"] = onchain.complete_at.map(_ts)
    onchain["date"] = onchain.date.map(lambda v: pd.Timestamp(v).date())
    news = _frame(engine, schema.crypto_news)[["article_id", "published_at"]]
    news["published_at"] = news.published_at.map(_ts)
    scored = _frame(engine, schema.crypto_sentiment_data).drop(columns=["published_at"]).merge(news, on="article_id")
    snapshots = _frame(engine, schema.universe_snapshots)
    snapshots["known_at"] = snapshots.known_at.map(_ts)
    prices = _frame(engine, schema.price_data_real)
    prices["time"] = prices.time.map(_ts)
    return {"macro": macro, "onchain": onchain, "scored": scored, "snapshots": snapshots, "prices": prices,
            "mentions": _frame(engine, schema.crypto_news_mentions)}


def _same(got, want, where) -> None:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        assert got is None or (isinstance(got, float) and math.isnan(got)), where
    else:
        assert got is not None and math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-12), \
            (where, got, want)


def test_point_in_time_audit_every_feature_of_every_row(warehouse):
    """The audit: each (symbol, hour) row equals a recomputation from only what was known then."""
    inserted = features.rebuild(warehouse, LO, HI, SYMBOLS)
    got = _frame(warehouse, schema.ml_features_materialized)
    assert inserted == len(got) == 2 * 24 * (DAYS - 2) - 3  # three price gaps inside [LO, HI)
    assert len(schema.FEATURE_COLUMNS) >= 50
    raw = _raw(warehouse)
    for row in got.itertuples(index=False):
        t = _ts(row.time)
        for column, want in _expected_row(raw, row.symbol, t).items():
            _same(getattr(row, column), want, (row.symbol, t, column))
    # the data really exercises each family (a vacuous audit would pass on an empty table)
    assert got["universe_rank"].notna().any() and got["universe_rank"].isna().any()
    assert got["price_bars_30d"].nunique() > 1
    for column in ("macro_unemployment_rate", "macro_fed_funds_rate_daily", "macro_cpi_all_urban",
                   "onchain_transaction_count", "onchain_hash_rate", "onchain_block_count",
                   "sent_cryptobert_sym_24h_mean", "sent_finbert_all_7d_mean"):
        assert got[column].notna().any(), column
    assert got["macro_vix_close"].isna().all()  # known only after the window
    assert got["macro_cpi_all_urban"].notna().any() and got["macro_cpi_all_urban"].isna().any()  # age cap


def test_values_follow_their_release_time_not_their_period(warehouse):
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    got = _frame(warehouse, schema.ml_features_materialized)
    got = got[got.symbol == "ETH"].assign(time=lambda f: f.time.map(_ts)).set_index("time")
    release = T0 + timedelta(days=4, hours=7, minutes=30)  # Feb UNRATE 4.3 and a Jan revision 4.0
    before, after = release.replace(minute=0), release.replace(minute=0) + timedelta(hours=1)
    assert got.loc[before, "macro_unemployment_rate"] == pytest.approx(4.1)
    assert got.loc[after, "macro_unemployment_rate"] == pytest.approx(4.3)  # the newer period wins
    late_jan_revision = T0 + timedelta(days=7, hours=2)
    assert got.loc[late_jan_revision, "macro_unemployment_rate"] == pytest.approx(4.4)
    # ETH on-chain: one old day only; beyond 7 days it is NULL, with NULL age, never 0
    assert got["onchain_block_count"].iloc[0] == pytest.approx(7100.0)
    assert got.loc[T0 + timedelta(days=8, hours=3), ["onchain_block_count", "onchain_age_days"]].isna().all()
    # no sentiment mentions ETH: counts 0, means NULL
    assert (got["sent_cryptobert_sym_7d_count"] == 0).all() and got["sent_cryptobert_sym_7d_mean"].isna().all()


def test_an_onchain_day_is_used_only_from_its_publication_delay_after_it_ends(warehouse):
    """BTC day 5 ends at midnight but is usable only from midnight + blockchain.info's delay: until
    then the hours use day 2 (days 3 and 4 are missing); day 6, usable at an odd minute, is used
    from the next hour."""
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    got = _frame(warehouse, schema.ml_features_materialized)
    got = got[got.symbol == "BTC"].assign(time=lambda f: f.time.map(_ts)).set_index("time")
    delay = blockchain_info.PUBLICATION_DELAY
    assert timedelta(hours=1) <= delay < timedelta(days=1)
    day5_end = T0 + timedelta(days=6)
    for hour in (day5_end, day5_end + delay - timedelta(hours=1)):  # ended, not yet published
        assert got.loc[hour, "onchain_transaction_count"] == pytest.approx(300_002.0), hour
        assert got.loc[hour, "onchain_age_days"] == pytest.approx((hour - (T0 + timedelta(days=2))) / timedelta(days=1))
    published = day5_end + delay
    assert got.loc[published, "onchain_transaction_count"] == pytest.approx(300_005.0)
    assert got.loc[published, "onchain_age_days"] == pytest.approx(1 + delay / timedelta(days=1))
    day6_published = T0 + timedelta(days=7) + delay + timedelta(minutes=30)
    assert got.loc[day6_published - timedelta(minutes=30), "onchain_transaction_count"] == pytest.approx(300_005.0)
    assert got.loc[day6_published + timedelta(minutes=30), "onchain_transaction_count"] == pytest.approx(300_006.0)


def test_later_revisions_do_not_leak_into_earlier_hours(warehouse):
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    before = _frame(warehouse, schema.ml_features_materialized).assign(time=lambda f: f.time.map(_ts))
    revised_at = T0 + timedelta(days=6, hours=12)
    _insert(warehouse, schema.macro_indicators, [{
        "series_id": "DFF", "observation_date": T0.date(), "realtime_start": T0.date() + timedelta(days=6),
        "indicator_name": "fed_funds_rate_daily", "value": 9.99, "known_at": revised_at,
        "known_at_rule": "alfred+30h", "frequency": "daily", "units": "u", "source": "fred-sandbox-synthetic"}])
    _insert(warehouse, schema.crypto_news, [{
        "article_id": "late", "published_at": revised_at, "source": "guardian", "title": "SYNTHETIC late",
        "url": "https://x.test/late", "category": "crypto", "is_synthetic": True}])
    _insert(warehouse, schema.crypto_sentiment_data, [{
        "article_id": "late", "model_id": "test/cryptobert", "model_revision": "r1", "model_key": "cryptobert",
        "published_at": revised_at, "label": "positive", "score": 0.9, "p_positive": 0.9, "p_negative": 0.0,
        "p_neutral": 0.1}])
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    after = _frame(warehouse, schema.ml_features_materialized).assign(time=lambda f: f.time.map(_ts))
    early = before.time < revised_at
    pd.testing.assert_frame_equal(before[early].reset_index(drop=True), after[early].reset_index(drop=True))
    changed = after[~early].reset_index(drop=True)
    assert (changed["sent_cryptobert_all_24h_count"] > before[~early]["sent_cryptobert_all_24h_count"].to_numpy()).any()


def test_rebuild_is_idempotent_and_chunking_invariant(warehouse):
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    whole = _frame(warehouse, schema.ml_features_materialized).sort_values(["symbol", "time"], ignore_index=True)
    features.rebuild(warehouse, LO, HI, SYMBOLS)
    again = _frame(warehouse, schema.ml_features_materialized).sort_values(["symbol", "time"], ignore_index=True)
    pd.testing.assert_frame_equal(whole, again)
    with warehouse.begin() as conn:
        conn.execute(schema.ml_features_materialized.delete())
    for day in range(2, DAYS):  # day by day, as scheduled runs would
        features.rebuild(warehouse, T0 + timedelta(days=day), T0 + timedelta(days=day + 1), SYMBOLS)
    daily = _frame(warehouse, schema.ml_features_materialized).sort_values(["symbol", "time"], ignore_index=True)
    pd.testing.assert_frame_equal(whole, daily, check_exact=False, rtol=1e-12)


def test_rebuild_rejects_bad_intervals(sqlite_engine):
    with pytest.raises(ValueError, match="empty or inverted"):
        features.rebuild(sqlite_engine, HI, LO, SYMBOLS)
    with pytest.raises(ValueError, match="on the hour"):
        features.rebuild(sqlite_engine, LO + timedelta(minutes=30), HI, SYMBOLS)


def test_every_input_that_changes_features_triggers_a_rebuild_far_enough_ahead():
    step = get_step("features")
    assert set(step.triggered_by) >= {"technical_indicators", "macro_indicators", "crypto_onchain_data",
                                      "crypto_sentiment_data"}
    assert step.lookahead_for("macro_indicators") == features.MACRO_MAX_AGE_DAYS * 24
    assert step.lookahead_for("crypto_sentiment_data") == 168
    assert step.lookahead_for("technical_indicators") == 0  # returns come with the indicators
    assert get_step("technical").lookahead_for("price_data_real") >= 168  # covers the 7-day return


def test_lookahead_per_input_is_what_each_feature_family_states():
    """How far past a changed input interval the features change, merged from the family modules:
    the features step's lookahead per input."""
    assert features.LOOKAHEAD_HOURS == {
        "price_data_real": 0, "technical_indicators": 0,  # only their own hour
        "macro_indicators": 120 * 24,  # a value is used for up to MACRO_MAX_AGE_DAYS
        "crypto_onchain_data": 8 * 24,  # ONCHAIN_MAX_AGE_DAYS after a publication delay of up to 24 h
        "crypto_sentiment_data": 168, "crypto_news": 168,  # the 7-day window
    }


def test_sqlite_rebuild_waits_for_a_concurrent_writer(sqlite_warehouse):
    """Locally several task processes share the SQLite file. A rebuild that starts while another
    process writes must wait for it, not fail with "database is locked"."""
    import sqlite3
    import threading

    warehouse = sqlite_warehouse
    other = sqlite3.connect(warehouse.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another task's write transaction is open
    other.execute("DELETE FROM crypto_news WHERE article_id = 'a059'")
    threading.Timer(0.5, other.execute, args=("COMMIT",)).start()
    assert features.rebuild(warehouse, LO, HI, SYMBOLS) == 2 * 24 * (DAYS - 2) - 3
    other.close()
