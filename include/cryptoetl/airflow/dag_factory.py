"""Build the DAGs. A DAG file names its step, its cron and its docs; everything else is here.

The DAG id, task, pool, profile and assets come from the step registry (``steps.py``, which takes
the source steps from the source specs). Two kinds of DAG:

- **source** DAGs (prices, macro, on-chain, news) run on ``CronDataIntervalTimetable`` with
  ``catchup=True``: every [start, end) since ``CRYPTOETL_START_DATE`` is loaded once, and
  ``airflow backfill create`` reloads any range.
- **derived** DAGs (technical indicators, ml_features) run on ``AssetOrTimeSchedule``: the
  upstream table's asset events trigger a rebuild of exactly the intervals that changed
  (including when the upstream is re-run or backfilled), and a daily cron run is kept so
  the DAG stays backfillable on its own (e.g. after an indicator code change). Their
  ``catchup`` is False on purpose: their history is driven by the upstream's events, and a
  catch-up of their own would race ahead of inputs that are not loaded yet.

``max_active_runs=1`` on derived DAGs: two runs over overlapping intervals must not commit
out of order, or an older computation could overwrite a newer one.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronDataIntervalTimetable

from cryptoetl.airflow.operators import step_task, table_asset
from cryptoetl.config import Settings
from cryptoetl.sources import registry
from cryptoetl.steps import get_step

OWNER = "data-platform"


def _default_args() -> dict:
    return {"owner": OWNER, "depends_on_past": False, "execution_timeout": timedelta(hours=2)}


def source_dag(*, source: str, cron: str | None, doc_md: str, step: str | None = None, max_active_runs: int = 4,
               settings: Settings | None = None) -> DAG:
    """The DAG of a source's step (``sources/<source>.py``; its main step unless ``step`` names another
    of its ``steps``). A step that only serves the latest state (``backfillable`` False, e.g. RSS)
    gets ``catchup=False`` and ``max_active_runs=1``: catching up would only load today's items into
    yesterday's runs. ``cron`` None: no schedule
    (an hourly twin the quota turned off: its runs would have no data interval, and say so). A bad setting of the
    source fails here, at parse time, with its name (a missing key does not: it fails the task when
    it runs)."""
    settings = settings or Settings.from_env()
    spec = registry.get(source)
    spec.resolve(settings)
    step = get_step(step or spec.main_step)
    if step.source != spec.name:
        raise ValueError(f"step {step.name!r} does not call the source {source!r}")
    with DAG(
        dag_id=step.dag_id,
        schedule=CronDataIntervalTimetable(cron, timezone="UTC") if cron else None,
        start_date=settings.start_date,
        catchup=step.backfillable,
        max_active_runs=max_active_runs if step.backfillable else 1,
        default_args=_default_args(),
        tags=["cryptoetl", "source", step.name] + ([] if step.backfillable else ["no-backfill"]),
        doc_md=doc_md,
    ) as dag:
        step_task(step.name, settings=settings)
    return dag


def derived_dag(*, step: str, cron: str, doc_md: str, settings: Settings | None = None) -> DAG:
    """The DAG of a derived step: its asset triggers, or its daily cron."""
    settings = settings or Settings.from_env()
    spec = get_step(step)
    triggers = [table_asset(table) for table in spec.triggered_by]
    condition = triggers[0]
    for asset in triggers[1:]:
        condition = condition | asset
    with DAG(
        dag_id=spec.dag_id,
        schedule=AssetOrTimeSchedule(
            timetable=CronDataIntervalTimetable(cron, timezone="UTC"), assets=condition
        ),
        start_date=settings.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
        tags=["cryptoetl", "derived", step],
        doc_md=doc_md,
    ) as dag:
        step_task(step, settings=settings)
    return dag
