"""Sandbox CoinGecko v3 (``/api/v3``). ALL DATA HERE IS SYNTHETIC.

Serves the market of ``coingecko_market.py``: the ten known coins (the biggest market caps) and
hundreds of "Synthetic Coin N" ones, some listed or delisted in the last weeks, with the real
request and response shapes:

- ``/ping``.
- ``/coins/{id}/market_chart/range?vs_currency=&from=&to=`` with the automatic granularity:
  <= 1 day -> 5-minute points, <= 90 days -> about hourly points (stamped anywhere in the hour,
  with holes: see coingecko_market.py), longer -> daily points at 00:00; and daily points for any
  range that starts before ``HOURLY_SINCE``, as old ranges really come back. Without a pro key
  (``require_key`` other than "pro"), a range starting more than 365 days before the clock is
  refused as CoinGecko does: HTTP 401 with error 10012 (``plan_history=False`` lifts that).
  Nothing after the sandbox clock, nothing outside the coin's life
  (before its listing hour, from its delisting hour on): an empty range is an empty list. An
  unknown id, or one not listed yet, is a 404.
- ``/coins/markets?vs_currency=&order=market_cap_desc&per_page=&page=&ids=``: the coins listed
  at the sandbox clock, as of their latest hourly point, paged (``per_page`` 1-250, default
  100, more is capped at 250 as the real API does; a page past the end is ``[]``); ``ids``
  filters and unknown ids are silently absent. Items carry the real keys (24 h figures from
  the coin's hourly points; no ath/atl/roi). Quirks copied from recorded real responses: a
  coin whose circulating supply is unknown has ``market_cap`` 0 and ``market_cap_rank`` null
  and comes after every ranked coin (ranks are 1..n by market cap); a new listing's first
  PRE_PRICE_HOURS have ``current_price`` null and ``market_cap`` 0 the same way; a few coins
  have ``total_volume`` null; symbols are lower-case, not unique (small synthetic coins share
  tickers with each other and with known coins) and one is padded with a no-break space.
- ``/coins/list``: id, symbol and name of every coin listed at the sandbox clock, by id
  (``status=inactive``: the delisted ones; ``include_platform=true`` adds empty ``platforms``).

The "429" fault answers in CoinGecko's shape: ``{"status": {"error_code": 429, ...}}`` with
``Retry-After: 119``, as the free plans do. Values are in USD whatever ``vs_currency``. Demo/pro
keys are checked (HTTP 401 without) when
the server is built with ``require_key="demo"|"pro"``. Faults: ``empty`` gives no records,
``drift`` renames ``prices`` (market_chart) or ``current_price`` (markets).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from cryptoetl.sandbox.coingecko_market import KNOWN_COINS, LEVELS, PRE_PRICE_HOURS, CoinSpec, Market
from cryptoetl.sandbox.common import DAY, EPOCH, HOUR, Route, seed

__all__ = ["KNOWN_COINS", "LEVELS", "CoinGeckoApi"]

PREFIX = "/api/v3"
MAX_PER_PAGE = 250
HOURLY_SINCE = EPOCH + 181 * DAY  # ranges starting earlier come back daily, however short
RATE_LIMITED = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit. Please visit "
                           "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate "
                           "limits. (synthetic sandbox)"}}


def _iso(ts: float, ms: int = 0) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def _beyond_history(now: float, days: int) -> dict:
    """CoinGecko's answer to a range older than the plan serves (recorded real shape, HTTP 401)."""
    return {"error": {"status": {"timestamp": _iso(now), "error_code": 10012, "error_message": (
        f"Your request exceeds the allowed time range. Public API users are limited to querying historical "
        f"data within the past {days} days. Upgrade to a paid plan to enjoy full historical data access: "
        "https://www.coingecko.com/en/api/pricing. (synthetic sandbox)")}}}


def _page_args(query) -> tuple[int, int]:
    """(per_page, page) from the query; ValueError when not positive integers."""
    per_page, page = int(query.get("per_page", 100)), int(query.get("page", 1))
    if per_page < 1 or page < 1:
        raise ValueError
    return min(per_page, MAX_PER_PAGE), page


