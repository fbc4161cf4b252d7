"""CoinGecko v3 client: ``/coins/{id}/market_chart/range`` as hourly rows, and ``/coins/markets``
(the market-cap ranking, 250 coins a page) for the universe.

The real production client. It reaches the offline sandbox only through its base URL.

- Auth: demo keys send ``x-cg-demo-api-key``, pro keys ``x-cg-pro-api-key`` (on the pro host,
  chosen by settings). The key never appears in a URL, a log line or an error message.
- Granularity is automatic on CoinGecko's side: a range of a day or less returns 5-minute
  points, 2-90 days hourly, longer daily. So we always ask for at least two days and at most 90.
  Old ranges can come back daily even so (hourly data does not reach back forever): daily points
  are never stored as hourly rows, the fetch fails (``CoinGeckoGranularityError``).
- Hourly points are stamped anywhere in their hour (up to :59), and hours can be missing (holes of
  up to ~6 h). ``to_hours``: the row of hour ``H`` is the latest point stamped in
  ``(H - 55 min, H + 5 min]``, with its own timestamp as ``observed_at``. So a price is never used
  before it existed, except by at most ``LATE_BOUND`` (5 min) for points stamped just after the
  hour; a point stamped at :37 stands for the next hour (the latest price known then); a missing
  hour stays missing.
- History loads go by aligned 90-day blocks (``block_starts``, ``chart_points``), which the prices
  step lands in the warehouse (warehouse/landing.py) so that each block is paid for once.
- Plans: the public and demo plans serve the last 365 days (``check_history`` refuses an older
  range before any call; CoinGecko's own answer, HTTP 401 with error 10012, is explained too).
- Rate limits are per minute: calls are spaced 60/rate seconds apart (shared by every process
  through the warehouse, see sources/http.py), HTTP 429 (body ``{"status": {"error_code": 429,
  ...}}``, ``Retry-After: 119`` on the free plans) fails the task for Airflow to retry rather
  than sleep two minutes in a pool slot; 5xx/timeouts/connection errors retry with backoff.
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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cryptoetl.config import Settings
from cryptoetl.sources.http import EXCERPT_CHARS, HttpSource, SourceError, SourcePayloadError
from cryptoetl.sources.spec import Plan, Pool, SourceSettings, SourceSpec, SourceStep

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ["time", "price", "market_cap", "total_volume", "source", "observed_at"]
POINT_COLUMNS = ["ts", "price", "market_cap", "total_volume"]
MIN_SPAN = timedelta(days=2)
MAX_SPAN = timedelta(days=90)  # the longest range CoinGecko answers hourly; also the landing block
BLOCK_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # blocks are [EPOCH + k * MAX_SPAN, + MAX_SPAN)
LATE_BOUND = timedelta(minutes=5)  # a point stamped up to this long after the hour stands for the hour
DAILY_SPACING = timedelta(hours=12)  # points this far apart (median) are daily, not hourly
SERIES = {"prices": "price", "market_caps": "market_cap", "total_volumes": "total_volume"}


class CoinGeckoHistoryError(SourceError):
    """The range is older than the plan serves (checked before calling, or CoinGecko's error 10012)."""


class CoinGeckoGranularityError(SourcePayloadError):
    """CoinGecko answered daily points for a range that must be hourly."""


def block_starts(lo: datetime, hi: datetime) -> list[datetime]:
    """The starts of the aligned 90-day blocks that overlap [lo, hi)."""
    first = (lo - BLOCK_EPOCH) // MAX_SPAN
    last = (hi - timedelta(microseconds=1) - BLOCK_EPOCH) // MAX_SPAN
    return [BLOCK_EPOCH + k * MAX_SPAN for k in range(first, last + 1)]


def oldest_reachable(plan: str, now: datetime) -> datetime | None:
    """The oldest time ``plan`` serves points from (public and demo: 365 days back, with an hour's
    margin for clocks), or None when it serves all history."""
    days = SPEC.plans[plan].history_days if plan in SPEC.plans else None
    return None if days is None else now - timedelta(days=days) + timedelta(hours=1)


def beyond_plan_history(plan: str, start: datetime, now: datetime) -> str | None:
    """Why ``plan`` cannot serve points from ``start`` on, or None."""
    oldest = oldest_reachable(plan, now)
    if oldest is None or start >= oldest:
        return None
    return (f"coingecko: the {plan} plan serves the last {SPEC.plans[plan].history_days} days only, and "
            f"{start:%Y-%m-%d %H:%M} is older. Load that range with a pro key (COINGECKO_API_PLAN=pro) or start "
            "later (CRYPTOETL_START_DATE)")


def points_needed(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The point timestamps [lo, hi) that the hours [start, end) are made of (see ``to_hours``)."""
    return start - timedelta(hours=1), end


PRICES = SourceStep(
    step="prices",
    run="cryptoetl.loaders.prices:run_prices",
    writes="price_data_real",
    dag_id="prices_coingecko",
    task_id="load_prices",
    description="Hourly price, market cap and volume from CoinGecko market_chart/range",
    options=(("refetch", "call CoinGecko again for every block the interval needs, even if landed"),),
)

SPEC = SourceSpec(
    name="coingecko",
    title="CoinGecko",
    # Documented per-minute limits; demo keys send x-cg-demo-api-key, pro keys x-cg-pro-api-key.
    # Documented monthly allowances: demo 10,000 calls; pro (Analyst) 500,000; public none (rate only).
    plans={
        "public": Plan("https://api.coingecko.com/api/v3", 5, history_days=365),
        "demo": Plan("https://api.coingecko.com/api/v3", 30, needs_key=True, monthly_calls=10_000, history_days=365),
        "pro": Plan("https://pro-api.coingecko.com/api/v3", 500, needs_key=True, monthly_calls=500_000),
    },
    steps=(
        PRICES,
        PRICES.intraday("The hours that just ended, for freshness: the same rows the daily run writes, within "
                        "minutes of the hour instead of a day (at the cadence the plan's quota allows)"),
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
    monthly_budget=True,
)
MARKETS_PAGE = 250  # /coins/markets' largest page
INTRADAY_HOURS = (1, 2, 3, 4, 6, 8, 12)  # the cadences the intraday DAG may run at, fastest first
BUDGET_SHARE = 0.8  # intraday runs may spend this share of a monthly budget; the rest is for history loads
RATE_SHARE = 0.25  # a run may take this share of the calls its interval's minutes allow
RETAINED = 1.1  # top:N loads about this many coins: leavers stay for CRYPTOETL_UNIVERSE_RETAIN_DAYS


def intraday_cadence(source: SourceSettings, coins: int) -> tuple[int | None, str]:
    """How often the intraday prices DAG may run (every N hours; None: not at all), and why, with
    the arithmetic. Each run calls once per coin (the current block's new points)."""
    budget = (f"of the {source.plan} plan's {source.monthly_calls:,} a month, at most {BUDGET_SHARE:.0%} for these "
              "runs" if source.monthly_calls else f"the {source.plan} plan documents no monthly budget")
    minutes = coins / source.rate_per_minute
    for hours in INTRADAY_HOURS:
        monthly = coins * (24 // hours) * 31
        if minutes <= hours * 60 * RATE_SHARE and (
                source.monthly_calls is None or monthly <= source.monthly_calls * BUDGET_SHARE):
            return hours, (f"every {hours} h: {coins} coins = {coins} calls a run, {monthly:,} calls a month "
                           f"({budget}); {minutes:.1f} min of calls a run at {source.rate_per_minute:g} a minute")
    return None, (f"off: {coins} coins every 12 h would take {coins * 2 * 31:,} calls a month ({budget}) and "
                  f"{minutes:.0f} min of calls a run; the daily DAG alone loads the prices")


def intraday_cron(settings: Settings) -> tuple[str | None, str]:
    """The intraday DAG's cron for these settings (None: no intraday runs) and the reason."""
    coins = math.ceil(settings.universe_top * RETAINED) if settings.universe_top else len(settings.symbols)
    hours, why = intraday_cadence(SPEC.resolve(settings), coins)
    return (None if hours is None else "0 * * * *" if hours == 1 else f"0 */{hours} * * *"), why


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

    def check_history(self, start: datetime, now: datetime) -> None:
        """Refuse, before any call, a range older than the plan serves (public and demo: 365 days)."""
        if problem := beyond_plan_history(self.plan or "public", start, now):
            raise CoinGeckoHistoryError(f"{problem}: nothing was called")

    def final_error(self, shown: str, status: int, body: str) -> SourceError:
        code = _error_code(body)
        if code == 10012:
            return CoinGeckoHistoryError(
                f"{shown}: HTTP {status}, CoinGecko error 10012: the range is beyond the plan's history "
                f"(the public and demo plans serve the last 365 days): {body[:EXCERPT_CHARS]}")
        return super().final_error(shown, status, body)

    def chart_points(self, coin_id: str, lo: datetime, hi: datetime) -> tuple[pd.DataFrame, bool]:
        """One ``market_chart/range`` call: every point in [lo, hi) as stamped (columns ts, price,
        market_cap, total_volume), and whether it was synthetic. The range is widened to two days
        (shorter ones come back in 5-minute points) and must not exceed 90 (longer ones are daily)."""
        lo = min(lo, hi - MIN_SPAN)
        if hi - lo > MAX_SPAN:
            raise ValueError(f"a market_chart/range call spans at most {MAX_SPAN.days} days, got [{lo}, {hi})")
        body, synthetic = self.get(f"/coins/{coin_id}/market_chart/range",
                                   {"vs_currency": "usd", "from": int(lo.timestamp()), "to": int(hi.timestamp())})
        return self._parse(body, coin_id, lo, hi), synthetic

    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly rows in [start, end) (``to_hours``), fetched in <= 90-day calls without landing them.
        Columns: time (UTC hour), price, market_cap, total_volume, source, observed_at."""
        import pandas as pd  # here, not at import: the registry reads SPEC at DAG parse time

        if start >= end:
            raise ValueError(f"empty range [{start}, {end})")
        lo, hi = points_needed(start, end)
        frames, synthetic = [], False
        while lo < hi:
            chunk_hi = min(lo + MAX_SPAN, hi)
            points, synthetic = self.chart_points(coin_id, lo, chunk_hi)
            frames.append(points)
            lo = chunk_hi
        return to_hours(pd.concat(frames, ignore_index=True), start, end, source_label(synthetic))

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
        merged = merged.sort_values("ts")
        spacing = merged["ts"].diff().median()
        if len(merged) >= 2 and spacing >= pd.Timedelta(DAILY_SPACING):
            raise CoinGeckoGranularityError(
                f"{where}: CoinGecko answered points {spacing} apart (daily granularity) for a range it should "
                "answer hourly; hourly data does not reach this far back. Nothing is stored: daily points are "
                "never stored as hourly rows")
        return merged[POINT_COLUMNS].reset_index(drop=True)


def to_hours(points: pd.DataFrame, start: datetime, end: datetime, source: str) -> pd.DataFrame:
    """Hourly rows in [start, end) from points as stamped: hour ``H`` takes the latest point stamped in
    (H - 1 h + LATE_BOUND, H + LATE_BOUND], keeping its timestamp as ``observed_at``. Each point stands
    for one hour at most; an hour with no point has no row."""
    import pandas as pd

    if points.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
        return empty.astype({"time": "datetime64[ns, UTC]", "observed_at": "datetime64[ns, UTC]", "source": "object"})
    frame = points.sort_values("ts").drop_duplicates("ts", keep="last")
    frame = frame.assign(time=(frame["ts"] - pd.Timedelta(LATE_BOUND)).dt.ceil("h"), observed_at=frame["ts"])
    frame = frame.drop_duplicates("time", keep="last")
    frame = frame[(frame["time"] >= pd.Timestamp(start)) & (frame["time"] < pd.Timestamp(end))]
    return frame.assign(source=source)[COLUMNS].reset_index(drop=True)


def _error_code(body: str) -> int | None:
    """CoinGecko's error code, if the body is one of its error shapes: ``{"status": {"error_code": N}}``
    (429) or ``{"error": {"status": {"error_code": N, ...}}}`` (10012 and other 4xx)."""
    import json

    try:
        node = json.loads(body)
    except ValueError:
        return None
    for key in ("error", "status"):
        if isinstance(node, dict) and isinstance(node.get(key), dict):
            node = node[key]
    code = node.get("error_code") if isinstance(node, dict) else None
    return code if isinstance(code, int) else None


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
