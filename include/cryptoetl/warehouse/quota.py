"""API quotas shared by every process: call slots per source (the per-minute limit) and calls per
month (the monthly budget), kept in the warehouse because it is the one store every task pod and
local subprocess already shares.

``WarehouseLimiter.reserve`` books a source's next call slot in one short transaction: the row of
``api_rate`` is updated first (so concurrent bookers queue on its lock, on MySQL and SQLite alike),
then read back. Two tasks of the ``coingecko`` pool therefore call at the plan's rate together, not
each at it. Each booking also counts one call in ``api_calls`` for the month, the figure that
``check_budget`` compares with the budget before a run spends anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, case, insert, literal, select, update

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.retry import retry_transient
from cryptoetl.warehouse.writes import insert_if_absent

rate_t, calls_t = schema.api_rate, schema.api_calls


class BudgetExceeded(RuntimeError):
    """A run would spend more calls than are left of the source's monthly budget."""


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


class WarehouseLimiter:
    """``sources.http.CallLimiter`` over the warehouse (see the module docstring)."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine, self.clock = engine, clock
        self._known: set[tuple[str, str]] = set()  # (source, month) whose rows exist

    def reserve(self, source: str, min_interval: float) -> float:
        month = month_of(self.clock())
        if (source, month) not in self._known:  # rows updated below; inserted first, each in its own transaction
            insert_if_absent(self.engine, rate_t, {"source": source, "next_call_at": 0.0})
            insert_if_absent(self.engine, calls_t, {"source": source, "month": month, "calls": 0})
            self._known.add((source, month))

        def book() -> float:
            now = self.clock()
            with self.engine.begin() as conn:
                conn.execute(update(rate_t).where(rate_t.c.source == source)
                             .values(next_call_at=_later_of(now) + min_interval))
                next_at = conn.execute(select(rate_t.c.next_call_at).where(rate_t.c.source == source)).scalar_one()
                _count(conn, source, month_of(now))
            return max(next_at - min_interval - now, 0.0)

        return retry_transient(book, what=f"{source} call slot")

    def hold(self, source: str, seconds: float) -> None:
        def write() -> None:
            until = self.clock() + seconds
            with self.engine.begin() as conn:
                conn.execute(update(rate_t).where(rate_t.c.source == source).values(next_call_at=_later_of(until)))

        retry_transient(write, what=f"{source} hold")


def _later_of(ts: float):
    """SQL: the later of the source's next free slot and ``ts``."""
    return case((rate_t.c.next_call_at > ts, rate_t.c.next_call_at), else_=literal(ts))


def _count(conn, source: str, month: str) -> None:
    counted = conn.execute(update(calls_t).where(calls_t.c.source == source, calls_t.c.month == month)
                           .values(calls=calls_t.c.calls + 1)).rowcount
    if not counted:  # the month turned since the row was made: under the api_rate row's lock, no race
        conn.execute(insert(calls_t).values(source=source, month=month, calls=1))


def calls_this_month(engine: Engine, source: str, now: float) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(calls_t.c.calls).where(calls_t.c.source == source,
                                                            calls_t.c.month == month_of(now))).scalar()
    return int(value or 0)


def overrun(engine: Engine, source: str, needed: int, budget: int | None, now: float) -> tuple[int, int]:
    """(calls spent this month, how many more than ``budget`` spending ``needed`` would make: 0 if none)."""
    spent = calls_this_month(engine, source, now)
    return spent, (max(spent + needed - budget, 0) if budget is not None and needed else 0)


def check_budget(engine: Engine, source: str, needed: int, budget: int | None, now: float,
                 *, setting: str, what: str) -> None:
    """Raise ``BudgetExceeded``, before any call, when ``needed`` more calls would pass ``budget``
    this month. The message gives the numbers and the setting that raises the budget."""
    spent, over = overrun(engine, source, needed, budget, now)
    if over:
        raise BudgetExceeded(
            f"{source}: {what} needs {needed:,} calls, and {spent:,} of the {budget:,}-call monthly budget "
            f"({setting}) are spent in {month_of(now)}: {over:,} too many. Nothing was "
            f"called. Raise {setting} if the plan allows it, or load a shorter range")