class CoinGeckoApi:
    def __init__(self, server):
        self.server = server
        self.market = Market(server.now())  # listing times relative to the clock's day at construction
        self.coins: dict[str, CoinSpec] = self.market.coins

    def routes(self) -> list[Route]:
        return [
            Route("GET", rf"^{PREFIX}/ping$", self.ping, auth=self.auth),
            Route("GET", rf"^{PREFIX}/coins/(?P<coin>[^/]+)/market_chart/range$", self.market_chart_range,
                  auth=self.auth, empty=lambda body: {key: [] for key in body},
                  drift=lambda body: {("price" if k == "prices" else k): v for k, v in body.items()},
                  rate_limited=RATE_LIMITED, retry_after=119),
            Route("GET", rf"^{PREFIX}/coins/markets$", self.coins_markets, auth=self.auth, empty=lambda body: [],
                  drift=lambda body: [{("price" if k == "current_price" else k): v for k, v in item.items()}
                                      for item in body], rate_limited=RATE_LIMITED, retry_after=119),
            Route("GET", rf"^{PREFIX}/coins/list$", self.coins_list, auth=self.auth, empty=lambda body: []),
        ]

    def auth(self, query, headers):
        plan = self.server.require_key
        if plan and f"x-cg-{plan}-api-key" not in headers:
            return 401, {"status": {"error_code": 10002, "error_message": "API Key Missing (synthetic sandbox)"}}
        return None

    def ping(self, query):
        return 200, {"gecko_says": "(V3) To the Moon! (synthetic sandbox)"}

    # -- market_chart/range ------------------------------------------------------------------------
    def market_chart_range(self, query, coin: str):
        spec = self.coins.get(coin)
        now = self.server.now()
        if spec is None or (spec.listed_at is not None and spec.listed_at > now):
            return 404, {"error": "coin not found"}
        try:
            lo, hi = float(query["from"]), float(query["to"])
        except (KeyError, ValueError):
            return 400, {"error": "invalid or missing 'from'/'to' (UNIX seconds)"}
        if query.get("vs_currency") is None:
            return 400, {"error": "missing 'vs_currency'"}
        if self.server.history_days is not None and lo < now - self.server.history_days * DAY:
            return 401, _beyond_history(now, self.server.history_days)
        hi = min(hi, now)
        empty = {"prices": [], "market_caps": [], "total_volumes": []}
        if hi <= lo:
            return 200, empty
        span = hi - lo
        first, last = int((lo - EPOCH) // HOUR) - 1, int((hi - EPOCH) // HOUR) + 1
        ts, price, cap, vol = self.market.hourly(coin, first, last)
        if len(ts) == 0:
            return 200, empty
        if span <= DAY:  # 5-minute points interpolated between hourly ones
            grid = np.arange(np.ceil(lo / 300) * 300, hi + 1, 300)
            grid = grid[(grid >= ts[0]) & (grid <= ts[-1])]  # never before the first point or after the last
            ts, price, cap, vol = (grid, *(np.interp(grid, ts, arr) for arr in (price, cap, vol)))
        elif span > 90 * DAY or lo < HOURLY_SINCE:  # daily at 00:00
            day = (ts - EPOCH) // DAY  # each day's first point, stamped 00:00 (holes or not)
            keep = np.concatenate(([True], np.diff(day) > 0))
            ts, price, cap, vol = EPOCH + day[keep] * DAY, price[keep], cap[keep], vol[keep]
        inside = (ts >= lo) & (ts <= hi)
        for down_from, down_to in self.server.outages:  # the incident scenario: nothing served from then
            inside &= (ts < down_from) | (ts >= down_to)
        ms = (ts[inside] * 1000).astype(np.int64).tolist()
        return 200, {
            "prices": [[t, p] for t, p in zip(ms, price[inside].tolist(), strict=True)],
            "market_caps": [[t, c] for t, c in zip(ms, cap[inside].tolist(), strict=True)],
            "total_volumes": [[t, v] for t, v in zip(ms, vol[inside].tolist(), strict=True)],
        }

    # -- coins/markets and coins/list --------------------------------------------------------------
    def coins_markets(self, query):
        if query.get("vs_currency") is None:
            return 400, {"error": "missing 'vs_currency'"}
        if query.get("order", "market_cap_desc") != "market_cap_desc":
            return 400, {"error": "the synthetic sandbox supports order=market_cap_desc only"}
        try:
            per_page, page = _page_args(query)
        except ValueError:
            return 400, {"error": "'per_page' and 'page' must be positive integers"}
        items = self.markets(self.server.now())
        if ids := query.get("ids"):
            wanted = {part.strip() for part in ids.split(",")}
            items = [item for item in items if item["id"] in wanted]
        return 200, items[(page - 1) * per_page: page * per_page]

    def coins_list(self, query):
        now = self.server.now()
        if query.get("status", "active") == "inactive":
            coins = [c for c in self.coins.values() if c.delisted_at is not None and c.delisted_at <= now]
        else:
            coins = [c for c in self.coins.values() if c.alive(now)]
        platforms = str(query.get("include_platform", "")).lower() == "true"
        return 200, [{"id": c.id, "symbol": c.symbol, "name": c.name, **({"platforms": {}} if platforms else {})}
                     for c in sorted(coins, key=lambda c: c.id)]

    def markets(self, t: float) -> list[dict]:
        """Every coin listed at ``t`` as /coins/markets shows it: ranked coins by market cap desc
        (ranks 1..n), then the unranked ones (market cap 0) by id."""
        items = [self._item(coin, t) for coin in self.coins.values() if coin.alive(t)]
        ranked = sorted((i for i in items if i["market_cap"]), key=lambda i: (-i["market_cap"], i["id"]))
        for rank, item in enumerate(ranked, start=1):
            item["market_cap_rank"] = rank
        return ranked + sorted((i for i in items if not i["market_cap"]), key=lambda i: i["id"])

    def _item(self, coin: CoinSpec, t: float) -> dict:
        """One /coins/markets item for ``coin`` at ``t`` (rank filled in by the caller)."""
        hour = int((t - EPOCH) // HOUR)
        ts, price, cap, vol = self.market.hourly(coin.id, hour - 25, hour)
        keep = ts <= t
        ts, price, cap, vol = ts[keep], price[keep], cap[keep], vol[keep]
        item = {"id": coin.id, "symbol": coin.symbol, "name": coin.name,
                "image": f"https://sandbox.invalid/synthetic/coins/images/{coin.id}.png"}
        if len(ts) == 0 or (coin.listed_at is not None and t < coin.listed_at + PRE_PRICE_HOURS * HOUR):
            return {**item, **self._no_price(coin)}
        day_ago = max(int(np.searchsorted(ts, t - DAY, side="right")) - 1, 0)
        recent = ts > t - DAY
        supply = coin.supply if coin.supply_known else 0.0
        change, cap_change = float(price[-1] - price[day_ago]), float(cap[-1] - cap[day_ago])
        return {**item, "current_price": float(price[-1]), "market_cap": round(float(cap[-1])),
                "market_cap_rank": None, "fully_diluted_valuation": self._fdv(coin, float(price[-1])),
                "total_volume": round(float(vol[-1])) if coin.volume_known else None,
                "high_24h": float(price[recent].max()), "low_24h": float(price[recent].min()),
                "price_change_24h": change, "price_change_percentage_24h": 100 * change / float(price[day_ago]),
                "market_cap_change_24h": cap_change,
                "market_cap_change_percentage_24h": 100 * cap_change / float(cap[day_ago]) if cap[day_ago] else 0.0,
                "circulating_supply": supply, "total_supply": coin.total_supply, "max_supply": coin.max_supply,
                "last_updated": _iso(ts[-1], seed(f"{coin.id}/{int(ts[-1])}") % 1000)}

    @staticmethod
    def _fdv(coin: CoinSpec, price: float) -> int | None:
        supply = coin.max_supply or coin.total_supply
        return round(price * supply) if supply else None

    @staticmethod
    def _no_price(coin: CoinSpec) -> dict:
        """The fields of a listing with no price yet (as CoinGecko shows one)."""
        return {"current_price": None, "market_cap": 0, "market_cap_rank": None, "fully_diluted_valuation": None,
                "total_volume": 0, "high_24h": None, "low_24h": None, "price_change_24h": None,
                "price_change_percentage_24h": None, "market_cap_change_24h": None,
                "market_cap_change_percentage_24h": None,
                "circulating_supply": coin.supply if coin.supply_known else 0.0,
                "total_supply": coin.total_supply, "max_supply": coin.max_supply,
                "last_updated": _iso(coin.listed_at or EPOCH)}
