"""The step registry: every step by name. Only data: what runs, what it writes, how it is launched.

Source steps come from the source specs (``sources/<name>.py``, one ``SPEC`` each); the derived
steps (indicators, sentiment, features) are declared here. Each step names its function as a
``"module:function"`` reference, imported only when the step runs, so reading the registry at DAG
parse time imports no loader, pandas or torch. The step API itself is in ``step.py``.
"""

from __future__ import annotations

from cryptoetl.config import ConfigError, Settings
from cryptoetl.sources import registry
from cryptoetl.sources.spec import SourceSpec
from cryptoetl.step import Step, StepOption

DERIVED: tuple[Step, ...] = (
    Step(
        name="technical",
        run="cryptoetl.loaders.technical:run_technical",
        writes="technical_indicators",
        triggered_by=("price_data_real",),
        profile="compute-medium",
        task_id="compute_technical_indicators",
        dag_id="technical_indicators",
        # A price change moves the recursive indicators over the warm-up that follows it; beyond
        # the DEFAULT warm-up (720 h) the change is below 1e-24. A larger CRYPTOETL_WARMUP_HOURS
        # does not widen this: past 720 h the change is already invisible at double precision.
        lookahead=Settings.warmup_hours,
        description="SMA 20/50, EMA 12/26, RSI 14, MACD, Bollinger 20/2 with the `ta` library",
    ),
    Step(
        name="sentiment",
        run="cryptoetl.loaders.sentiment:run_sentiment",
        writes="crypto_sentiment_data",
        triggered_by=("crypto_news",),
        profile="sentiment",
        task_id="score_news_sentiment",
        dag_id="news_sentiment",
        image="sentiment",
        options=(StepOption("rescore", "score articles again even if this model revision scored them "
                                       "(= CRYPTOETL_SENTIMENT_RESCORE=1)"),),
        description="Score news with CryptoBERT (crypto) and FinBERT (general), once per model revision",
    ),
    Step(
        name="features",
        run="cryptoetl.loaders.features:run_features",
        writes="ml_features_materialized",
        # prices arrive through technical_indicators; news through its sentiment scores
        triggered_by=("technical_indicators", "macro_indicators", "crypto_onchain_data", "crypto_sentiment_data"),
        profile="compute-medium",
        task_id="build_ml_features",
        dag_id="ml_features",
        # each input's own reach, defined by the feature family that uses it
        lookahead="cryptoetl.warehouse.features:LOOKAHEAD_HOURS",
        description="Rebuild ml_features_materialized: one row per symbol per hour, point in time",
    ),
)


# Steps that look after the data rather than load it.
OPERATIONS: tuple[Step, ...] = (
    Step(
        name="health",
        run="cryptoetl.quality.report:run_health",
        writes="data_health_actions",
        profile="io-small",
        task_id="check_data_health",
        dag_id="data_health",
        description="Find the holes and stale tables of the last CRYPTOETL_HEALTH_DAYS days, and backfill the holes "
                    "(quality/health.py, quality/heal.py)",
    ),
)


def source_steps(spec: SourceSpec) -> tuple[Step, ...]:
    """The steps that call a source, as its spec declares them."""
    return tuple(Step(name=s.step, run=s.run, writes=s.writes, profile=s.profile, task_id=s.task_id,
                      dag_id=s.dag_id, description=s.description, source=spec.name,
                      pool=spec.name if spec.pool else None, backfillable=s.backfillable,
                      options=tuple(StepOption(name, help) for name, help in s.options))
                 for s in spec.steps)


def steps() -> dict[str, Step]:
    """Every step by name: the sources' (as registered now), the derived ones, then the operations."""
    out: dict[str, Step] = {}
    for step in (*(step for spec in registry.sources() for step in source_steps(spec)), *DERIVED, *OPERATIONS):
        if step.name in out:
            raise ValueError(f"two steps are named {step.name!r}")
        out[step.name] = step
    return out


def get_step(name: str) -> Step:
    try:
        return steps()[name]
    except KeyError:
        raise ConfigError(f"unknown step {name!r}; known steps: {', '.join(steps())}") from None
