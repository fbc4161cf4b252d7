"""On-chain steps: daily BTC (blockchain.info) and ETH (Etherscan v2) totals into ``crypto_onchain_data``.

``run_onchain_btc`` and ``run_onchain_eth`` each write one row per completed UTC day of the
interval for their own symbol, with ``replace_interval(..., time_column="date",
keys={"symbol": [SYMBOL]})``: a BTC load never touches ETH rows and vice versa.

**Interval semantics.** On-chain totals are daily, so an interval must start and end at
00:00 UTC (the DAGs' daily runs always do); anything else is a ``ConfigError`` naming the
interval. A day that has not ended by the step's clock is never stored. The sources publish
and revise a day's totals hours after it ends, so every row carries ``complete_at`` = the next
midnight + the source's ``PUBLICATION_DELAY`` (``sources/blockchain_info.py``,
``sources/etherscan.py``; the view ``onchain_metrics`` calls it ``available_at``): features use
the day from then on, never earlier. The daily run for day D starts at midnight, before that
time: the row is stored then and used only from its ``complete_at``. An interval reaching into
today (a manual CLI run) loads and replaces only its completed days, [start, last midnight),
and leaves the rest untouched with a warning; an interval with no completed day writes
nothing and returns 0.

**Failure behaviour: all or nothing.** Every metric for every day is fetched first, then the
whole interval is written in one transaction. If any chart or action fails (HTTP error after
retries, malformed or drifted payload, a day missing from a chart because the source has not
published it yet), the step raises and writes nothing: the interval keeps its previous rows,
and Airflow retries the task. A partial row would look complete to every consumer.

**NULL, never 0.** Columns a source does not have (ETH hash rate, BTC new addresses, and on a
free Etherscan key everything but ``block_count``) stay NULL. ``data_source`` names the API and,
for ETH, the plan (``etherscan-pro`` / ``etherscan-free``); rows built from the offline sandbox
carry ``-sandbox-synthetic`` and ``is_synthetic = true``.

**Keys.** blockchain.info needs none. Etherscan needs ``ETHERSCAN_API_KEY`` (checked when the
step runs: a ``ConfigError`` naming it) and ``ETHERSCAN_API_PLAN`` = free | pro decides what is
loaded (see ``sources/etherscan.py``).

Clients come from ``ctx.client(BlockchainInfoClient | EtherscanClient)``, and the clock that
decides which days are complete is ``ctx.clock``, so tests inject both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval, midnight
from cryptoetl.loaders.universe import coins_for
from cryptoetl.sources import blockchain_info, etherscan
from cryptoetl.sources.blockchain_info import BlockchainInfoClient
from cryptoetl.sources.etherscan import EtherscanClient
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.writes import replace_interval

log = logging.getLogger(__name__)

SYNTHETIC_SUFFIX = "-sandbox-synthetic"
STEP_SYMBOLS = {"onchain_btc": "BTC", "onchain_eth": "ETH"}  # each on-chain step loads one coin


def completed_days(interval: Interval, now: float, step: str) -> tuple[date, date] | None:
    """[first, end) days of ``interval`` that have ended by ``now`` (UTC seconds), or None."""
    for edge in interval:
        if (edge.hour, edge.minute, edge.second, edge.microsecond) != (0, 0, 0, 0):
            raise ConfigError(f"{step}: on-chain totals are daily; the interval {interval} must start and end "
                              "at 00:00 UTC")
    first, end = interval.start.astimezone(UTC).date(), interval.end.astimezone(UTC).date()
    today = datetime.fromtimestamp(now, tz=UTC).date()  # the first day that has not ended
    if today <= first:
        log.warning("%s: no day of %s has ended yet (now %s); nothing to load", step, interval,
                    datetime.fromtimestamp(now, tz=UTC).isoformat())
        return None
    if today < end:
        log.warning("%s: %s reaches into days that have not ended; loading only [%s, %s), the rest is "
                    "left untouched", step, interval, first, today)
        end = today
    return first, end


def _load(ctx: StepContext, interval: Interval, *, step: str, symbol: str, client_class: type,
          source_label: Callable[[object], str], delay: timedelta) -> int:
    if symbol not in {coin.symbol for coin in coins_for(ctx, interval)}:
        log.warning("%s: %s is not in the universe; nothing to load", step, symbol)
        return 0
    days = completed_days(interval, ctx.clock(), step)
    if days is None:
        return 0
    first, end = days
    client = ctx.client(client_class)  # after the cheap checks: a missing key fails here
    metrics, synthetic = client.daily_metrics(first, end)  # every metric, every day, or raises
    label = source_label(client) + (SYNTHETIC_SUFFIX if synthetic else "")
    rows = []
    for offset in range((end - first).days):
        day = first + timedelta(days=offset)
        row = {"symbol": symbol, "date": day, "data_source": label, "is_synthetic": synthetic,
               "complete_at": midnight(day + timedelta(days=1)) + delay}
        row.update({column: values[day] for column, values in metrics.items()})
        rows.append(row)
    return replace_interval(ctx.engine, schema.crypto_onchain_data, rows, time_column="date",
                            start=midnight(first), end=midnight(end), keys={"symbol": [symbol]})


def run_onchain_btc(ctx: StepContext, interval: Interval) -> int:
    """BTC daily totals from blockchain.info charts for the completed days of ``interval``."""
    return _load(ctx, interval, step="onchain_btc", symbol=STEP_SYMBOLS["onchain_btc"],
                 client_class=BlockchainInfoClient,
                 source_label=lambda _client: "blockchain.info", delay=blockchain_info.PUBLICATION_DELAY)


def run_onchain_eth(ctx: StepContext, interval: Interval) -> int:
    """ETH daily totals from the Etherscan v2 API (what the plan allows) for the completed days."""
    return _load(ctx, interval, step="onchain_eth", symbol=STEP_SYMBOLS["onchain_eth"], client_class=EtherscanClient,
                 source_label=lambda client: f"etherscan-{client.plan}", delay=etherscan.PUBLICATION_DELAY)
