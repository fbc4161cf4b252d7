"""Where the quality gate's results and the health check's actions are kept (``schema/quality.py``).

``record_results`` replaces the results of a table for one checked interval: the results of every
interval inside it go (a daily check supersedes the hourly ones it covers), then the new ones are
inserted, in one transaction. ``bad_ranges`` is what the features step asks before it builds: the
intervals of its inputs whose latest check failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, delete, insert, select

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.retry import retry_transient

# The inputs of ml_features_materialized whose bad intervals it is not built on.
FEATURE_INPUTS = (schema.price_data_real.name, schema.technical_indicators.name)


@dataclass(frozen=True)
class Result:
    """One check's outcome over one interval. ``severity`` "fail" (a hard check) or "warn"."""

    check: str
    severity: str
    ok: bool
    observed: float | None = None
    threshold: float | None = None
    detail: str = ""

    @property
    def status(self) -> str:
        return "pass" if self.ok else self.severity


def _naive(ts: datetime) -> datetime:
    return to_naive_utc(ts)


def record_results(engine: Engine, table: str, start: datetime, end: datetime, results: Sequence[Result],
                   now: datetime) -> None:
    """Replace ``table``'s results for [start, end) and every interval inside it with ``results``."""
    q = schema.data_quality_results
    lo, hi = _naive(start), _naive(end)
    rows = [{"table_name": table, "check_name": r.check, "interval_start": lo, "interval_end": hi,
             "status": r.status, "severity": r.severity, "observed": r.observed, "threshold": r.threshold,
             "detail": r.detail[:1024], "checked_at": _naive(now)} for r in results]

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(delete(q).where(q.c.table_name == table, q.c.interval_start >= lo, q.c.interval_end <= hi))
            if rows:
                conn.execute(insert(q), rows)

    retry_transient(write, what=f"data_quality_results {table} [{lo}, {hi})")


def bad_ranges(conn: Connection | Engine, tables: Iterable[str], start: datetime, end: datetime) -> list[
        tuple[str, datetime, datetime, str]]:
    """(table, start, end, failed checks) of every interval of ``tables`` overlapping [start, end) whose
    latest check failed; aware UTC times, in time order."""
    q = schema.data_quality_results
    lo, hi = _naive(start), _naive(end)
    stmt = (select(q.c.table_name, q.c.interval_start, q.c.interval_end, q.c.check_name)
            .where(q.c.table_name.in_(list(tables)), q.c.status == "fail",
                   and_(q.c.interval_start < hi, q.c.interval_end > lo))
            .order_by(q.c.interval_start, q.c.table_name, q.c.check_name))
    if isinstance(conn, Engine):
        with conn.connect() as db:
            found = db.execute(stmt).all()
    else:
        found = conn.execute(stmt).all()
    merged: dict[tuple[str, datetime, datetime], list[str]] = {}
    for table, s, e, check in found:
        merged.setdefault((table, s, e), []).append(check)
    return [(table, s.replace(tzinfo=UTC), e.replace(tzinfo=UTC), ", ".join(checks))
            for (table, s, e), checks in merged.items()]


def latest_results(engine: Engine, limit: int = 50, *, status: str | None = None) -> list[dict]:
    """The most recently checked results (newest first), optionally only one status."""
    q = schema.data_quality_results
    stmt = select(q).order_by(q.c.checked_at.desc(), q.c.table_name, q.c.check_name).limit(limit)
    if status is not None:
        stmt = stmt.where(q.c.status == status)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def record_action(conn: Connection, *, now: datetime, dag_id: str, table: str, start: datetime, end: datetime,
                  action: str, backfill_id: int | None = None, detail: str = "") -> None:
    conn.execute(insert(schema.data_health_actions).values(
        created_at=_naive(now), dag_id=dag_id, table_name=table, interval_start=_naive(start),
        interval_end=_naive(end), action=action, backfill_id=backfill_id, detail=detail[:1024]))


def actions(conn: Connection | Engine, *, since: datetime | None = None, limit: int | None = None) -> list[dict]:
    """Health actions, newest first; times aware UTC."""
    a = schema.data_health_actions
    stmt = select(a).order_by(a.c.created_at.desc(), a.c.id.desc())
    if since is not None:
        stmt = stmt.where(a.c.interval_end > _naive(since))
    if limit is not None:
        stmt = stmt.limit(limit)
    if isinstance(conn, Engine):
        with conn.connect() as db:
            rows = db.execute(stmt).all()
    else:
        rows = conn.execute(stmt).all()
    out = []
    for row in rows:
        item = dict(row._mapping)
        for key in ("created_at", "interval_start", "interval_end"):
            item[key] = item[key].replace(tzinfo=UTC)
        out.append(item)
    return out
