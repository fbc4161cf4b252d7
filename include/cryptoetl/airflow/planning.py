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
  rebuilds just its own interval;
- a rebuild of history work also records what it covered and when its task started
  (``cryptoetl_rebuilt__<dag_id>``): a history event sent before that start (by ``CLOCK_SKEW``), for
  hours inside it, was already read by it (the data is committed before its event is sent, and the
  task reads after it starts), so a later run drops it instead of rebuilding those hours again. At
  320 coins x 14 days, the last daily price run's event arrived 4 s before the one rebuild of the
  load started, and queued a second technical run of two days and 1.8 s (1.27x one run over the
  range, instead of at most 1.2x).

The planning itself (``plan``) is a pure function of intervals; the Airflow side (events, Variable,
run counts) is the rest of this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
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
REBUILT_VARIABLE = "cryptoetl_rebuilt__{dag_id}"
# A task's start is stamped by its worker, an asset event by the API server: an event counts as sent
# before a rebuild only if it was sent this much before its start (NTP keeps hosts within milliseconds).
CLOCK_SKEW = timedelta(seconds=2)
# In a run's log line when it covers intervals of a history load (``make bench-pipeline`` reads it).
HISTORY_MARK = "of a history load:"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a derived run does: ``run`` now (of which ``history`` stems from history loads, and is
    marked so in this run's own event), and what is left ``pending`` for a later run."""

    run: list[Interval]
    history: list[Interval]
    pending: list[Interval]
    keeps_pending: bool = True  # this run reads and writes the pending work (not a backfill of the DAG)
    started: datetime | None = None  # when this run's task started (the worker's clock)


@dataclass(frozen=True)
class Rebuilt:
    """The last rebuild of history work: its intervals, and when its task started (``as_of``)."""

    as_of: datetime
    intervals: list[Interval]

    def covers(self, interval: Interval, sent_at: datetime | None) -> bool:
        """Whether an event's (extended) ``interval``, sent at ``sent_at``, needs no rebuild: it was sent
        before this rebuild started (by ``CLOCK_SKEW`` at least), so its data was committed and read, and
        every hour of it up to that start lies in one interval rebuilt (later hours have no data yet:
        their own events come)."""
        if sent_at is None or sent_at >= self.as_of - CLOCK_SKEW or interval.start >= self.as_of:
            return False
        end = min(interval.end, self.as_of)
        return any(iv.start <= interval.start and end <= iv.end for iv in self.intervals)


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


def split_events(events: Mapping[Any, Iterable[Any]], step: Step, rebuilt: Rebuilt | None = None,
                 ) -> tuple[list[Interval], list[Interval], dict[str, set[str]]]:
    """The triggering events' intervals, each extended by the step's lookahead for its input: (from
    regular runs, from history loads, {source DAG: its run ids}). History intervals that ``rebuilt``
    covers are left out (logged)."""
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
                sent_at = getattr(event, "timestamp", None)
                if text in marked and rebuilt is not None and rebuilt.covers(interval, sent_at):
                    log.info("%s: %s (of a history load) was rebuilt by the run that started at %s: skipped",
                             step.name, interval, rebuilt.as_of.isoformat())
                    continue
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


def read_rebuilt(step: Step) -> Rebuilt | None:
    from airflow.sdk import Variable

    raw = Variable.get(REBUILT_VARIABLE.format(dag_id=step.dag_id), default=None)
    if not raw:
        return None
    record = json.loads(raw)
    return Rebuilt(datetime.fromisoformat(record["as_of"]), [parse_interval(text) for text in record["intervals"]])


def write_rebuilt(step: Step, rebuilt: Rebuilt) -> None:
    from airflow.sdk import Variable

    Variable.set(REBUILT_VARIABLE.format(dag_id=step.dag_id),
                 json.dumps({"as_of": rebuilt.as_of.isoformat(), "intervals": [str(iv) for iv in rebuilt.intervals]}),
                 description=f"{step.dag_id}: the last rebuild of a history load's work and when it started "
                             "(cryptoetl planning: events sent before it, inside it, need no rebuild)")


def plan_run(context: Mapping[str, Any], step: Step, timed: list[Interval] | None) -> Plan:
    """The plan of this derived run. ``timed``: a timed or backfill run's own interval (None for an
    asset-triggered run). Writes the pending work before anything is rebuilt (see the module docstring)."""
    if timed is not None and is_history_run(context):  # a backfill of this DAG: its own interval only
        return Plan(run=timed, history=timed, pending=[], keeps_pending=False)
    if timed is not None:
        now, history, sources = timed, [], {}
    else:
        now, history, sources = split_events(context.get("triggering_asset_events") or {}, step, read_rebuilt(step))
    pending = read_pending(step)
    ti = context.get("ti")
    result = plan(now, history, pending,
                  lambda: timed is None and upstream_busy(ti, step, sources))
    write_pending(step, [*result.pending, *result.run])
    return replace(result, started=getattr(ti, "start_date", None))


def finish(step: Step, result: Plan) -> None:
    """After the rebuild succeeded: only the work held back stays pending; a rebuild of history work
    records what it covered (``Rebuilt``)."""
    if result.keeps_pending:
        write_pending(step, result.pending)
        if result.history and result.started is not None:
            write_rebuilt(step, Rebuilt(result.started, merge(result.run)))
