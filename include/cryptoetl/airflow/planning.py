"""Derived work planned by range: a history load triggers one rebuild of what it changed, not one per run.

A derived step (indicators, sentiment, features) runs on its inputs' asset events, each interval
extended by the step's lookahead (720 h for indicators, up to 120 days for features). A backfill
of 14 daily price runs used to trigger 8 indicator runs of 31-36 days each, and each of those a
features run: the same hours rebuilt many times. Here the intervals of a **history load** (a
backfill run, or a catch-up run of an interval that ended more than ``CATCHUP_AFTER`` ago; the
source marks them in its event's ``extra["history"]``) are not rebuilt while the load goes on:

- a run whose history intervals arrive while any DAG upstream of the step (transitively: features
  waits for the prices behind the indicators too) still has a queued or running run, other than
  the runs that sent this run's events, adds them to the step's **pending** work and rebuilds only
  the rest (a scheduled hour's increment is never held back); with nothing else to do, the run is
  skipped, and its gate with it, so no event is sent on;
- the first run that finds its upstream quiet rebuilds its own intervals and all pending work, merged:
  one rebuild of the union. A timed run (the daily cron) always does, so nothing waits longer than a day;
- the pending work is an Airflow Variable per DAG (``cryptoetl_pending__<dag_id>``, visible in the UI
  under Admin > Variables), written before the rebuild and cleared after it succeeds: a failed
  rebuild leaves its intervals for the next run. Only the DAG's own asset-triggered and timed runs
  read or write it, one at a time (``max_active_runs=1``); a backfill of the derived DAG itself
  rebuilds just its own interval.

The planning itself (``plan``) is a pure function of intervals; the Airflow side (events, Variable,
run counts) is the rest of this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval, covering_hours, make_interval, merge, parse_interval
from cryptoetl.step import Step
from cryptoetl.steps import steps

# A scheduled run of an interval that ended longer ago than this is a catch-up: history, not news.
CATCHUP_AFTER = timedelta(hours=2)
ACTIVE_STATES = ["queued", "running"]
VARIABLE = "cryptoetl_pending__{dag_id}"
# In a run's log line when it covers intervals of a history load (``make bench-pipeline`` reads it).
HISTORY_MARK = "of a history load:"


@dataclass(frozen=True)
class Plan:
    """What a derived run does: ``run`` now (of which ``history`` stems from history loads, and is
    marked so in this run's own event), and what is left ``pending`` for a later run."""

    run: list[Interval]
    history: list[Interval]
    pending: list[Interval]
    keeps_pending: bool = True  # this run reads and writes the pending work (not a backfill of the DAG)


def plan(now: Iterable[Interval], history: Iterable[Interval], pending: Iterable[Interval],
         upstream_busy: Callable[[], bool]) -> Plan:
    """Rebuild ``now``; rebuild ``history`` and the ``pending`` work too unless the upstream is busy
    (asked only when there is history or pending work), in which case they wait."""
    now, history, pending = merge(now), merge(history), merge(pending)
    waiting = merge([*history, *pending])
    if waiting and upstream_busy():
        return Plan(run=now, history=[], pending=waiting)
    return Plan(run=merge([*now, *waiting]), history=waiting, pending=[])


def is_history_run(context: Mapping[str, Any]) -> bool:
    """A backfill run, or a run of an interval that ended more than ``CATCHUP_AFTER`` before it started."""
    dag_run = context.get("dag_run")
    if getattr(dag_run, "run_type", None) == "backfill" or \
            str(getattr(dag_run, "run_id", "")).startswith("backfill__"):
        return True
    end = context.get("data_interval_end")
    started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
    return isinstance(end, datetime) and end + CATCHUP_AFTER < started


def split_events(events: Mapping[Any, Iterable[Any]], step: Step,
                 ) -> tuple[list[Interval], list[Interval], dict[str, set[str]]]:
    """The triggering events' intervals, each extended by the step's lookahead for its input: (from
    regular runs, from history loads, {source DAG: its run ids})."""
    now: list[Interval] = []
    history: list[Interval] = []
    sources: dict[str, set[str]] = {}
    for key, asset_events in events.items():
        for event in asset_events:
            table = getattr(getattr(event, "asset", None), "name", None) or getattr(key, "name", key)
            hours = step.lookahead_for(table)
            extra = getattr(event, "extra", None) or {}
            if "intervals" not in extra:
                source = getattr(event, "source_dag_id", None) or "an external producer"
                raise ConfigError(
                    f"asset event from {source} carries no extra['intervals']; cannot tell which data "
                    'changed. Create asset events with extra {"intervals": ["START/END", ...]}')
            marked = {str(text) for text in extra.get("history") or ()}
            for text in extra["intervals"]:
                interval = parse_interval(text).extended(hours)
                (history if text in marked else now).append(interval)
            if getattr(event, "source_dag_id", None):
                sources.setdefault(event.source_dag_id, set()).add(getattr(event, "source_run_id", None) or "")
    return now, history, sources


def resolve_intervals(context: Mapping[str, Any], step: Step) -> list[Interval]:
    """The intervals this run covers (operators.py's docstring); a derived load then plans them (``plan_run``)."""
    events = context.get("triggering_asset_events") or {}
    now, history, _sources = split_events(events, step)
    if now or history:
        return merge([*now, *history])
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if step.triggered_by:  # derived: a timed run off the hour covers the whole hours around it
        return [covering_hours(start, end, step.name)]
    if start is not None and start == end:  # Airflow's NullTimetable gives a manual run an empty interval
        raise ConfigError(f"{step.name}: this run's data interval is empty ({start}): its DAG has no schedule (an "
                          "hourly twin that the plan's quota turned off), so a run has no hours to load. Run or "
                          "backfill the daily DAG instead")
    return [make_interval(start, end, step.name)]


@cache
def upstream_dags(step_name: str) -> tuple[str, ...]:
    """Every DAG that writes an input of ``step_name``, and the DAGs upstream of those."""
    registry = steps()
    found: list[str] = []
    for table in registry[step_name].triggered_by:
        for producer in registry.values():
            if producer.writes == table:
                found += [producer.dag_id, *upstream_dags(producer.name)]
    return tuple(sorted(set(found)))


def upstream_busy(ti: Any, step: Step, own_runs: Mapping[str, set[str]]) -> bool:
    """Whether a DAG upstream of ``step`` has a queued or running run besides those in ``own_runs``
    (the runs whose events triggered this one: they may still be finishing)."""
    for dag_id in upstream_dags(step.name):
        active = ti.get_dr_count(dag_id=dag_id, states=ACTIVE_STATES)
        mine = sorted(own_runs.get(dag_id, ()))
        if mine:
            active -= ti.get_dr_count(dag_id=dag_id, run_ids=mine, states=ACTIVE_STATES)
        if active > 0:
            return True
    return False


def _variable_key(step: Step) -> str:
    return VARIABLE.format(dag_id=step.dag_id)


def read_pending(step: Step) -> list[Interval]:
    from airflow.sdk import Variable

    raw = Variable.get(_variable_key(step), default=None)
    return [parse_interval(text) for text in json.loads(raw)] if raw else []


def write_pending(step: Step, intervals: Iterable[Interval]) -> None:
    from airflow.sdk import Variable

    Variable.set(_variable_key(step), json.dumps([str(iv) for iv in merge(intervals)]),
                 description=f"{step.dag_id}: derived work held back during a history load (cryptoetl planning)")


def plan_run(context: Mapping[str, Any], step: Step, timed: list[Interval] | None) -> Plan:
    """The plan of this derived run. ``timed``: a timed or backfill run's own interval (None for an
    asset-triggered run). Writes the pending work before anything is rebuilt (see the module docstring)."""
    if timed is not None and is_history_run(context):  # a backfill of this DAG: its own interval only
        return Plan(run=timed, history=timed, pending=[], keeps_pending=False)
    if timed is not None:
        now, history, sources = timed, [], {}
    else:
        now, history, sources = split_events(context.get("triggering_asset_events") or {}, step)
    pending = read_pending(step)
    ti = context.get("ti")
    result = plan(now, history, pending,
                  lambda: timed is None and upstream_busy(ti, step, sources))
    write_pending(step, [*result.pending, *result.run])
    return result


def finish(step: Step, result: Plan) -> None:
    """After the rebuild succeeded: only the work held back stays pending."""
    if result.keeps_pending:
        write_pending(step, result.pending)
