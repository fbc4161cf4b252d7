"""The universe step (CoinGecko ``/coins/markets`` into ``universe_snapshots``), and the coins every
other step loads for an interval (``coins_for``).

Once a day the step stores which coins the universe holds, with their rank and market cap, stamped
with the time of the call (``known_at``): a file universe's coins (which checks that CoinGecko knows
every id in the file), or the top N by market cap. New coins get their permanent key first
(``warehouse/universe.py``). A snapshot is what was known when it was taken: a rerun of a day keeps
the first one, and a day in the past cannot be snapshotted later (the DAG neither catches up nor
backfills). A coin that joins is logged with the backfill command that loads its history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptoetl.intervals import Interval
from cryptoetl.sources.coingecko import CoinGeckoClient, MarketCoin, source_label
from cryptoetl.step import StepContext
from cryptoetl.universe import Coin, UniverseError
from cryptoetl.warehouse import universe as registry

log = logging.getLogger(__name__)
# The daily run of day D runs at D+1 00:00; its retries (and a late scheduler) within this still count.
LATEST_DAY_SLACK = timedelta(hours=36)


def coins_for(ctx: StepContext, interval: Interval) -> tuple[Coin, ...]:
    """The coins a step loads for ``interval``: the universe file's, or, with ``top:N``, every coin
    the snapshots tracked then (``warehouse.universe.tracked_coins``)."""
    if ctx.settings.universe_top is None:
        registry.check_keys(ctx.engine, ctx.settings.symbols)  # a key never moves to another coin
        return ctx.settings.symbols
    return registry.tracked_coins(ctx.engine, interval.start, ctx.settings.universe_retain_days)


def run_universe(ctx: StepContext, interval: Interval) -> int:
    """Take the snapshot of ``interval``'s day, unless it was taken; the rows written."""
    day = interval.start.astimezone(UTC).date()
    now = datetime.fromtimestamp(ctx.clock(), tz=UTC)
    if interval.end < now - LATEST_DAY_SLACK:
        raise UniverseError(f"universe: {interval} is not the latest day (now {now:%Y-%m-%d %H:%M} UTC): a "
                            "snapshot is what CoinGecko says now, so a past day cannot be snapshotted")
    taken = registry.snapshot_taken(ctx.engine, day)
    if taken is not None:
        log.info("universe: the snapshot of %s was taken at %s UTC; a snapshot is never replaced", day, taken)
        return 0
    client = ctx.client(CoinGeckoClient)
    top = ctx.settings.universe_top
    if top is not None:
        market, synthetic = client.top_coins(top)
        if not market:
            raise UniverseError("coingecko /coins/markets ranked no coin; refusing an empty universe")
        candidates = [(m.coingecko_id, m.ticker, m.name) for m in market]
    else:
        by_id, synthetic = client.coins_by_id([c.coingecko_id for c in ctx.settings.symbols])
        unknown = [c.coingecko_id for c in ctx.settings.symbols if c.coingecko_id not in by_id]
        if unknown:
            raise UniverseError(f"the universe file names ids that CoinGecko's /coins/markets does not list "
                                f"(unknown or delisted): {unknown}; fix CRYPTOETL_UNIVERSE's file")
        market = [by_id[c.coingecko_id] for c in ctx.settings.symbols]
    now = datetime.fromtimestamp(ctx.clock(), tz=UTC)  # after the calls: known from then on
    source = source_label(synthetic)
    with ctx.engine.begin() as conn:
        coins = registry.keys_for(conn, candidates) if top is not None else list(ctx.settings.symbols)
        new = registry.register(conn, coins, now)
        previous = registry.members_before(conn, day)
        rows = [_snapshot_row(coin, m, source) for coin, m in zip(coins, market, strict=True)]
        written = registry.write_snapshot(conn, day, now, rows)
    _report(day, coins, new, previous, interval)
    return written


def _snapshot_row(coin: Coin, market: MarketCoin, source: str) -> dict:
    return {"symbol": coin.symbol, "coingecko_id": coin.coingecko_id, "market_cap_rank": market.rank,
            "market_cap": market.market_cap, "price": market.price, "total_volume": market.total_volume,
            "source": source}


def _report(day, coins: Sequence[Coin], new: Sequence[Coin], previous: set[str],
            interval: Interval) -> None:
    members = {c.symbol for c in coins}
    joined, left = sorted(members - previous), sorted(previous - members)
    log.info("universe: snapshot of %s: %d coins, %d new to the registry, %d joined, %d left since the last "
             "snapshot", day, len(coins), len(new), len(joined) if previous else 0, len(left))
    if left:
        log.info("universe: left (their history stays): %s", ", ".join(left[:50]))
    if previous and joined:
        log.info("universe: joined: %s. Their history loads with: airflow backfill create --dag-id "
                 "prices_coingecko --from-date <first day> --to-date %s --reprocess-behavior completed; their "
                 "news mentions with the same command for news_guardian and news_cryptopanic (RSS cannot "
                 "go back)", ", ".join(joined[:50]), interval.start.date().isoformat())
    collisions = [c for c in new if c.symbol != c.ticker]
    if collisions:
        log.info("universe: tickers already held by another coin, keyed apart: %s",
                 ", ".join(f"{c.coingecko_id} ({c.ticker}) -> {c.symbol}" for c in collisions))
