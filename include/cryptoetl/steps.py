"""Steps: each one is extract -> transform -> load for one data interval.

A step is a pure function of (context, interval). The CLI, a Kubernetes pod, a local
subprocess and the tests all call the same function; only the launcher differs.
Every step writes through ``replace_interval``: rerunning an interval replaces exactly its
rows in one transaction, and a failure leaves the previous rows in place.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
from sqlalchemy import Engine

from cryptoetl.config import ConfigError, Settings
from cryptoetl.intervals import Interval
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.io import read_frame, replace_interval

log = logging.getLogger(__name__)


@dataclass
class StepContext:
    """What a step needs from the outside world. Tests pass fakes; the CLI builds the real ones."""

    settings: Settings
    engine: Engine
    clients: dict[str, object] = field(default_factory=dict)

    def client(self, name: str, factory: Callable[[Settings], object]) -> object:
        """The client registered as ``name`` (tests inject fakes or fast clients there), else
        one built from the settings by ``factory``, once per context."""
        if name not in self.clients:
            self.clients[name] = factory(self.settings)
        return self.clients[name]

    @cached_property
    def coingecko(self):
        if "coingecko" in self.clients:
            return self.clients["coingecko"]
        from cryptoetl.sources.coingecko import CoinGeckoClient

        return CoinGeckoClient.from_settings(self.settings)


@dataclass(frozen=True)
class Step:
    name: str
    # The function, or "module:function" imported when the step runs (keeps heavy client
    # libraries out of DAG parsing).
    run_ref: Callable[[StepContext, Interval], int] | str
    writes: str  # the table it owns; also the name of the Airflow asset it emits
    reads: tuple[str, ...]  # tables whose changes make this step's output stale
    profile: str  # key of config.RESOURCE_PROFILES
    task_id: str  # verb first; the pod name is this with hyphens
    # Assets (tables) whose events trigger a rebuild. Narrower than ``reads`` where an
    # input always arrives through another trigger: prices reach features via technical.
    triggered_by: tuple[str, ...] = ()
    # How far past a changed input interval this step's output changes, in hours. A price
    # correction on day X moves the EMAs of the following warm-up window, and the 7-day
    # returns of the following week; downstream runs extend event intervals by this much.
    lookahead_hours: int | Mapping[str, int] = 0
    pool: str | None = None
    description: str = ""
    # False for sources that only serve their latest items (RSS): their DAG does not catch
    # up and cannot be backfilled; each run stores what the feed has now.
    backfillable: bool = True
    # The pod image: "base", or "sentiment" (torch and the models baked in; see the Dockerfile).
    image: str = "base"

    def lookahead_for(self, table: str | None) -> int:
        """Hours past a changed interval of ``table`` that this step's output changes; per input
        when ``lookahead_hours`` is a mapping (the longest one for an unknown input)."""
        if isinstance(self.lookahead_hours, int):
            return self.lookahead_hours
        if table in self.lookahead_hours:
            return self.lookahead_hours[table]
        return max(self.lookahead_hours.values())

    def run(self, ctx: StepContext, interval: Interval) -> int:
        func = self.run_ref
        if isinstance(func, str):
            module, _, attr = func.partition(":")
            func = getattr(importlib.import_module(module), attr)
        return func(ctx, interval)


def _symbols(ctx: StepContext) -> list[str]:
    return [coin.symbol for coin in ctx.settings.symbols]


class SourceDataMissing(RuntimeError):
    """The source returned nothing where the warehouse already holds data: refusing to erase it."""


def run_prices(ctx: StepContext, interval: Interval) -> int:
    """Fetch every configured symbol, then write them all in one transaction.

    If any symbol fails, the task fails and nothing is written: a partial day would look
    complete to everything downstream. Airflow retries the whole interval. A symbol with no
    points is fine (not listed yet), unless the interval already holds rows for it: an empty
    answer must never erase data that was loaded before.
    """
    frames = []
    for coin in ctx.settings.symbols:
        frame = ctx.coingecko.market_chart_range(coin.coingecko_id, interval.start, interval.end)
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
    return replace_interval(
        ctx.engine,
        schema.price_data_real,
        rows,
        time_column="time",
        start=interval.start,
        end=interval.end,
        keys={"symbol": _symbols(ctx)},
    )


def run_technical(ctx: StepContext, interval: Interval) -> int:
    """Indicators for [start, end) from prices with a fixed warm-up; see loaders/technical.py."""
    from cryptoetl.loaders import technical

    return technical.run_technical(ctx, interval)


def run_features(ctx: StepContext, interval: Interval) -> int:
    """Rebuild the interval's feature rows inside the warehouse (DELETE + INSERT ... SELECT)."""
    from cryptoetl.warehouse import features_sql

    return features_sql.rebuild(ctx.engine, interval.start, interval.end, _symbols(ctx))


