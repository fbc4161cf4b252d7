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

Every source and derived DAG is load -> check: the second task is the quality gate
(``python -m cryptoetl check``, quality/checks.py) over the same intervals, and it is the one that
emits the table's asset event, so nothing downstream starts on an interval that failed it. Each DAG
with a schedule also carries a deadline alert (``deadline``): a run still unfinished
``DEADLINE_GRACE`` after its data interval ended calls ``cryptoetl.airflow.alerts.run_late`` in the
triggerer, which logs an error and posts to ``CRYPTOETL_ALERT_WEBHOOK`` when one is set (a backfill
or catch-up run, created after its deadline, is late by design: it is logged, not alerted).
The ``data_health`` DAG (``health_dag``) runs hourly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
)
from croniter import croniter

from cryptoetl.airflow.operators import step_task, table_asset
from cryptoetl.config import Settings
from cryptoetl.sources import registry
from cryptoetl.steps import get_step

OWNER = "data-platform"
# A run unfinished this long after its data interval ended raises the deadline alert.
DEADLINE_GRACE = timedelta(hours=3)
CHECK_RETRIES = 1  # the gate's verdict does not change on a retry; one covers a database hiccup


def deadline(dag_id: str, cron: str | None) -> list[DeadlineAlert] | None:
    """The deadline alert of a DAG on ``cron``: its run must be done ``DEADLINE_GRACE`` after its data
    interval ends, i.e. its logical date (the interval's start) + the cron's period + the grace.
    Not DAGRUN_QUEUED_AT: clearing a run with such a deadline fails on Airflow 3.3 (apache/airflow#70368),
    and clearing is what backfills with --reprocess-behavior do."""
    if cron is None:
        return None
    first = croniter(cron, datetime(2026, 1, 1)).get_next(datetime)
    period = croniter(cron, first).get_next(datetime) - first
    return [DeadlineAlert(reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=period + DEADLINE_GRACE,
                          callback=AsyncCallback("cryptoetl.airflow.alerts.run_late",
                                                 kwargs={"dag_id": dag_id, "grace": str(DEADLINE_GRACE)}))]


def load_and_check(step_name: str, settings: Settings) -> None:
    """The step's task, then its quality gate, which emits the asset event."""
    load = step_task(step_name, settings=settings, emits=False)
    load >> step_task(step_name, settings=settings, verb="check", retries=CHECK_RETRIES)


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
        deadline=deadline(step.dag_id, cron),
    ) as dag:
        load_and_check(step.name, settings)
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
        deadline=deadline(spec.dag_id, cron),
    ) as dag:
        load_and_check(step, settings)
    return dag


def health_dag(*, cron: str, doc_md: str, settings: Settings | None = None) -> DAG:
    """The data_health DAG: the ``health`` step every hour, no catch-up (it scans days, not its hour)."""
    settings = settings or Settings.from_env()
    spec = get_step("health")
    with DAG(
        dag_id=spec.dag_id,
        schedule=CronDataIntervalTimetable(cron, timezone="UTC"),
        start_date=settings.start_date,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(),
        tags=["cryptoetl", "health"],
        doc_md=doc_md,
        deadline=deadline(spec.dag_id, cron),
    ) as dag:
        step_task(spec.name, settings=settings, retries=1)
    return dag
