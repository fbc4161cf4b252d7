"""CoinGecko v3 client: ``/coins/{id}/market_chart/range`` as hourly rows, and ``/coins/markets``
(the market-cap ranking, 250 coins a page) for the universe.

The real production client. It reaches the offline sandbox only through its base URL.

- Auth: demo keys send ``x-cg-demo-api-key``, pro keys ``x-cg-pro-api-key`` (on the pro host,
  chosen by settings). The key never appears in a URL, a log line or an error message.
- Granularity is automatic on CoinGecko's side: a range of a day or less returns 5-minute
  points, 2-90 days hourly, longer daily. So we always ask for at least two days, split long
  ranges into <= 90-day requests, bucket points by hour (first point wins) and trim to
  [start, end).
- Rate limits are per minute: calls are spaced 60/rate seconds apart, HTTP 429 honours
  ``Retry-After``, 5xx/timeouts/connection errors retry with exponential backoff.
- A malformed payload is an error naming the coin and range; it is never half-loaded.
- ``/coins/markets`` as it really answers: lower-case tickers, some padded with a non-breaking
  space; ``market_cap: 0`` and ``market_cap_rank: null`` for coins without a known circulating
  supply (after every ranked coin); ``current_price: null`` for a listing with no price yet; and a
  ranking that can move between two page calls (a coin on two pages is kept once).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptoetl.sources.http import HttpSource, SourcePayloadError
from cryptoetl.sources.spec import Plan, Pool, SourceSpec, SourceStep

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ["time", "price", "market_cap", "total_volume", "source"]
MIN_SPAN = timedelta(days=2)
MAX_SPAN = timedelta(days=90)
SERIES = {"prices": "price", "market_caps": "market_cap", "total_volumes": "total_volume"}


SPEC = SourceSpec(
    name="coingecko",
    title="CoinGecko",
    # Documented per-minute limits; demo keys send x-cg-demo-api-key, pro keys x-cg-pro-api-key.
    plans={
        "public": Plan("https://api.coingecko.com/api/v3", 5),
        "demo": Plan("https://api.coingecko.com/api/v3", 30, needs_key=True),
        "pro": Plan("https://pro-api.coingecko.com/api/v3", 500, needs_key=True),
    },
    steps=(
        SourceStep(
            step="prices",
            run="cryptoetl.loaders.prices:run_prices",
            writes="price_data_real",
            dag_id="prices_coingecko",
            task_id="load_prices",
            description="Hourly price, market cap and volume from CoinGecko market_chart/range",
        ),
        SourceStep(
            step="universe",
            run="cryptoetl.loaders.universe:run_universe",
            writes="universe_snapshots",
            dag_id="universe_coingecko",
            task_id="load_universe_snapshot",
            description="The universe's daily snapshot: CoinGecko /coins/markets ranks, with when they were known",
            # a snapshot is what is known now: the past cannot be snapshotted, so no catch-up or backfill
            backfillable=False,
        ),
    ),
    sandbox="cryptoetl.sandbox.coingecko:CoinGeckoApi",
    sandbox_path="/api/v3",
    pool=Pool(2, "Concurrent CoinGecko tasks. Caps concurrency, not call rate: the client spaces calls "
                 "to the plan's per-minute limit."),
    key_use="the demo and pro plans send it with every call",
)
MARKETS_PAGE = 250  # /coins/markets' largest page


def source_label(synthetic: bool) -> str:
    """The ``source`` column of rows from CoinGecko, or from the sandbox (SYNTHETIC)."""
    return "sandbox-synthetic" if synthetic else "coingecko"


@dataclass(frozen=True)
class MarketCoin:
    """One coin of ``/coins/markets``. A missing or zero market cap, and a missing price, are None."""

    coingecko_id: str
    ticker: str  # as CoinGecko sends it (lower-case, sometimes padded); universe.normalize_ticker keys it
    name: str
    rank: int | None
    market_cap: float | None
    price: float | None
    total_volume: float | None


class CoinGeckoClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str, *, api_key: str | None = None, plan: str = "public",
                 rate_per_minute: float = 30, **kwargs):
        headers = {f"x-cg-{plan}-api-key": api_key} if api_key and plan in ("demo", "pro") else {}
        super().__init__(base_url, api_key=api_key, plan=plan, rate_per_minute=rate_per_minute, headers=headers,
                         **kwargs)

    def get(self, path: str, params: dict) -> tuple[object, bool]:
        """JSON body and whether the server labelled it synthetic."""
        return self.get_json(path, params)

    # -- endpoints ---------------------------------------------------------------------------
    def markets(self, *, page: int = 1, ids: list[str] | None = None) -> tuple[list[MarketCoin], bool]:
        """One page of ``/coins/markets`` (USD, by market cap), and whether it was synthetic."""
        params: dict = {"vs_currency": "usd", "order": "market_cap_desc", "per_page": MARKETS_PAGE, "page": page}
        if ids:
            params["ids"] = ",".join(ids)
        body, synthetic = self.get("/coins/markets", params)
        return [_market_coin(item, page) for item in _market_items(body, page)], synthetic

    def top_coins(self, n: int) -> tuple[list[MarketCoin], bool]:
        """The ``n`` best-ranked coins, by rank, in ceil(n / 250) calls (one more if the ranking
        moved between pages); unranked coins are never among them."""
        seen: dict[str, MarketCoin] = {}
        synthetic = False
        for page in range(1, math.ceil(n / MARKETS_PAGE) + 2):
            coins, synthetic = self.markets(page=page)
            for coin in coins:
                seen.setdefault(coin.coingecko_id, coin)
            ranked = [c for c in seen.values() if c.rank is not None]
            if len(coins) < MARKETS_PAGE or len(ranked) >= n:
                break
        ranked = sorted((c for c in seen.values() if c.rank is not None), key=lambda c: (c.rank, c.coingecko_id))
        return ranked[:n], synthetic

    def coins_by_id(self, ids: list[str]) -> tuple[dict[str, MarketCoin], bool]:
        """``/coins/markets`` for these ids (250 a call): the ones CoinGecko lists, by id."""
        found: dict[str, MarketCoin] = {}
        synthetic = False
        for i in range(0, len(ids), MARKETS_PAGE):
            coins, synthetic = self.markets(ids=ids[i:i + MARKETS_PAGE])
            found.update((c.coingecko_id, c) for c in coins)
        return found, synthetic

    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly rows in [start, end): time (UTC, hour start), price, market_cap, total_volume, source."""
        import pandas as pd  # here, not at import: the registry reads SPEC at DAG parse time

        if start >= end:
            raise ValueError(f"empty range [{start}, {end})")
        request_start = min(start, end - MIN_SPAN)
        points: list[pd.DataFrame] = []
        synthetic = False
        chunk_start = request_start
        while chunk_start < end:
            chunk_end = min(chunk_start + MAX_SPAN, end)
            if chunk_end - chunk_start < MIN_SPAN:  # keep the last chunk hourly too
                chunk_start = chunk_end - MIN_SPAN
            body, synthetic = self.get(
                f"/coins/{coin_id}/market_chart/range",
                {"vs_currency": "usd", "from": int(chunk_start.timestamp()), "to": int(chunk_end.timestamp())},
            )
            points.append(self._parse(body, coin_id, chunk_start, chunk_end))
            chunk_start = chunk_end
        frame = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
        if frame.empty:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}).astype(
                {"time": "datetime64[ns, UTC]", "source": "object"})
        frame["time"] = frame["ts"].dt.floor("h")
        frame = frame.sort_values("ts").drop_duplicates("time", keep="first")
        frame = frame[(frame["time"] >= pd.Timestamp(start)) & (frame["time"] < pd.Timestamp(end))]
        frame["source"] = source_label(synthetic)
        return frame[COLUMNS].reset_index(drop=True)

    @staticmethod
    def _parse(body: object, coin_id: str, lo: datetime, hi: datetime) -> pd.DataFrame:
        import pandas as pd

        where = f"coingecko market_chart/range for {coin_id!r} [{lo:%Y-%m-%dT%H:%MZ}, {hi:%Y-%m-%dT%H:%MZ}]"
        if not isinstance(body, dict) or "prices" not in body:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise SourcePayloadError(f"{where}: payload has no 'prices' (got {keys}); has the API schema changed?")
        series = []
        for key, column in SERIES.items():
            raw = body.get(key, [])
            try:
                frame = pd.DataFrame(raw, columns=["ms", column], dtype="float64")
            except (ValueError, TypeError) as exc:
                raise SourcePayloadError(f"{where}: '{key}' is not a list of [timestamp_ms, number] pairs") from exc
            series.append(frame.drop_duplicates("ms").set_index("ms"))
        merged = series[0].join(series[1:], how="left")
        if merged["price"].isna().any():
            raise SourcePayloadError(f"{where}: 'prices' contains null values")
        merged = merged.reset_index()
        merged["ts"] = pd.to_datetime(merged["ms"].astype("int64"), unit="ms", utc=True)
        return merged.drop(columns="ms")


def _market_items(body: object, page: int) -> list[dict]:
    if not isinstance(body, list) or not all(isinstance(item, dict) and isinstance(item.get("id"), str)
                                             for item in body):
        raise SourcePayloadError(f"coingecko /coins/markets page {page}: expected a list of coins with an 'id' "
                                 f"(got {type(body).__name__}); has the API schema changed?")
    return body


def _market_coin(item: dict, page: int) -> MarketCoin:
    def number(key: str) -> float | None:
        value = item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SourcePayloadError(f"coingecko /coins/markets page {page}: {item['id']!r} has {key}={value!r}, "
                                     "not a number")
        return float(value)

    rank = number("market_cap_rank")
    cap = number("market_cap")
    return MarketCoin(coingecko_id=item["id"], ticker=str(item.get("symbol") or ""), name=str(item.get("name") or ""),
                      rank=int(rank) if rank is not None else None, market_cap=cap if cap else None,
                      price=number("current_price"), total_volume=number("total_volume"))