# How far past a changed input the features change (warehouse/features_sql.py explains each):
# indicators and returns only their own hour (the technical step already extends a price change
# over the 720 h it reaches), sentiment windows 7 days, macro values up to 120, on-chain up to 8.
FEATURE_LOOKAHEAD_HOURS = {
    "price_data_real": 0,
    "technical_indicators": 0,
    "macro_indicators": 120 * 24,
    "crypto_onchain_data": 8 * 24,
    "crypto_sentiment_data": 168,
    "crypto_news": 168,
}

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step(
            name="prices",
            run_ref=run_prices,
            writes="price_data_real",
            reads=(),
            profile="io-small",
            task_id="load_prices",
            pool="coingecko",
            description="Hourly price, market cap and volume from CoinGecko market_chart/range",
        ),
        Step(
            name="technical",
            run_ref=run_technical,
            writes="technical_indicators",
            reads=("price_data_real",),
            triggered_by=("price_data_real",),
            profile="compute-medium",
            task_id="compute_technical_indicators",
            lookahead_hours=720,  # = default warm-up: beyond it a change is below 1e-24
            description="SMA 20/50, EMA 12/26, RSI 14, MACD, Bollinger 20/2 with the `ta` library",
        ),
        Step(
            name="features",
            run_ref=run_features,
            writes="ml_features_materialized",
            reads=("price_data_real", "technical_indicators", "macro_indicators", "crypto_onchain_data",
                   "crypto_news", "crypto_news_mentions", "crypto_sentiment_data"),
            # prices arrive through technical_indicators; news through its sentiment scores
            triggered_by=("technical_indicators", "macro_indicators", "crypto_onchain_data",
                          "crypto_sentiment_data"),
            profile="compute-medium",
            task_id="build_ml_features",
            lookahead_hours=FEATURE_LOOKAHEAD_HOURS,
            description="Rebuild ml_features_materialized: one row per symbol per hour, point in time",
        ),
        Step(
            name="sentiment",
            run_ref="cryptoetl.loaders.sentiment:run_sentiment",
            writes="crypto_sentiment_data",
            reads=("crypto_news",),
            triggered_by=("crypto_news",),
            profile="sentiment",
            task_id="score_news_sentiment",
            image="sentiment",
            description="Score news with CryptoBERT (crypto) and FinBERT (general), once per model revision",
        ),
        Step(
            name="macro",
            run_ref="cryptoetl.loaders.macro:run_macro",
            writes="macro_indicators",
            reads=(),
            profile="io-small",
            task_id="load_macro_fred",
            pool="fred",
            description="FRED/ALFRED series with their vintages (when each value became known)",
        ),
        Step(
            name="onchain_btc",
            run_ref="cryptoetl.loaders.onchain:run_onchain_btc",
            writes="crypto_onchain_data",
            reads=(),
            profile="io-small",
            task_id="load_onchain_btc",
            pool="blockchain_info",
            description="BTC daily on-chain totals from blockchain.info charts",
        ),
        Step(
            name="onchain_eth",
            run_ref="cryptoetl.loaders.onchain:run_onchain_eth",
            writes="crypto_onchain_data",
            reads=(),
            profile="io-small",
            task_id="load_onchain_eth",
            pool="etherscan",
            description="ETH daily on-chain totals from the Etherscan v2 API",
        ),
        Step(
            name="news_guardian",
            run_ref="cryptoetl.loaders.news:run_news_guardian",
            writes="crypto_news",
            reads=(),
            profile="io-small",
            task_id="load_news_guardian",
            pool="guardian",
            description="Guardian Open Platform articles published in the interval",
        ),
        Step(
            name="news_cryptopanic",
            run_ref="cryptoetl.loaders.news:run_news_cryptopanic",
            writes="crypto_news",
            reads=(),
            profile="io-small",
            task_id="load_news_cryptopanic",
            pool="cryptopanic",
            description="CryptoPanic posts published in the interval",
        ),
        Step(
            name="news_rss",
            run_ref="cryptoetl.loaders.news:run_news_rss",
            writes="crypto_news",
            reads=(),
            profile="io-small",
            task_id="load_news_rss",
            backfillable=False,
            description="Latest items of the RSS feeds (CoinDesk, Cointelegraph); cannot backfill",
        ),
    )
}


def get_step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise ConfigError(f"unknown step {name!r}; known steps: {', '.join(STEPS)}") from None
