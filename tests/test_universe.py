"""The universe: files, permanent keys and collisions, daily snapshots, membership as known at T."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import dump, settings_for, utc
from sqlalchemy import text

from cryptoetl.config import ConfigError, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders.universe import coins_for, run_universe
from cryptoetl.sources.coingecko import CoinGeckoClient, MarketCoin
from cryptoetl.step import StepContext
from cryptoetl.universe import UniverseError, assign_keys, read_file, suffixed_key
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.schema import create_all

DICTIONARY = Path(__file__).resolve().parents[1] / "docs" / "DATA_DICTIONARY.md"


def dictionary_query(name: str) -> str:
    """The SQL block the data dictionary shows under ``<!-- query: name -->``."""
    found = re.search(rf"<!-- query: {name} -->\s*```sql\n(.*?)```", DICTIONARY.read_text(), re.S)
    assert found, f"docs/DATA_DICTIONARY.md has no query {name}"
    return found.group(1)


# -- files and keys -------------------------------------------------------------------------------

def write(tmp_path, body: str) -> Path:
    path = tmp_path / "universe.csv"
    path.write_text(body)
    return path


def file_settings(engine, tmp_path, rows: str):
    """Settings for ``engine`` whose universe is a file of these CSV rows (after the header)."""
    return replace(settings_for(engine), symbols=read_file(write(tmp_path, "coingecko_id,symbol,name\n" + rows)))


def test_a_file_universe_keys_each_coin_by_ticker_and_colliding_tickers_apart(tmp_path):
    coins = read_file(write(tmp_path, "coingecko_id,symbol,name\nuniswap,uni,Uniswap\n"
                                      "universe-token,UNI,Universe Token\nbitcoin,\u00a0btc,Bitcoin\n"))
    assert [c.symbol for c in coins] == ["UNI", suffixed_key("UNI", "universe-token"), "BTC"]
    assert coins[1].symbol.startswith("UNI-") and len(coins[1].symbol) == 8
    assert {c.ticker for c in coins[:2]} == {"UNI"}  # the ticker stays; only the key differs
    assert len({c.symbol for c in coins}) == 3


@pytest.mark.parametrize(("body", "message"), [
    ("coingecko_id,symbol,name\nbitcoin,btc,Bitcoin\nbitcoin,xbt,Bitcoin again\n",
     "line 3: duplicate coingecko_id 'bitcoin' (first on line 2)"),
    ("coingecko_id,symbol,name\n,btc,Bitcoin\n", "line 2: empty coingecko_id"),
    ("id,symbol,name\nbitcoin,btc,Bitcoin\n", "the header lacks ['coingecko_id']"),
    ("coingecko_id,symbol,name\n", "lists no coin"),
])
def test_a_bad_universe_file_is_a_clear_error(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(UniverseError, match=re.escape(message)):
        read_file(path)
    with pytest.raises(ConfigError, match=r"CRYPTOETL_UNIVERSE: universe file .*" + re.escape(message)):
        Settings.from_env({"CRYPTOETL_UNIVERSE": str(path)})


def test_settings_choose_a_file_or_the_top_n():
    top = Settings.from_env({"CRYPTOETL_UNIVERSE": "top:320"})
    assert top.universe_top == 320 and top.symbols == ()
    assert [c.symbol for c in Settings.from_env({}).symbols][:2] == ["BTC", "ETH"]
    with pytest.raises(ConfigError, match="top:N with N from 1"):
        Settings.from_env({"CRYPTOETL_UNIVERSE": "top:0"})
    with pytest.raises(ConfigError, match="CRYPTOETL_SYMBOLS selects coins of a universe file"):
        Settings.from_env({"CRYPTOETL_UNIVERSE": "top:5", "CRYPTOETL_SYMBOLS": "BTC"})


def test_keys_already_taken_never_move_and_new_colliders_are_keyed_apart():
    taken = {"LINK": "chainlink"}
    coins = assign_keys([("link-clone", "link", "Link Clone"), ("chainlink", "link", "Chainlink")], taken)
    assert coins[1].symbol == "LINK"  # the holder keeps it, whatever the order now
    assert coins[0].symbol == suffixed_key("LINK", "link-clone")


# -- the universe step, with a scripted /coins/markets ----------------------------------------------

class ScriptedMarkets:
    """A CoinGecko client whose /coins/markets answers are set by the test (ranked lists)."""

    def __init__(self):
        self.ranking: list[MarketCoin] = []
        self.calls = 0

    def set(self, *coins: tuple[str, str, float | None]) -> None:
        self.ranking = [MarketCoin(cid, ticker, cid.title(), rank, cap, 1.0 if cap else None, 10.0)
                        for rank, (cid, ticker, cap) in enumerate(coins, start=1)]

    def top_coins(self, n):
        self.calls += 1
        return self.ranking[:n], True

    def coins_by_id(self, ids):
        self.calls += 1
        return {c.coingecko_id: c for c in self.ranking if c.coingecko_id in ids}, True


def day(n: int) -> Interval:
    start = utc(2026, 1, 1) + timedelta(days=n)
    return Interval(start, start + timedelta(days=1))


def snapshot(engine, settings, markets, n: int) -> int:
    """The universe run of day n, taken five minutes after the day ends."""
    now = (day(n).end + timedelta(minutes=5)).timestamp()
    ctx = StepContext(settings, engine, clients={CoinGeckoClient: markets}, clock=lambda: now)
    return run_universe(ctx, day(n))


def top_as_of(engine, as_of, n: int) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(dictionary_query("top_n_as_of")), {"as_of": as_of.replace(tzinfo=None), "n": n})
        return [row.symbol for row in rows]


def test_membership_as_known_at_t_with_joins_leaves_and_collisions(engine):
    create_all(engine)
    settings = settings_for(engine, universe_top=3, symbols=(), universe_retain_days=1)
    markets = ScriptedMarkets()
    markets.set(("alpha", "alp", 300.0), ("beta", "bet", 200.0), ("gamma", "gam", 100.0))
    assert snapshot(engine, settings, markets, 0) == 3
    markets.set(("alpha", "alp", 300.0), ("alpha-clone", "alp", 250.0), ("beta", "bet", 200.0))  # gamma leaves
    assert snapshot(engine, settings, markets, 1) == 3
    markets.set(("gamma", "gam", 500.0), ("alpha", "alp", 300.0), ("delta", "del", 10.0))  # beta leaves
    assert snapshot(engine, settings, markets, 2) == 3
    assert snapshot(engine, settings, markets, 2) == 0  # a snapshot is never replaced

    clone = suffixed_key("ALP", "alpha-clone")
    assert top_as_of(engine, day(0).end, 3) == []  # nothing was known before the first snapshot
    assert top_as_of(engine, day(1).start + timedelta(hours=1), 3) == ["ALP", "BET", "GAM"]
    assert top_as_of(engine, day(2).start + timedelta(hours=1), 2) == ["ALP", clone]
    assert top_as_of(engine, day(3).start + timedelta(hours=1), 2) == ["GAM", "ALP"]
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT symbol, coingecko_id FROM coins")).all())
    assert ids == {"ALP": "alpha", clone: "alpha-clone", "BET": "beta", "GAM": "gamma", "DEL": "delta"}

    # what the steps load: every coin of a snapshot until it has been out for retain_days
    def loaded(start):
        ctx = StepContext(settings, engine)
        return {c.symbol for c in coins_for(ctx, Interval(start, start + timedelta(days=1)))}

    assert loaded(day(1).start) == {"ALP", clone, "BET", "GAM", "DEL"}  # gamma and beta are still current
    in_order = coins_for(StepContext(settings, engine), day(1))
    assert [c.symbol for c in in_order][:3] == ["GAM", "ALP", "DEL"]  # by the latest rank, then the leavers
    assert loaded(day(5).start) == {"ALP", "GAM", "DEL"}  # beta and the clone left 3 days before
    assert loaded(day(-30).start) == {"ALP", clone, "BET", "GAM", "DEL"}  # a backfill reaches joiners too


def test_a_file_universe_snapshot_checks_every_id_and_keeps_file_keys(engine, tmp_path):
    create_all(engine)
    settings = file_settings(engine, tmp_path, "alpha,alp,Alpha\nalpha-clone,alp,Alpha Clone\nmissing-coin,mis,M\n")
    markets = ScriptedMarkets()
    markets.set(("alpha-clone", "alp", 400.0), ("alpha", "alp", 300.0))
    with pytest.raises(UniverseError, match=r"does not list \(unknown or delisted\): \['missing-coin'\]"):
        snapshot(engine, settings, markets, 0)
    assert dump(engine, schema.coins) == [] and dump(engine, schema.universe_snapshots) == []  # nothing half-written

    settings = replace(settings, symbols=settings.symbols[:2])
    assert snapshot(engine, settings, markets, 0) == 2
    with engine.connect() as conn:
        ranks = dict(conn.execute(text("SELECT symbol, market_cap_rank FROM universe_snapshots")).all())
    assert ranks == {"ALP": 2, suffixed_key("ALP", "alpha-clone"): 1}  # file keys, CoinGecko's ranks

    swapped = replace(settings, symbols=tuple(assign_keys([("alpha-clone", "alp", "Alpha Clone")])))
    with pytest.raises(UniverseError, match="keys never move"):
        snapshot(engine, swapped, markets, 1)


def test_a_coin_without_market_cap_or_price_is_stored_as_null_never_zero(engine):
    create_all(engine)
    settings = settings_for(engine, universe_top=2, symbols=())
    markets = ScriptedMarkets()
    markets.set(("alpha", "alp", 300.0), ("fresh-listing", "new", None))
    snapshot(engine, settings, markets, 0)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT market_cap, price FROM universe_snapshots WHERE symbol = 'NEW'")).one()
    assert tuple(row) == (None, None)


# -- a coin listed mid-window: no rows before its listing, warm-up flagged, rank as known ---------

def test_features_of_a_coin_listed_mid_window(engine):
    from cryptoetl.loaders.features import run_features
    from cryptoetl.loaders.technical import run_technical
    from cryptoetl.universe import Coin

    create_all(engine)
    t0 = utc(2026, 1, 1)
    hour = lambda h: (t0 + timedelta(hours=h)).replace(tzinfo=None)  # noqa: E731
    old, new = Coin("OLD", "old-coin", "Old"), Coin("NEW", "new-coin", "New")
    prices = [{"symbol": c.symbol, "time": hour(h), "price": 10.0 + (h % 17) * 0.1 + 5 * (c is new),
               "market_cap": None, "total_volume": None, "source": "sandbox-synthetic"}
              for c, first in ((old, 0), (new, 600)) for h in range(first, 1000)]
    snap = {"market_cap": 1.0, "price": 1.0, "total_volume": 1.0, "source": "sandbox-synthetic"}
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), prices)
        conn.execute(schema.universe_snapshots.insert(), [
            {**snap, "known_at": hour(700), "snapshot_date": hour(700).date(), "symbol": "OLD",
             "coingecko_id": "old-coin", "market_cap_rank": 1},
            *({**snap, "known_at": hour(800), "snapshot_date": hour(800).date(), "symbol": c.symbol,
               "coingecko_id": c.coingecko_id, "market_cap_rank": rank} for rank, c in ((1, old), (2, new)))])
    ctx = StepContext(settings_for(engine, symbols=(old, new)), engine)
    window = Interval(t0 + timedelta(hours=720), t0 + timedelta(hours=1000))
    run_technical(ctx, window)
    one_go = dump(engine, schema.technical_indicators)
    for start in range(720, 1000, 24):  # the same rows in daily chunks
        run_technical(ctx, Interval(t0 + timedelta(hours=start), t0 + timedelta(hours=min(start + 24, 1000))))
    chunked = dump(engine, schema.technical_indicators)
    assert [r[:2] + r[-1:] for r in chunked] == [r[:2] + r[-1:] for r in one_go]  # keys and bar counts exactly
    floats = lambda rows: [[float("nan") if v is None else v for v in r[2:-1]] for r in rows]  # noqa: E731
    assert floats(chunked) == [pytest.approx(r, rel=1e-9, nan_ok=True) for r in floats(one_go)]
    run_technical(ctx, Interval(t0 + timedelta(hours=500), window.start))  # the features read its rows
    run_features(ctx, Interval(t0 + timedelta(hours=500), window.end))

    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT symbol, time, price_bars_30d, warmup_complete, universe_rank, rsi_14 "
            "FROM ml_features_materialized WHERE time >= :lo ORDER BY symbol, time"), {"lo": hour(720)}).all()
        first_new = conn.execute(text("SELECT MIN(time) FROM ml_features_materialized WHERE symbol = 'NEW'")).scalar()
    assert str(first_new).startswith(str(hour(600)))  # nothing before the listing: no row, not a 0
    by = {(r.symbol, str(r.time)[:16]): r for r in rows}
    at = lambda s, h: by[(s, str(hour(h))[:16])]  # noqa: E731
    assert at("NEW", 720).price_bars_30d == 121 and not at("NEW", 720).warmup_complete
    assert at("NEW", 898).price_bars_30d == 299 and not at("NEW", 898).warmup_complete
    assert at("NEW", 899).price_bars_30d == 300 and at("NEW", 899).warmup_complete
    assert at("NEW", 720).rsi_14 is not None  # computed, but flagged
    assert {r.price_bars_30d for r in rows if r.symbol == "OLD"} == {720}
    assert all(r.warmup_complete for r in rows if r.symbol == "OLD")
    # the rank as known at each hour: NEW is ranked only from the snapshot that lists it
    assert (at("OLD", 720).universe_rank, at("NEW", 720).universe_rank) == (1, None)
    assert (at("OLD", 799).universe_rank, at("NEW", 799).universe_rank) == (1, None)
    assert (at("OLD", 800).universe_rank, at("NEW", 800).universe_rank) == (1, 2)
    with engine.connect() as conn:
        early = conn.execute(text("SELECT COUNT(*) FROM ml_features_materialized WHERE time < :t AND "
                                  "universe_rank IS NOT NULL"), {"t": hour(700)}).scalar()
    assert early == 0  # before the first snapshot nothing was known


# -- against the sandbox's 550-coin market, through the real client ---------------------------------

def test_a_top_320_snapshot_from_the_sandbox_market(engine):
    from cryptoetl.sandbox.server import SandboxServer

    create_all(engine)
    now = utc(2026, 3, 2, 0, 30).timestamp()
    server = SandboxServer(now=lambda: now)
    server.start()
    try:
        settings = settings_for(engine, server, universe_top=320, symbols=())
        ctx = StepContext(settings, engine, clock=lambda: now)
        assert run_universe(ctx, Interval(utc(2026, 3, 1), utc(2026, 3, 2))) == 320
        calls = server.stats()["coingecko"]
    finally:
        server.stop()
    assert calls == {"/coins/markets": 2}  # 250 a page
    with engine.connect() as conn:
        snap = conn.execute(text("SELECT u.symbol, c.ticker, c.coingecko_id, u.market_cap_rank FROM "
                                 "universe_snapshots u JOIN coins c USING (symbol) ORDER BY u.market_cap_rank")).all()
    assert [r.market_cap_rank for r in snap] == list(range(1, 321))
    assert [r.symbol for r in snap[:2]] == ["BTC", "ETH"]
    keys = {r.coingecko_id: r.symbol for r in snap}
    assert keys["solana"] == "SOL"  # the big coin holds the ticker; the synthetic "sol" clone is keyed apart
    by_ticker: dict[str, list] = {}
    for r in snap:  # in rank order
        by_ticker.setdefault(r.ticker, []).append(r)
    shared = {t: rs for t, rs in by_ticker.items() if len(rs) > 1}
    assert shared  # the sandbox market has colliding tickers in its top 320
    for ticker, coins in shared.items():  # the best-ranked holds the ticker, the others are keyed apart
        assert coins[0].symbol == ticker
        assert [c.symbol for c in coins[1:]] == [suffixed_key(ticker, c.coingecko_id) for c in coins[1:]]
    assert all(re.fullmatch(r"[0-9A-Z-]{1,16}", r.symbol) for r in snap)  # padded tickers trimmed
    assert len({r.symbol for r in snap}) == 320


def test_one_snapshot_a_day_and_only_of_the_latest_day(engine):
    from sqlalchemy.exc import IntegrityError

    from cryptoetl.warehouse import universe as registry

    create_all(engine)
    settings = settings_for(engine, universe_top=2, symbols=())
    markets = ScriptedMarkets()
    markets.set(("alpha", "alp", 300.0), ("beta", "bet", 200.0))
    snapshot(engine, settings, markets, 0)
    row = {"symbol": "ALP", "coingecko_id": "alpha", "market_cap_rank": 1, "market_cap": 1.0, "price": 1.0,
           "total_volume": 1.0, "source": "sandbox-synthetic"}
    with pytest.raises(IntegrityError), engine.begin() as conn:  # a concurrent run that missed the first
        conn.execute(schema.universe_snapshots.insert(), [{**row, "known_at": day(0).end + timedelta(hours=1),
                                                           "snapshot_date": day(0).start.date()}])
    assert registry.snapshot_taken(engine, day(0).start.date()) == (day(0).end + timedelta(minutes=5)).replace(
        tzinfo=None)
    late = (day(0).end + timedelta(days=3)).timestamp()
    ctx = StepContext(settings, engine, clients={CoinGeckoClient: markets}, clock=lambda: late)
    with pytest.raises(UniverseError, match="is not the latest day"):
        run_universe(ctx, day(0))


def test_every_step_refuses_a_file_that_would_move_a_key(engine, tmp_path):
    create_all(engine)
    settings = file_settings(engine, tmp_path, "uniswap,uni,Uniswap\nunicorn,uni,Unicorn\n")
    markets = ScriptedMarkets()
    markets.set(("uniswap", "uni", 400.0), ("unicorn", "uni", 300.0))
    snapshot(engine, settings, markets, 0)
    swapped = file_settings(engine, tmp_path, "unicorn,uni,Unicorn\nuniswap,uni,Uniswap\n")
    with pytest.raises(UniverseError, match="keys never move"):
        coins_for(StepContext(swapped, engine), day(1))  # what prices, technical, features and news call first
