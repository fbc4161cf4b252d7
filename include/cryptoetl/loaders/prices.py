"""The prices step: CoinGecko ``market_chart/range`` into ``price_data_real``, one interval at a time.

Three phases, so that history loads spend few calls and a failure loses nothing:

1. **Plan, before any call.** The coins (``coins_for``), the aligned 90-day blocks whose points the
   interval needs, and which of them the landing store (warehouse/landing.py) lacks. A range older
   than the plan serves, or more calls than are left of the monthly budget, fails here.
2. **Land.** Each missing block of each coin is fetched in one call and landed at once, in its own
   transaction. A retry (or the next run of a backfill) finds it landed and does not pay again. A
   block another run is fetching is waited for, not fetched twice.
3. **Write the interval**, in ONE transaction, coin by coin from the landing store (``to_hours``), so
   that memory holds one coin at a time. If anything fails, the interval keeps its previous rows.

A coin with no points is fine (not listed yet), unless the interval already holds rows for it: an
empty answer must never erase data that was loaded before. ``run prices --refetch`` ignores the
landing store and calls CoinGecko again for every block the interval needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval
from cryptoetl.loaders.universe import coins_for
from cryptoetl.sources.coingecko import (
    BLOCK_EPOCH,
    MAX_SPAN,
    MIN_SPAN,
    SPEC,
    CoinGeckoClient,
    CoinGeckoGranularityError,
    block_starts,
    oldest_reachable,
    points_needed,
    source_label,
    to_hours,
)
from cryptoetl.sources.http import SourceDataGap
from cryptoetl.step import SourceDataMissing, StepContext
from cryptoetl.universe import Coin
from cryptoetl.warehouse import landing, quota, schema
from cryptoetl.warehouse.reads import read_frame
from cryptoetl.warehouse.retry import retry_transient
from cryptoetl.warehouse.writes import replace_interval_parts

log = logging.getLogger(__name__)
CLAIM_TTL = timedelta(minutes=10)  # a claim outlives a killed fetch this long at most
POLL_SECONDS = 2.0  # how often a run waiting for another run's block asks again


def planned_fetches(ctx: StepContext, interval: Interval) -> tuple[Sequence[Coin], list[landing.Fetch]]:
    """The coins of ``interval`` and the block fetches (one call each) it needs: phase 1, no call.
    ``python -m cryptoetl quota`` prints the same plan for any range."""
    coins = coins_for(ctx, interval)
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    # Calls end at the last whole hour: CoinGecko's answer can end with a "live" point stamped at the
    # call's time, which a later answer (or a backfill) would not carry; landing it would make the hour
    # after it differ between the runs that saw it and those that did not.
    until = now.replace(minute=0, second=0, microsecond=0)
    lo, hi = points_needed(interval.start, interval.end)
    plan = SPEC.resolve(ctx.settings).plan
    todo = landing.missing(ctx.engine, [c.coingecko_id for c in coins], block_starts(lo, min(hi, until)), MAX_SPAN,
                           need=(lo, min(hi, until)), fetch=(oldest_reachable(plan, now) or BLOCK_EPOCH, until),
                           refetch="refetch" in ctx.options)
    return coins, todo


def run_prices(ctx: StepContext, interval: Interval) -> int:
    client = ctx.client(CoinGeckoClient)
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    if interval.end > now:  # its last hour needs points up to 5 minutes past its start: all there at its end
        raise SourceDataGap(f"prices: {interval} is not over until {interval.end:%Y-%m-%d %H:%M} UTC; run it then")
    _check_plan(ctx, client)
    client.check_history(points_needed(interval.start, interval.end)[0], now)
    coins, todo = planned_fetches(ctx, interval)
    refetch = "refetch" in ctx.options
    budget = SPEC.resolve(ctx.settings).monthly_calls
    quota.check_budget(ctx.engine, SPEC.name, len(todo), budget, ctx.clock(), setting=SPEC.env_name("MONTHLY_CALLS"),
                       what=f"prices {interval} ({len(coins)} coins, {len(todo)} blocks not landed yet)")
    before = client.calls
    _land(ctx, client, todo, refetch=refetch)
    log.info("prices: %d coins, %d blocks to land, %d CoinGecko calls", len(coins), len(todo), client.calls - before)
    # the daily run and the hourly one for 23:00 write the same hour at midnight: a lock conflict is retried
    return retry_transient(lambda: replace_interval_parts(
        ctx.engine, schema.price_data_real, _parts(ctx, coins, interval), time_column="time", start=interval.start,
        end=interval.end), what=f"prices {interval}")


def _check_plan(ctx: StepContext, client: CoinGeckoClient) -> None:
    """The plan is the settings' (``COINGECKO_API_PLAN``): the planner reads it there, and the client is
    built from them (``from_settings``). A client on another plan would refuse ranges the plan serves, or
    plan blocks it cannot fetch (and pay for them day by day): refused before any call."""
    plan = SPEC.resolve(ctx.settings).plan
    if client.plan != plan:
        raise ConfigError(f"prices: the CoinGecko client is on the {client.plan} plan but the settings name the "
                          f"{plan} plan ({SPEC.env_name('API_PLAN')}); build the client from the settings "
                          "(CoinGeckoClient.from_settings): nothing was called")


def _land(ctx: StepContext, client: CoinGeckoClient, todo: Sequence[landing.Fetch], *, refetch: bool) -> None:
    """Fetch and land every block of ``todo``; wait for those another run is fetching."""
    pending = list(todo)
    while pending:
        waiting = []
        for fetch in pending:
            now = datetime.fromtimestamp(ctx.clock(), UTC)
            state = landing.claim(ctx.engine, fetch, now, CLAIM_TTL, refetch=refetch)
            if state == "busy":
                waiting.append(fetch)
            elif state == "claimed":
                _fetch_block(ctx, client, fetch, now)
        if waiting:
            log.info("prices: %d blocks are being fetched by another run; waiting for them", len(waiting))
            time.sleep(POLL_SECONDS)
            refetch = False  # what another run lands meanwhile is fresh enough
        pending = waiting


def _fetch_block(ctx: StepContext, client: CoinGeckoClient, fetch: landing.Fetch, now: datetime) -> None:
    """One call for one claimed block (two if the block reaches back past CoinGecko's hourly data:
    then from the run's own start), landed at once; the claim is released if anything fails."""
    try:
        call_lo = min(fetch.lo, fetch.hi - MIN_SPAN)
        try:
            points, synthetic = client.chart_points(fetch.coingecko_id, call_lo, fetch.hi)
        except CoinGeckoGranularityError:
            if fetch.lo >= fetch.need_lo:
                raise
            call_lo = min(fetch.need_lo.replace(microsecond=0), fetch.hi - MIN_SPAN)
            points, synthetic = client.chart_points(fetch.coingecko_id, call_lo, fetch.hi)
        if points.empty and (landed := landing.count_points(ctx.engine, fetch.coingecko_id, call_lo, fetch.hi)):
            raise SourceDataMissing(
                f"prices: CoinGecko returned no points for {fetch.coingecko_id} in [{call_lo:%Y-%m-%d %H:%M}, "
                f"{fetch.hi:%Y-%m-%d %H:%M}], but {landed} were landed before; refusing to erase them (rerun later)")
        landing.land(ctx.engine, fetch, points, synthetic=synthetic, fetched_at=now, covered=(call_lo, fetch.hi))
    except BaseException:
        landing.release(ctx.engine, fetch)
        raise


def _parts(ctx: StepContext, coins: Sequence[Coin], interval: Interval) -> Iterator[tuple[dict, object]]:
    """(keys, rows) per coin, read from the landing store: one coin in memory at a time."""
    lo, hi = points_needed(interval.start, interval.end)
    for coin in coins:
        points, synthetic = landing.read_points(ctx.engine, coin.coingecko_id, lo, hi)
        rows = to_hours(points, interval.start, interval.end, source_label(synthetic))
        if rows.empty:
            _refuse_erasing(ctx, coin, interval)
            log.warning("prices: CoinGecko has no points for %s in %s", coin.symbol, interval)
        yield {"symbol": [coin.symbol]}, rows.assign(symbol=coin.symbol)


def _refuse_erasing(ctx: StepContext, coin: Coin, interval: Interval) -> None:
    existing = read_frame(ctx.engine, schema.price_data_real, time_column="time", start=interval.start,
                          end=interval.end, symbols=[coin.symbol])
    if not existing.empty:
        raise SourceDataMissing(
            f"prices: CoinGecko returned no points for {coin.symbol} in {interval}, but the warehouse holds "
            f"{len(existing)} rows there; refusing to erase them (rerun later)")
