"""Watching ``make run``'s pipeline settle, and explaining a task that failed.

A task that goes ``up_for_retry`` is not fatal: on a loaded machine a try can fail for reasons
that a retry cures (seen: an ``httpx.ReadTimeout`` on Airflow's execution API). The runner says so,
with the cause, and keeps waiting. Only a failed task instance (its retries used up) or a failed
DAG run stops it, and then it prints the cause from wherever it was logged: the try's own log
file, else ``standalone.log`` (where a failure before the task started, e.g. in the supervisor,
ends up; the try's log then holds only "Pre Execute").

``watch`` holds the logic and takes a ``poll`` function, so it is tested with fake snapshots;
``snapshot`` is the real poll, through Airflow's ORM (read only).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

CAUSE_LINES = 8
_ERROR = re.compile(r"error|exception|traceback|timeout|failed|refus", re.IGNORECASE)


@dataclass(frozen=True)
class TaskTry:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    state: str

    def __str__(self) -> str:
        return f"{self.dag_id} / {self.run_id} / {self.task_id} (try {self.try_number}): {self.state}"


@dataclass
class Snapshot:
    backfill_open: int = 0
    queued_triggers: int = 0
    states: dict[str, dict[str, int]] = field(default_factory=dict)  # dag_id -> run state -> count
    tries: list[TaskTry] = field(default_factory=list)  # failed or up_for_retry task instances

    @property
    def active(self) -> int:
        return sum(n for s in self.states.values() for k, n in s.items() if k in ("queued", "running"))

    @property
    def settled(self) -> bool:
        return not self.backfill_open and not self.queued_triggers and self.active == 0

    def summary(self) -> str:
        return "  ".join(f"{d}: " + (",".join(f"{k}={v}" for k, v in sorted(s.items())) or "-")
                         for d, s in self.states.items())


def watch(poll: Callable[[], Snapshot], *, timeout: float, explain: Callable[[TaskTry], str],
          report: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, quiet_polls: int = 3,
          fatal: bool = True) -> dict[str, dict[str, int]]:
    """Poll until settled for ``quiet_polls`` polls in a row (asset events can land between two
    polls); returns the run states. Retries are reported once each; a failure raises SystemExit, unless
    not ``fatal`` (the incident scenario, where runs are meant to fail): then it is reported once."""
    deadline = clock() + timeout
    quiet, last, told = 0, None, set()
    while clock() < deadline:
        snap = poll()
        if (summary := snap.summary()) != last:
            report(f"  {datetime.now(UTC):%H:%M:%S} {summary}")
            last = summary
        for task_try in snap.tries:
            if task_try.state == "up_for_retry" and task_try not in told:
                told.add(task_try)
                report(f"· retrying {task_try}; Airflow retries it by itself. Cause:\n{explain(task_try)}")
        failed = [t for t in snap.tries if t.state == "failed"]
        failed_runs = {d: s["failed"] for d, s in snap.states.items() if s.get("failed")}
        if not fatal:
            for task_try in (t for t in failed if t not in told):
                told.add(task_try)
                report(f"· failed (expected in this scenario): {task_try}")
        elif failed or failed_runs:
            causes = "\n".join(f"  {t}\n{explain(t)}" for t in failed) or "  (no failed task: see the runs)"
            raise SystemExit(f"the pipeline failed: {failed_runs or 'a task used up its retries'}\n{causes}")
        quiet = quiet + 1 if snap.settled else 0
        if quiet >= quiet_polls:
            return snap.states
        sleep(3)
    raise SystemExit(f"pipeline did not settle within {timeout:.0f}s")


def explain(task_try: TaskTry, home: Path) -> str:
    """The lines that say why a try failed: from its log, else from ``standalone.log``."""
    log = home / "logs" / f"dag_id={task_try.dag_id}" / f"run_id={task_try.run_id}" / \
        f"task_id={task_try.task_id}" / f"attempt={task_try.try_number}.log"
    lines = _error_lines(_log_messages(log)) if log.exists() else []
    where = log
    if not lines:
        standalone = home / "standalone.log"
        if standalone.exists():
            related = [line for line in _tail(standalone, 20_000)
                       if task_try.run_id in line or task_try.task_id in line]
            lines, where = _error_lines(related), standalone
    if not lines:
        return f"    (no error line found; see {log} and {home / 'standalone.log'})"
    return "\n".join(f"    {line[:300]}" for line in lines[-CAUSE_LINES:]) + f"\n    (from {where})"


def _log_messages(path: Path) -> list[str]:
    """A task log's lines as text; Airflow 3 writes JSON lines (``event``, ``level``, ``error_detail``)."""
    out = []
    for raw in _tail(path, 5_000):
        try:
            record = json.loads(raw)
        except ValueError:
            out.append(raw)
            continue
        if isinstance(record, dict):
            text = f"{record.get('level', '')} {record.get('event', '')}".strip()
            for detail in record.get("error_detail") or []:
                if isinstance(detail, dict):
                    text += f" {detail.get('exc_type', '')}: {detail.get('exc_value', '')}"
            out.append(text)
    return out


def _error_lines(lines: Iterable[str]) -> list[str]:
    return [line.rstrip() for line in lines if _ERROR.search(line)]


def _tail(path: Path, max_lines: int) -> list[str]:
    with path.open(errors="replace") as f:
        return f.readlines()[-max_lines:]


