"""The features step: rebuild ``ml_features_materialized`` for an interval inside the warehouse."""

from __future__ import annotations

from cryptoetl.intervals import Interval
from cryptoetl.loaders.macro import feature_series
from cryptoetl.loaders.universe import coins_for
from cryptoetl.step import StepContext
from cryptoetl.warehouse import features


def run_features(ctx: StepContext, interval: Interval) -> int:
    """DELETE + INSERT ... SELECT of the interval's feature rows, in one transaction; the macro
    columns of a custom series file too."""
    symbols = [coin.symbol for coin in coins_for(ctx, interval)]
    return features.rebuild(ctx.engine, interval.start, interval.end, symbols,
                            feature_series(ctx.settings.macro_series_file))
