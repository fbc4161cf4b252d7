"""The features step: rebuild ``ml_features_materialized`` for an interval inside the warehouse."""

from __future__ import annotations

import logging

from cryptoetl.intervals import Interval
from cryptoetl.loaders.macro import feature_series
from cryptoetl.loaders.universe import coins_for
from cryptoetl.step import StepContext
from cryptoetl.warehouse import features, quality

log = logging.getLogger(__name__)


def run_features(ctx: StepContext, interval: Interval) -> int:
    """DELETE + INSERT ... SELECT of the interval's feature rows, in one transaction; the macro
    columns of a custom series file too. Hours of an input interval that failed its quality gate get
    no rows until it passes (its rerun's asset event rebuilds them)."""
    symbols = [coin.symbol for coin in coins_for(ctx, interval)]
    bad = quality.bad_ranges(ctx.engine, quality.FEATURE_INPUTS, interval.start, interval.end)
    for table, lo, hi, checks in bad:
        log.warning("features: %s [%s, %s) failed its quality gate (%s): no feature rows for those hours",
                    table, lo, hi, checks)
    return features.rebuild(ctx.engine, interval.start, interval.end, symbols,
                            feature_series(ctx.settings.macro_series_file),
                            exclude=[(lo, hi) for _t, lo, hi, _c in bad])
