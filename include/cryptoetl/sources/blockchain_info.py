"""blockchain.info charts client: daily BTC network totals.

The real production client; it reaches the offline sandbox only through ``BLOCKCHAIN_INFO_BASE_URL``.

- Endpoint: ``GET /charts/{chart}?start=YYYY-MM-DD&timespan=Ndays&format=json&sampled=false``,
  answering ``{"status": "ok", "name", "unit", "period": "day", "description",
  "values": [{"x": unix_seconds, "y": number}, ...]}``; one point per UTC day at 00:00.
  ``sampled=false`` asks for every daily point (the default thins long ranges out).
- No key. blockchain.info asks for no more than one call every 10 seconds on the charts:
  calls are spaced by ``BLOCKCHAIN_INFO_RATE_PER_MINUTE`` (default 6), HTTP 429 honours
  ``Retry-After``, 5xx/timeouts retry with exponential backoff (all in ``HttpSource``).
- ``daily_metrics`` returns every chart of ``CHARTS`` for every day of [first, end) or raises:
  a payload without ``values`` or with a non-numeric point is a ``SourcePayloadError``
  (malformed or drifted API), a chart that lacks a day is ``SourceDataGap``
  (usually: the day is not published yet). Either way nothing is half-loaded.
- Several points in one UTC day would mean the chart is no longer daily: a payload error,
  never a silent pick.

Charts (stored column, unit as stored):

==================================  =======================  ===================================
chart                               column                   unit
==================================  =======================  ===================================
n-transactions                      transaction_count        confirmed transactions in the day
n-unique-addresses                  active_addresses         distinct addresses used in the day
estimated-transaction-volume-usd    transfer_volume_usd      USD (blockchain.info's estimate)
output-volume                       output_volume_native     BTC, total value of outputs
transaction-fees                    fees_native              BTC, total fees paid in the day
transaction-fees-usd                fees_usd                 USD, total fees paid in the day
miners-revenue                      miners_revenue_usd       USD, block rewards + fees
hash-rate                           hash_rate                TH/s (terahashes per second)
difficulty                          difficulty               unitless mining difficulty
avg-block-size                      avg_block_size_bytes     bytes (the chart's MB x 1,000,000)
==================================  =======================  ===================================

``mempool-size`` is left out on purpose: it is an intraday gauge, not a daily total, so its
"daily" value would depend on sampling.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cryptoetl.sources.http import HttpSource, SourceDataGap, SourceError, SourcePayloadError
from cryptoetl.sources.spec import DEFAULT_PLAN, Plan, Pool, SourceSpec, SourceStep

log = logging.getLogger(__name__)

# A day's totals may be used from the day's end (00:00 UTC) plus this delay: the row's
# ``complete_at`` (loaders/onchain.py), from which features use it. blockchain.info documents no
# publication time for its daily charts. What is known: a Bitcoin block mined after midnight may
# carry a timestamp of the day before (anything above the median of the last 11 blocks, about an
# hour back), so a day's totals move after midnight; the charts have also lagged by days at times
# (github.com/blockchain/api-v1-client-python/issues/181). Providers that document it publish a
# day 30-60 min after midnight (CryptoQuant: "the safe time ... would be an hour after the day").
# 6 h is a conservative margin over that, not a measurement. Rows keep the delay they were
# written with: after a change, reload the history (or move the stored values in a revision, as
# migrations/versions/0006 did) and rebuild the features.
PUBLICATION_DELAY = timedelta(hours=6)


SPEC = SourceSpec(
    name="blockchain_info",
    title="blockchain.info",
    # It asks for no more than one call every 10 seconds on the charts; no key.
    plans={DEFAULT_PLAN: Plan("https://api.blockchain.info", 6)},
    steps=(
        SourceStep(
            step="onchain_btc",
            run="cryptoetl.loaders.onchain:run_onchain_btc",
            writes="crypto_onchain_data",
            dag_id="onchain_blockchain_info",
            task_id="load_onchain_btc",
            description="BTC daily on-chain totals from blockchain.info charts",
        ),
    ),
    sandbox="cryptoetl.sandbox.onchain:BlockchainInfoApi",
    sandbox_path="/blockchain",
    pool=Pool(1, "Concurrent blockchain.info chart tasks (asks for gentle use; the client spaces calls)."),
)


@dataclass(frozen=True)
class Chart:
    name: str  # blockchain.info chart name (the path segment)
    column: str  # crypto_onchain_data column
    scale: float = 1.0  # multiply the chart's value by this to get the column's unit


CHARTS: tuple[Chart, ...] = (
    Chart("n-transactions", "transaction_count"),
    Chart("n-unique-addresses", "active_addresses"),
    Chart("estimated-transaction-volume-usd", "transfer_volume_usd"),
    Chart("output-volume", "output_volume_native"),
    Chart("transaction-fees", "fees_native"),
    Chart("transaction-fees-usd", "fees_usd"),
    Chart("miners-revenue", "miners_revenue_usd"),
    Chart("hash-rate", "hash_rate"),
    Chart("difficulty", "difficulty"),
    Chart("avg-block-size", "avg_block_size_bytes", scale=1_000_000.0),  # MB -> bytes
)


def _day_of(x: float) -> date:
    return datetime.fromtimestamp(x, tz=UTC).date()


class BlockchainInfoClient(HttpSource):
    spec = SPEC

    def chart(self, chart: str, first: date, end: date) -> tuple[dict[date, float], bool]:
        """Values of ``chart`` by UTC day for the days in [first, end), as the API reports them
        (no scaling), and whether the answer was labelled synthetic. Days the chart lacks are
        simply absent here; ``daily_metrics`` turns that into an error."""
        if first >= end:
            raise ValueError(f"empty day range [{first}, {end})")
        # One day more than needed: how the API rounds ``start``/``timespan`` at the edges
        # does not matter then; everything outside [first, end) is trimmed below.
        span = (end - first).days + 1
        params = {"start": first.isoformat(), "timespan": f"{span}days", "format": "json", "sampled": "false"}
        body, synthetic = self.get_json(f"/charts/{chart}", params)
        return self._parse(body, chart, first, end), synthetic

    def daily_metrics(self, first: date, end: date,
                      charts: tuple[Chart, ...] = CHARTS) -> tuple[dict[str, dict[date, float]], bool]:
        """``{column: {day: value in the column's unit}}`` for every chart and every day of
        [first, end), and whether any answer was synthetic. Raises if any chart lacks a day."""
        days = [first + timedelta(days=i) for i in range((end - first).days)]
        out: dict[str, dict[date, float]] = {}
        synthetic_any = False
        missing: dict[str, list[date]] = {}
        for chart in charts:
            values, synthetic = self.chart(chart.name, first, end)
            synthetic_any = synthetic_any or synthetic
            if lacking := [d for d in days if d not in values]:
                missing[chart.name] = lacking
            out[chart.column] = {d: v * chart.scale for d, v in values.items()}
        if missing:
            detail = "; ".join(f"{name}: {', '.join(d.isoformat() for d in ds)}" for name, ds in missing.items())
            raise SourceDataGap(
                f"blockchain.info charts have no value for some days of [{first}, {end}) ({detail}); "
                "the day may not be published yet. Nothing was written; rerun later")
        return out, synthetic_any

    @staticmethod
    def _parse(body: object, chart: str, first: date, end: date) -> dict[date, float]:
        where = f"blockchain.info chart {chart!r} [{first}, {end})"
        if not isinstance(body, dict) or not isinstance(body.get("values"), list):
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise SourcePayloadError(f"{where}: payload has no 'values' list (got {keys}); "
                                             "has the API schema changed?")
        if body.get("status", "ok") != "ok":
            raise SourceError(f"{where}: status {body.get('status')!r}: {str(body)[:200]}")
        out: dict[date, float] = {}
        for point in body["values"]:
            if not isinstance(point, dict) or "x" not in point or "y" not in point:
                raise SourcePayloadError(f"{where}: point {str(point)[:80]} is not {{'x': ts, 'y': value}}; "
                                                 "has the API schema changed?")
            x, y = point["x"], point["y"]
            if not isinstance(x, int | float) or isinstance(x, bool):
                raise SourcePayloadError(f"{where}: timestamp {x!r} is not a number")
            day = _day_of(x)
            if not first <= day < end:
                continue
            if y is None:  # the API's way to say "no value": the day counts as missing
                continue
            if not isinstance(y, int | float) or isinstance(y, bool) or not math.isfinite(y):
                raise SourcePayloadError(f"{where}: value {y!r} on {day} is not a finite number")
            if day in out:
                raise SourcePayloadError(f"{where}: several points on {day}: the chart is no longer daily")
            out[day] = float(y)
        return out