def snapshot(dag_ids: tuple[str, ...], backfill_dags: tuple[str, ...], since: datetime) -> Snapshot:
    """The real poll: backfills open, asset triggers queued, run states and failing tries since ``since``."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, or_, select

    with create_session() as session:
        snap = Snapshot(
            backfill_open=session.scalar(select(func.count()).select_from(Backfill).where(
                Backfill.dag_id.in_(backfill_dags), Backfill.completed_at.is_(None))),
            queued_triggers=session.scalar(select(func.count()).select_from(AssetDagRunQueue)),
            states={d: {} for d in dag_ids})
        for dag_id, state, n in session.execute(
                select(DagRun.dag_id, DagRun.state, func.count())
                .where(DagRun.dag_id.in_(dag_ids), or_(DagRun.queued_at >= since,
                                                       DagRun.state.in_(("queued", "running"))))
                .group_by(DagRun.dag_id, DagRun.state)):
            snap.states[dag_id][str(state)] = n
        for row in session.execute(
                select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.try_number,
                       TaskInstance.state)
                .where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.state.in_(("up_for_retry", "failed")),
                       TaskInstance.start_date >= since)):
            snap.tries.append(TaskTry(row.dag_id, row.run_id, row.task_id, int(row.try_number or 1), str(row.state)))
    return snap


def wait_for_dags(dag_ids: tuple[str, ...], timeout: float = 180) -> None:
    """Until every DAG of ``dag_ids`` is parsed and serialized."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            found = set(session.scalars(select(SerializedDagModel.dag_id).where(
                SerializedDagModel.dag_id.in_(dag_ids))))
        if found == set(dag_ids):
            return
        time.sleep(2)
    raise SystemExit(f"DAGs not parsed within {timeout:.0f}s; check `airflow dags list-import-errors`")


def run_first(dag_id: str, *, unpause: Callable[[str], object], trigger: Callable[[str], object],
              timeout: float = 900) -> None:
    """Unpause ``dag_id`` (no catch-up: the scheduler runs its latest interval) and wait until its newest
    run succeeded. A newest run that failed before (an earlier ``make run``) is triggered again, once."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    print(f"· {dag_id} first: the other DAGs load the coins of its snapshot")
    unpause(dag_id)
    retried = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            newest = session.scalars(select(DagRun.state).where(DagRun.dag_id == dag_id)
                                     .order_by(DagRun.id.desc()).limit(1)).first()
        if newest == "success":
            return
        if newest == "failed":
            if retried:
                raise SystemExit(f"{dag_id} failed; its log: make ui, or "
                                 f"{os.environ['AIRFLOW_HOME']}/logs/dag_id={dag_id}")
            print(f"· {dag_id}: its last run failed; triggering it again")
            trigger(dag_id)
            retried = True
        time.sleep(3)
    raise SystemExit(f"{dag_id} did not finish within {timeout:.0f}s")


def cancel_open_backfills(dag_id: str) -> None:
    """A backfill left unfinished by an interrupted demo blocks a new one ("one running backfill
    per DAG"): cancel it as the UI's Cancel button does (pause it, fail its queued runs, mark it
    completed). The new backfill's ``--reprocess-behavior failed`` then re-runs what failed."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    with create_session() as session:
        for backfill in session.scalars(select(Backfill).where(Backfill.dag_id == dag_id,
                                                                Backfill.completed_at.is_(None))):
            print(f"· cancelling unfinished backfill {backfill.id} of {dag_id} (from an earlier run)")
            backfill.is_paused = True
            runs = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == backfill.id)
            session.execute(
                update(DagRun)
                .where(DagRun.id.in_(runs), DagRun.state.in_(("queued", "running")))
                .values(state="failed")
                .execution_options(synchronize_session=False)
            )
            backfill.completed_at = datetime.now(UTC)


def measure_freshness(*, dag_id: str, trigger: Callable[[str], object], settle: Callable[[], None],
                      warehouse: str, home: Path, sleep: Callable[[float], None] = time.sleep) -> float:
    """Once the backlog is done, trigger the intraday prices DAG for the hour that just ended and time it
    until everything it set off (technical indicators, ml_features) has finished: the freshness lag, less
    the scheduler's start delay at the end of the hour. The landing store is first wound back to the
    start of that hour, as the previous hourly run left it, so that the run pays its CoinGecko calls as
    the scheduled run at the hour's end does (the hourly run at unpause has landed that hour already),
    and the hour's price, indicator and feature rows are removed, so the rows counted after are the
    run's own. Printed, and saved to ``home``/freshness.json (``make bench-pipeline`` reports it)."""
    from sqlalchemy import delete, func, select, update

    from cryptoetl.warehouse import schema
    from cryptoetl.warehouse.engine import get_engine

    if datetime.now(UTC).minute >= 58:  # the run must get the hour measured here: not one that starts meanwhile
        sleep(60 * (60 - datetime.now(UTC).minute) + 10)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    engine = get_engine(f"sqlite:///{warehouse}")
    blocks = schema.coingecko_chart_blocks
    start = hour.replace(tzinfo=None)
    with engine.begin() as conn:  # as at the end of the hour: landed up to its start, none of its rows yet
        conn.execute(update(blocks).where(blocks.c.fetched_to > start).values(fetched_to=start))
        for table in (schema.price_data_real, schema.technical_indicators, schema.ml_features_materialized):
            conn.execute(delete(table).where(table.c.time == start))
    began = time.monotonic()
    trigger(dag_id)
    settle()
    lag = time.monotonic() - began
    features = schema.ml_features_materialized
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).where(features.c.time == hour.replace(tzinfo=None))).scalar_one()
    print(f"· freshness: the hour {hour:%H:%M}-{hour + timedelta(hours=1):%H:%M} UTC had {rows} rows in "
          f"ml_features_materialized {lag:.0f} s after {dag_id} was triggered for it (prices, technical "
          "indicators and features through the scheduler)")
    (home / "freshness.json").write_text(json.dumps({"hour": hour.isoformat(), "rows": rows, "lag_s": lag}))
    return lag
