"""Data intervals: half-open [start, end) ranges of aware UTC datetimes on hour boundaries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from cryptoetl.config import ConfigError, parse_utc


class Interval(NamedTuple):
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def extended(self, hours: int) -> Interval:
        return Interval(self.start, self.end + timedelta(hours=hours))


def midnight(day: date) -> datetime:
    """00:00 UTC of ``day``, aware."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def make_interval(start: datetime | str | None, end: datetime | str | None, what: str = "interval") -> Interval:
    """Validate an interval. ``None`` or the string "None" (what Airflow renders for a run
    without a data interval) is an error: a task must never fall back to "now"."""
    if start is None or end is None or str(start) in ("", "None") or str(end) in ("", "None"):
        raise ConfigError(
            f"{what}: no data interval (start={start!r}, end={end!r}). Asset-triggered and manual "
            "runs must pass explicit start/end; refusing to guess from the current time"
        )
    lo = start if isinstance(start, datetime) else parse_utc(start, f"{what} start")
    hi = end if isinstance(end, datetime) else parse_utc(end, f"{what} end")
    lo, hi = parse_utc(lo.isoformat(), what), parse_utc(hi.isoformat(), what)
    if lo >= hi:
        raise ConfigError(f"{what}: start {lo.isoformat()} is not before end {hi.isoformat()}")
    for ts in (lo, hi):
        if ts.minute or ts.second or ts.microsecond:
            raise ConfigError(f"{what}: {ts.isoformat()} is not on an hour boundary (tables are hourly)")
    return Interval(lo, hi)


def covering_hours(start: datetime | str | None, end: datetime | str | None, what: str = "interval") -> Interval:
    """The smallest hour-aligned interval that contains [start, end).

    For derived steps, whose rebuilds are idempotent and may safely cover more: their daily
    timed run fires at e.g. 00:30 so that the midnight source runs have landed, and its
    data interval [D-1 00:30, D 00:30) becomes [D-1 00:00, D 01:00).
    """
    if start is None or end is None or str(start) in ("", "None") or str(end) in ("", "None"):
        return make_interval(start, end, what)  # raises the "no data interval" error
    lo = start if isinstance(start, datetime) else parse_utc(start, f"{what} start")
    hi = end if isinstance(end, datetime) else parse_utc(end, f"{what} end")
    lo, hi = parse_utc(lo.isoformat(), what), parse_utc(hi.isoformat(), what)
    floor_lo = lo.replace(minute=0, second=0, microsecond=0)
    floor_hi = hi.replace(minute=0, second=0, microsecond=0)
    ceil_hi = floor_hi if floor_hi == hi else floor_hi + timedelta(hours=1)
    return make_interval(floor_lo, ceil_hi, what)


def parse_interval(text: str) -> Interval:
    """Parse ISO-8601 ``START/END``."""
    parts = text.split("/")
    if len(parts) != 2:
        raise ConfigError(f"--interval {text!r}: expected START/END, e.g. 2026-01-01T00:00Z/2026-01-02T00:00Z")
    return make_interval(parts[0], parts[1], f"--interval {text!r}")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union: overlapping or touching intervals become one."""
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and iv.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, iv.end))
        else:
            merged.append(iv)
    return merged
