"""The health report: holes, stale tables and what was done, as a table a person can read; and the
``health`` step that the ``data_health`` DAG runs every hour.

The step scans the ``CRYPTOETL_HEALTH_DAYS`` days up to the end of its interval, prints the report,
creates the backfills that refill the holes (``heal.py``; when ``CRYPTOETL_AIRFLOW_API_URL`` is set)
and fails, red in the grid, when a table is stale or a hole was given up on: the alarm that nobody
has to watch for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptoetl.intervals import Interval
from cryptoetl.quality import heal
from cryptoetl.quality.health import Freshness, Hole, freshness, holes
from cryptoetl.report import table_lines
from cryptoetl.sources import coingecko
from cryptoetl.step import StepContext

log = logging.getLogger(__name__)


class DataHealthAlert(RuntimeError):
    """A table is stale, or a hole cannot be refilled without a person."""


def judge(ctx: StepContext, found: list[Hole], now: datetime) -> list[Hole]:
    """Mark the holes the source can no longer serve (older than the CoinGecko plan reaches)."""
    plan = coingecko.SPEC.resolve(ctx.settings).plan
    out = []
    for hole in found:
        first_point = coingecko.points_needed(hole.start, hole.end)[0]  # an hour before: hour H's point
        if hole.step == "prices" and (why := coingecko.beyond_plan_history(plan, first_point, now)):
            hole = Hole(**{**hole.__dict__, "fillable": False, "why": why})
        out.append(hole)
    return out


def _keys(keys: Iterable[str]) -> str:
    keys = list(keys)
    return "all" if not keys else ", ".join(keys[:6]) + (f" +{len(keys) - 6}" if len(keys) > 6 else "")


def report_lines(found: list[Hole], source_gaps: int, fresh: list[Freshness], now: datetime,
                 decisions: list[heal.Decision] | None = None) -> list[str]:
    lines = ["Freshness:"]
    lines += table_lines([[f.table, f"{f.newest:%Y-%m-%d %H:%M}" if f.newest else "(empty)",
                      f"{f.age_hours(now):.1f} h" if f.newest else "-", f"{f.target_hours:g} h",
                      "STALE" if f.stale(now) else "ok"] for f in fresh],
                    ["table", "newest (UTC)", "age", "target", "status"])
    lines.append("")
    if not found:
        lines.append("Holes: none")
    else:
        what = {d.hole.table + str(d.hole.start): d for d in decisions or []}
        rows = []
        for h in found:
            d = what.get(h.table + str(h.start))
            action = (d.action + (f" #{d.backfill_id}" if d.backfill_id is not None else "")) if d else "-"
            rows.append([h.table, f"{h.start:%Y-%m-%d}", f"{h.end - timedelta(days=1):%Y-%m-%d}",
                         f"{h.missing} {h.unit}", _keys(h.keys), action])
        lines.append(f"Holes: {len(found)}")
        lines += table_lines(rows, ["table", "from", "to", "missing", "keys", "action"])
        lines.append("")
        lines.append("To refill by hand:")
        lines += sorted({f"  {h.command()}" if h.fillable else f"  ({h.table} {h.start:%Y-%m-%d}: {h.why})"
                         for h in found})
    lines.append("")
    lines.append(f"CoinGecko's own gaps (no point to load, never refilled): {source_gaps} coin-hours")
    return lines


def scan(ctx: StepContext, interval: Interval, *, do_heal: bool) -> tuple[list[Hole], list[Freshness],
                                                                        list[heal.Decision]]:
    now = heal.now_utc(ctx)
    found, gaps = holes(ctx, interval.start, interval.end)
    found = judge(ctx, found, now)
    fresh = freshness(ctx.engine, now, ctx.settings.quality_file)
    api = heal.api_from_settings(ctx.settings) if do_heal else None
    decisions = heal.heal(ctx, found, api, now) if do_heal else heal.decide(found, [], {}, now, 0)
    for line in report_lines(found, gaps, fresh, now, decisions if do_heal else None):
        print(line)
    if do_heal and api is None:
        print("\nSelf-healing is off: set CRYPTOETL_AIRFLOW_API_URL (and CRYPTOETL_HEAL_MAX_INTERVALS > 0)")
    return found, fresh, decisions


def run_health(ctx: StepContext, interval: Interval) -> int:
    """The data_health DAG's step: scan the last CRYPTOETL_HEALTH_DAYS days up to the interval's end,
    report, heal; the backfills created. Raises DataHealthAlert for stale tables and given-up holes."""
    end = interval.end
    found, fresh, decisions = scan(ctx, Interval(end - timedelta(days=ctx.settings.health_days), end),
                                   do_heal=True)
    now = heal.now_utc(ctx)
    stale = [f.table for f in fresh if f.stale(now)]
    given_up = [f"{d.hole.table} {d.hole.start:%Y-%m-%d}" + (f" ({d.detail})" if d.action == "error" else "")
                for d in decisions if d.action in ("gave_up", "error")]
    if stale or given_up:
        raise DataHealthAlert("; ".join(filter(None, [stale and f"stale: {', '.join(stale)}",
                                                      given_up and f"needs a person: {', '.join(given_up)}"])))
    return sum(1 for d in decisions if d.action == "backfill" and d.backfill_id is not None)
