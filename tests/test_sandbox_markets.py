"""The sandbox CoinGecko market (synthetic data): /coins/markets, /coins/list, listings and
delistings, colliding tickers, determinism, call counts."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import requests
from helpers import utc

from cryptoetl.sandbox.coingecko import KNOWN_COINS
from cryptoetl.sandbox.coingecko_market import MAX_HOLE, PRE_PRICE_HOURS, WINDOW_HOURS, _block
from cryptoetl.sandbox.common import DAY, HOUR
from cryptoetl.sandbox.server import SandboxServer

NOW = utc(2026, 3, 10, 12, 34).timestamp()
DAY0 = NOW // DAY * DAY
REAL_KEYS = {"id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank",
             "fully_diluted_valuation", "total_volume", "high_24h", "low_24h", "price_change_24h",
             "price_change_percentage_24h", "circulating_supply", "total_supply", "max_supply", "last_updated"}


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def frozen():
    with SandboxServer(now=lambda: NOW, plan_history=False) as server:
        yield server


@pytest.fixture
def moving():
    """A sandbox whose clock the test moves (listing times stay those of NOW's day)."""
    clock = Clock(NOW)
    with SandboxServer(now=clock, plan_history=False) as server:
        yield server, clock


def get(server, path, expect=200, **params):
    resp = requests.get(server.base_url + path, params=params, timeout=30)
    assert resp.status_code == expect, resp.text[:300]
    return resp.json()


def every_market(server) -> list[dict]:
    items, page = [], 1
    while batch := get(server, "/coins/markets", vs_currency="usd", per_page=250, page=page):
        items += batch
        page += 1
    return items


def chart(server, coin, lo, hi) -> dict:
    return get(server, f"/coins/{coin}/market_chart/range", vs_currency="usd", **{"from": int(lo), "to": int(hi)})


def coin_with(server, field):
    """The coin of ``server`` whose ``field`` (listed_at / delisted_at) is the latest."""
    coins = [c for c in server.apis["CoinGeckoApi"].coins.values() if getattr(c, field) is not None]
    return max(coins, key=lambda c: getattr(c, field))


def test_pages_cover_every_listed_coin_once(frozen):
    listed = {c["id"] for c in get(frozen, "/coins/list")}
    items = every_market(frozen)
    ids = [item["id"] for item in items]
    assert len(ids) >= 500 and len(set(ids)) == len(ids) and set(ids) == listed
    full, last = divmod(len(ids), 250)
    pages = [get(frozen, "/coins/markets", vs_currency="usd", per_page=250, page=p) for p in range(1, full + 2)]
    assert [len(p) for p in pages] == [250] * full + [last]
    assert get(frozen, "/coins/markets", vs_currency="usd", per_page=250, page=full + 5) == []
    assert len(get(frozen, "/coins/markets", vs_currency="usd")) == 100  # default per_page
    assert len(get(frozen, "/coins/markets", vs_currency="usd", per_page=1000)) == 250  # capped like the real API
    second = get(frozen, "/coins/markets", vs_currency="usd", per_page=7, page=2)
    assert [i["id"] for i in second] == ids[7:14]


def test_ranks_are_contiguous_by_market_cap_with_unranked_coins_last(frozen):
    items = every_market(frozen)
    ranked = [i for i in items if i["market_cap_rank"] is not None]
    unranked = items[len(ranked):]
    assert [i["market_cap_rank"] for i in ranked] == list(range(1, len(ranked) + 1))
    caps = [i["market_cap"] for i in ranked]
    assert caps == sorted(caps, reverse=True) and min(caps) > 0
    assert unranked and all(i["market_cap_rank"] is None and i["market_cap"] == 0 for i in unranked)
    assert {i["id"] for i in ranked[: len(KNOWN_COINS)]} == KNOWN_COINS  # the known coins stay the biggest


def test_items_have_the_real_shape_and_quirks(frozen):
    items = every_market(frozen)
    assert all(REAL_KEYS <= set(i) for i in items)
    assert all(i["symbol"] == i["symbol"].lower() for i in items)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", i["last_updated"]) for i in items)
    assert all("Synthetic" in i["name"] for i in items if i["id"] not in KNOWN_COINS)
    assert any(i["symbol"].startswith("\u00a0") for i in items)  # a ticker padded with a no-break space
    assert any(i["total_volume"] is None and i["current_price"] is not None for i in items)
    priced = [i for i in items if i["current_price"] is not None]
    assert all(i["low_24h"] <= i["current_price"] <= i["high_24h"] for i in priced)
    supplies = [i["circulating_supply"] for i in priced if i["circulating_supply"]]
    assert max(supplies) / min(supplies) > 1e6  # spread over orders of magnitude


def test_tickers_collide_between_synthetic_coins_and_with_known_coins(frozen):
    items = every_market(frozen)
    by_symbol: dict[str, list[dict]] = {}
    for item in items:
        by_symbol.setdefault(item["symbol"], []).append(item)
    synthetic_twins = [s for s, group in by_symbol.items() if sum(i["id"] not in KNOWN_COINS for i in group) > 1]
    assert len(synthetic_twins) >= 3
    known_twins = [group for group in by_symbol.values()
                   if len(group) > 1 and any(i["id"] in KNOWN_COINS for i in group)]
    assert len(known_twins) >= 2
    for group in known_twins:
        known = next(i for i in group if i["id"] in KNOWN_COINS)
        assert all(i["market_cap"] * 100 < known["market_cap"] for i in group if i is not known)
    names = Counter(i["name"] for i in items)
    assert max(names.values()) == 1  # names, like ids, stay unique


def test_ids_filter_keeps_global_ranks_and_ignores_unknown_ids(frozen):
    full = {i["id"]: i for i in every_market(frozen)}
    wanted = ["bitcoin", "synthetic-coin-1", list(full)[321]]
    got = get(frozen, "/coins/markets", vs_currency="usd", ids=",".join([*wanted, "no-such-coin"]))
    assert sorted(i["id"] for i in got) == sorted(i for i in wanted if i in full)
    assert all(i == full[i["id"]] for i in got)


def test_bad_requests_auth_and_faults():
    with SandboxServer(now=lambda: NOW, require_key="demo") as server:
        get(server, "/coins/markets", expect=401, vs_currency="usd")
        ok = requests.get(server.base_url + "/coins/markets", params={"vs_currency": "usd", "per_page": 3},
                          headers={"x-cg-demo-api-key": "CG-synthetic"}, timeout=30)
        assert ok.status_code == 200 and len(ok.json()) == 3 and ok.headers["X-Cryptoetl-Synthetic"] == "true"
    with SandboxServer(now=lambda: NOW, plan_history=False) as server:
        get(server, "/coins/markets", expect=400)
        get(server, "/coins/markets", expect=400, vs_currency="usd", per_page=0)
        get(server, "/coins/markets", expect=400, vs_currency="usd", page="x")
        server.set_faults([{"kind": "empty", "path_contains": "/coins/markets"}])
        assert get(server, "/coins/markets", vs_currency="usd") == []
        assert len(get(server, "/coins/markets", vs_currency="usd")) == 100


def test_listings_and_delistings_fall_within_the_window_before_the_clocks_day(frozen):
    coins = frozen.apis["CoinGeckoApi"].coins.values()
    listed = [c.listed_at for c in coins if c.listed_at is not None]
    delisted = [c.delisted_at for c in coins if c.delisted_at is not None]
    assert len(listed) >= 5 and len(delisted) >= 3
    assert all(DAY0 - WINDOW_HOURS * HOUR <= t < DAY0 and t % HOUR == 0 for t in listed + delisted)
    assert any(t >= NOW - 14 * DAY for t in listed) and any(t >= NOW - 14 * DAY for t in delisted)  # in the demo's
    with SandboxServer(now=lambda: NOW + 3 * HOUR) as later_same_day:
        assert later_same_day.apis["CoinGeckoApi"].coins == frozen.apis["CoinGeckoApi"].coins


def test_a_new_coin_is_absent_before_its_listing_then_has_no_price_for_hours(moving):
    server, clock = moving
    coin = coin_with(server, "listed_at")
    markets = {}
    for hours in (-1, 1, PRE_PRICE_HOURS + 1):
        clock.t = coin.listed_at + hours * HOUR
        markets[hours] = get(server, "/coins/markets", vs_currency="usd", ids=coin.id)
        assert (coin.id in {c["id"] for c in get(server, "/coins/list")}) == (hours > 0)
    assert markets[-1] == []
    [new] = markets[1]
    assert new["current_price"] is None and new["market_cap"] == 0 and new["market_cap_rank"] is None
    [priced] = markets[PRE_PRICE_HOURS + 1]
    assert priced["current_price"] > 0 and priced["market_cap"] > 0 and priced["market_cap_rank"] >= 1
    clock.t = coin.listed_at - HOUR
    get(server, f"/coins/{coin.id}/market_chart/range", expect=404, vs_currency="usd", **{"from": 0, "to": 1})
    clock.t = NOW
    assert chart(server, coin.id, coin.listed_at - 5 * DAY, coin.listed_at - HOUR)["prices"] == []
    around = chart(server, coin.id, coin.listed_at - 5 * DAY, coin.listed_at + 2 * DAY)
    first = min(t for t, _ in around["prices"]) / 1000
    hours = (min(coin.listed_at + 2 * DAY, NOW) - coin.listed_at) // HOUR
    assert coin.listed_at <= first < coin.listed_at + HOUR and len(around["prices"]) >= hours - 1
    short = chart(server, coin.id, coin.listed_at - 6 * HOUR, coin.listed_at + 6 * HOUR)  # 5-minute points
    assert short["prices"] and min(t for t, _ in short["prices"]) / 1000 >= coin.listed_at


def test_a_delisted_coin_is_gone_but_keeps_its_history(moving):
    frozen, clock = moving
    coin = coin_with(frozen, "delisted_at")
    assert get(frozen, "/coins/markets", vs_currency="usd", ids=coin.id) == []
    assert coin.id not in {c["id"] for c in get(frozen, "/coins/list")}
    assert coin.id in {c["id"] for c in get(frozen, "/coins/list", status="inactive")}
    points = chart(frozen, coin.id, coin.delisted_at - 5 * DAY, NOW)["prices"]
    assert points and max(t for t, _ in points) / 1000 < coin.delisted_at
    assert chart(frozen, coin.id, coin.delisted_at + HOUR, NOW)["prices"] == []
    clock.t = coin.delisted_at - HOUR // 2  # its last hour: listed, priced at its last point
    [item] = get(frozen, "/coins/markets", vs_currency="usd", ids=coin.id)
    assert item["current_price"] == points[-1][1] and item["market_cap_rank"] >= 1


def test_markets_price_is_the_charts_latest_point(frozen):
    items = get(frozen, "/coins/markets", vs_currency="usd", per_page=250, page=2)[:5]
    for item in [*get(frozen, "/coins/markets", vs_currency="usd", per_page=2), *items]:
        prices = chart(frozen, item["id"], NOW - 2 * DAY, NOW)["prices"]
        assert item["current_price"] == prices[-1][1]


def test_series_are_deterministic_whatever_was_asked_before_and_whatever_the_clock():
    coin = "synthetic-coin-17"
    lo, hi = NOW - 30 * DAY, NOW - 20 * DAY
    with SandboxServer(now=lambda: NOW, plan_history=False) as one:
        chart(one, coin, NOW - 400 * DAY, NOW)  # fills caches with other ranges first
        chart(one, coin, NOW - 2 * DAY, NOW)
        first = chart(one, coin, lo, hi)
        markets = every_market(one)
    _block.cache_clear()
    with SandboxServer(now=lambda: NOW + 60 * DAY, plan_history=False) as other:
        assert chart(other, coin, lo, hi) == first
    with SandboxServer(now=lambda: NOW, plan_history=False) as same:
        assert every_market(same) == markets


def test_synthetic_coins_keep_the_automatic_granularity(frozen):
    coin = "synthetic-coin-42"
    five_min = chart(frozen, coin, NOW - DAY, NOW)["prices"]
    hourly = chart(frozen, coin, NOW - 10 * DAY, NOW)["prices"]
    daily = chart(frozen, coin, NOW - 200 * DAY, NOW)["prices"]
    assert set(np.diff([t for t, _ in five_min])) == {300_000}
    gaps = np.diff([t for t, _ in hourly]) / 1000
    # about hourly: holes of up to MAX_HOLE hours, points anywhere in their hour (see the quirks test)
    assert 200 <= len(hourly) <= 241 and gaps.min() > 0 and gaps.max() <= (MAX_HOLE + 2) * HOUR
    assert 199 <= len(daily) <= 201 and all(t / 1000 % DAY == 0 for t, _ in daily)


def test_series_stay_lazy(frozen):
    every_market(frozen)
    api = frozen.apis["CoinGeckoApi"]
    held = sum(v.nbytes for s in api.market._series.values() for v in vars(s).values() if isinstance(v, np.ndarray))
    assert held < 40e6  # only the ten known coins' whole series; synthetic coins hold a few KB
    assert _block.cache_info().maxsize is not None


def test_calls_are_counted_per_source_and_endpoint():
    with SandboxServer(now=lambda: NOW, plan_history=False) as server:
        root = f"http://127.0.0.1:{server.port}/__sandbox__/stats"
        every_market(server)
        chart(server, "bitcoin", NOW - 2 * DAY, NOW)
        server.set_faults([{"kind": "500", "path_contains": "/coins/list"}])
        get(server, "/coins/list", expect=500)
        requests.get(server.urls()["fred"] + "/series", timeout=30)
        stats = requests.get(root, timeout=30).json()
        assert stats == server.stats()
        pages = len(every_market(server)) // 250 + 2  # the last page and the empty one
        assert stats["coingecko"] == {"/coins/markets": pages, "/coins/{coin}/market_chart/range": 1,
                                      "/coins/list": 1}
        assert stats["fred"] == {"/series": 1} and stats["total"] == pages + 3
        assert requests.delete(root, timeout=30).json() == {"total": 0}


def test_points_are_stamped_anywhere_in_the_hour_with_holes_as_real_answers_are(frozen):
    late, holes, points = 0, [], 0
    for coin in ["bitcoin", "ethereum", *(f"synthetic-coin-{n}" for n in range(100, 112))]:
        stamps = np.array([t for t, _ in chart(frozen, coin, NOW - 60 * DAY, NOW - 2 * DAY)["prices"]]) / 1000
        minutes = stamps % HOUR / 60
        late += int((minutes >= 5).sum())
        points += len(stamps)
        gaps = np.diff(stamps) / HOUR
        holes += [round(g) - 1 for g in gaps if g > 1.9]
        assert minutes.max() < 60 and gaps.min() > 0  # about one point an hour, never two at once
    assert 0.05 < late / points < 0.5  # most points come just after the hour; a fifth of days later
    assert holes and max(holes) <= MAX_HOLE + 1  # hours with no point at all, up to ~6 in a row
