"""The prices step: CoinGecko ``market_chart/range`` into ``price_data_real``, one interval at a time."""

from __future__ import annotations

import logging

import pandas as pd

from cryptoetl.intervals import Interval
from cryptoetl.loaders.universe import coins_for
from cryptoetl.sources.coingecko import CoinGeckoClient
from cryptoetl.step import SourceDataMissing, StepContext
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.reads import read_frame
from cryptoetl.warehouse.writes import replace_interval

log = logging.getLogger(__name__)


def run_prices(ctx: StepContext, interval: Interval) -> int:
    """Fetch every coin of the universe (``coins_for``), then write them all in one transaction.

    If any symbol fails, the task fails and nothing is written: a partial day would look
    complete to everything downstream. Airflow retries the whole interval. A symbol with no
    points is fine (not listed yet), unless the interval already holds rows for it: an empty
    answer must never erase data that was loaded before.
    """
    coins = coins_for(ctx, interval)
    client = ctx.client(CoinGeckoClient)
    frames = []
    for coin in coins:
        frame = client.market_chart_range(coin.coingecko_id, interval.start, interval.end)
        frame = frame.dropna(subset=["price"])
        if frame.empty:
            existing = read_frame(ctx.engine, schema.price_data_real, time_column="time",
                                  start=interval.start, end=interval.end, symbols=[coin.symbol])
            if not existing.empty:
                raise SourceDataMissing(
                    f"prices: CoinGecko returned no points for {coin.symbol} in {interval}, but the warehouse "
                    f"holds {len(existing)} rows there; refusing to erase them (rerun later)")
            log.warning("prices: CoinGecko returned no points for %s in %s", coin.symbol, interval)
            continue
        frames.append(frame.assign(symbol=coin.symbol))
    rows = pd.concat(frames, ignore_index=True) if frames else []
    return replace_interval(ctx.engine, schema.price_data_real, rows, time_column="time", start=interval.start,
                            end=interval.end, keys={"symbol": [coin.symbol for coin in coins]})
