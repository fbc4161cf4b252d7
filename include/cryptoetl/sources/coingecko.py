"""CoinGecko v3 client: ``/coins/{id}/market_chart/range`` as hourly rows.

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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd
import requests

from cryptoetl.config import ConfigError

log = logging.getLogger(__name__)

COLUMNS = ["time", "price", "market_cap", "total_volume", "source"]
MIN_SPAN = timedelta(days=2)
MAX_SPAN = timedelta(days=90)
SERIES = {"prices": "price", "market_caps": "market_cap", "total_volumes": "total_volume"}


class CoinGeckoError(RuntimeError):
    """The API failed or answered something we cannot use. Safe to show: no key inside."""


class CoinGeckoRateLimited(CoinGeckoError):
    """HTTP 429 persisted after every retry."""


class CoinGeckoClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, plan: str = "public",
                 rate_per_minute: int = 30, timeout: float = 30.0, max_retries: int = 5,
                 backoff_base: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, session: requests.Session | None = None):
        if plan in ("demo", "pro") and not api_key:
            raise ConfigError(f"COINGECKO_API_KEY is required for COINGECKO_API_PLAN={plan}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.min_interval = 60.0 / rate_per_minute
        self.sleep, self.clock = sleep, clock
        self.session = session or requests.Session()
        self.headers = {"accept": "application/json"}
        if api_key and plan in ("demo", "pro"):
            self.headers[f"x-cg-{plan}-api-key"] = api_key
        self._last_call: float | None = None

    @classmethod
    def from_settings(cls, settings) -> CoinGeckoClient:
        return cls(settings.coingecko_base_url, api_key=settings.coingecko_api_key, plan=settings.coingecko_plan,
                   rate_per_minute=settings.coingecko_rate_per_minute, timeout=settings.http_timeout_seconds)

    # -- HTTP -------------------------------------------------------------------------------
    def _throttle(self) -> None:
        if self._last_call is not None:
            wait = self.min_interval - (self.clock() - self._last_call)
            if wait > 0:
                self.sleep(wait)
        self._last_call = self.clock()

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_base * 2**attempt, 60.0)

    def get(self, path: str, params: dict) -> tuple[object, bool]:
        """JSON body and whether the server labelled it synthetic."""
        url = f"{self.base_url}{path}"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self._throttle()
            try:
                resp = self.session.get(url, params=params, headers=self.headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                last_problem = f"{type(exc).__name__}"
                wait = self._backoff(attempt)
            else:
                if resp.status_code == 200:
                    try:
                        body = resp.json()
                    except ValueError as exc:
                        raise CoinGeckoError(f"GET {path}: response is not valid JSON ({exc}); "
                                             f"body starts {resp.text[:80]!r}") from exc
                    return body, resp.headers.get("X-Cryptoetl-Synthetic", "").lower() == "true"
                excerpt = resp.text[:200]
                if resp.status_code == 429:
                    retry_after = resp.headers.get("Retry-After", "")
                    wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else self._backoff(attempt)
                    last_problem = f"HTTP 429 {excerpt}"
                elif resp.status_code >= 500:
                    wait = self._backoff(attempt)
                    last_problem = f"HTTP {resp.status_code} {excerpt}"
                else:
                    raise CoinGeckoError(f"GET {path}: HTTP {resp.status_code}: {excerpt}")
            if attempt == self.max_retries:
                break
            log.warning("coingecko GET %s: %s; retry %d/%d in %.1fs", path, last_problem[:120],
                        attempt + 1, self.max_retries, wait)
            self.sleep(wait)
        error = CoinGeckoRateLimited if last_problem.startswith("HTTP 429") else CoinGeckoError
        raise error(f"GET {path}: giving up after {self.max_retries + 1} attempts: {last_problem}")

    # -- endpoints ---------------------------------------------------------------------------
    def market_chart_range(self, coin_id: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Hourly rows in [start, end): time (UTC, hour start), price, market_cap, total_volume, source."""
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
        frame["source"] = "sandbox-synthetic" if synthetic else "coingecko"
        return frame[COLUMNS].reset_index(drop=True)

    @staticmethod
    def _parse(body: object, coin_id: str, lo: datetime, hi: datetime) -> pd.DataFrame:
        where = f"market_chart/range for {coin_id!r} [{lo:%Y-%m-%dT%H:%MZ}, {hi:%Y-%m-%dT%H:%MZ}]"
        if not isinstance(body, dict) or "prices" not in body:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise CoinGeckoError(f"{where}: payload has no 'prices' (got {keys}); has the API schema changed?")
        series = []
        for key, column in SERIES.items():
            raw = body.get(key, [])
            try:
                frame = pd.DataFrame(raw, columns=["ms", column], dtype="float64")
            except (ValueError, TypeError) as exc:
                raise CoinGeckoError(f"{where}: '{key}' is not a list of [timestamp_ms, number] pairs") from exc
            series.append(frame.drop_duplicates("ms").set_index("ms"))
        merged = series[0].join(series[1:], how="left")
        if merged["price"].isna().any():
            raise CoinGeckoError(f"{where}: 'prices' contains null values")
        merged = merged.reset_index()
        merged["ts"] = pd.to_datetime(merged["ms"].astype("int64"), unit="ms", utc=True)
        return merged.drop(columns="ms")
