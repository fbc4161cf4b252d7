"""Sandbox CoinGecko v3 (``/api/v3``). ALL DATA HERE IS SYNTHETIC.

``/ping`` and ``/coins/{id}/market_chart/range`` with the real request and response shapes,
including the automatic granularity: <= 1 day -> 5-minute points, <= 90 days -> hourly
points a few seconds after the hour, longer -> daily points at 00:00. Demo/pro keys are
checked when the server is built with ``require_key="demo"|"pro"``.
"""

from __future__ import annotations

import numpy as np

from cryptoetl.sandbox.common import DAY, EPOCH, HORIZON_HOURS, HOUR, Route, rng

PREFIX = "/api/v3"
# Price level and circulating supply per coin id; anything else gets a seeded level.
LEVELS = {"bitcoin": (60_000.0, 19.7e6), "ethereum": (3_000.0, 120e6), "solana": (150.0, 460e6),
          "binancecoin": (550.0, 150e6), "ripple": (0.55, 55e9), "cardano": (0.45, 35e9),
          "dogecoin": (0.12, 144e9), "avalanche-2": (30.0, 400e6), "polkadot": (6.0, 1.4e9),
          "chainlink": (14.0, 600e6)}
KNOWN_COINS = frozenset(LEVELS)


class _Series:
    """Hourly price/market-cap/volume on a fixed grid of HORIZON_HOURS from EPOCH.

    Each stream has its own seed and is generated once, so a value never depends on which
    ranges were requested before (the whole point of a deterministic sandbox)."""

    def __init__(self, coin_id: str):
        self.level, self.supply = LEVELS.get(coin_id, (float(rng(coin_id, "level").uniform(0.1, 500)), 1e9))
        self.log_price = np.log(self.level) + np.cumsum(rng(coin_id, "steps").normal(0.0, 0.006, HORIZON_HOURS))
        self.volume_noise = rng(coin_id, "volume").lognormal(0.0, 0.3, HORIZON_HOURS)
        self.jitter = rng(coin_id, "jitter").integers(0, 300, HORIZON_HOURS)

    def hourly(self, first_hour: int, last_hour: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(timestamp_s, price, market_cap, volume) for hour indexes [first, last]."""
        idx = np.arange(max(first_hour, 0), min(last_hour, HORIZON_HOURS - 1) + 1)
        price = np.exp(self.log_price[idx])
        ts = EPOCH + idx * HOUR + self.jitter[idx]
        return ts, price, price * self.supply, price * self.supply * 0.03 * self.volume_noise[idx]


class CoinGeckoApi:
    def __init__(self, server):
        self.server = server
        self._series: dict[str, _Series] = {}

    def routes(self) -> list[Route]:
        return [
            Route("GET", rf"^{PREFIX}/ping$", self.ping, auth=self.auth),
            Route("GET", rf"^{PREFIX}/coins/(?P<coin>[^/]+)/market_chart/range$", self.market_chart_range,
                  auth=self.auth, empty=lambda body: {key: [] for key in body},
                  drift=lambda body: {("price" if k == "prices" else k): v for k, v in body.items()}),
        ]

    def auth(self, query, headers):
        plan = self.server.require_key
        if plan and f"x-cg-{plan}-api-key" not in headers:
            return 401, {"status": {"error_code": 10002, "error_message": "API Key Missing (synthetic sandbox)"}}
        return None

    def ping(self, query):
        return 200, {"gecko_says": "(V3) To the Moon! (synthetic sandbox)"}

    def market_chart_range(self, query, coin: str):
        if coin not in KNOWN_COINS:
            return 404, {"error": "coin not found"}
        try:
            lo, hi = float(query["from"]), float(query["to"])
        except (KeyError, ValueError):
            return 400, {"error": "invalid or missing 'from'/'to' (UNIX seconds)"}
        if query.get("vs_currency") is None:
            return 400, {"error": "missing 'vs_currency'"}
        hi = min(hi, self.server.now())
        if hi <= lo:
            return 200, {"prices": [], "market_caps": [], "total_volumes": []}
        series = self._series.setdefault(coin, _Series(coin))
        span = hi - lo
        first, last = int((lo - EPOCH) // HOUR) - 1, int((hi - EPOCH) // HOUR) + 1
        ts, price, cap, vol = series.hourly(first, last)
        if span <= DAY:  # 5-minute points interpolated between hourly ones
            grid = np.arange(np.ceil(lo / 300) * 300, hi + 1, 300)
            ts, price, cap, vol = (grid, *(np.interp(grid, ts, arr) for arr in (price, cap, vol)))
        elif span > 90 * DAY:  # daily at 00:00
            keep = ((ts - EPOCH) // HOUR) % 24 == 0
            ts, price, cap, vol = ts[keep] - (ts[keep] - EPOCH) % HOUR, price[keep], cap[keep], vol[keep]
        inside = (ts >= lo) & (ts <= hi)
        ms = (ts[inside] * 1000).astype(np.int64).tolist()
        return 200, {
            "prices": [[t, p] for t, p in zip(ms, price[inside].tolist(), strict=True)],
            "market_caps": [[t, c] for t, c in zip(ms, cap[inside].tolist(), strict=True)],
            "total_volumes": [[t, v] for t, v in zip(ms, vol[inside].tolist(), strict=True)],
        }
