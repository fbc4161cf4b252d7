"""The data-health page behind the ``cryptoetl_health`` plugin: a FastAPI app that renders HTML on the
server (Jinja2, ``templates/cryptoetl_health.html``) from the warehouse, read-only. No JavaScript and
nothing fetched from elsewhere (the machine may be offline); every link is relative, so the page
works under the API server's prefix and behind a proxy.

What it shows, for the last ``?days=`` days (default 30):
1. coverage per table x day and per coin x day of one price-family table (``?table=``), from
   ``cryptoetl.quality.coverage``; days of a table with a failed quality check are outlined;
2. the latest quality results, failures first (``warehouse.quality.latest_results``);
3. freshness per table (``quality.health.freshness``);
4. the health check's fill actions (``warehouse.quality.actions``).

``create_app(warehouse, clock)`` takes the warehouse and the clock, so tests serve it on a seeded
SQLite or MariaDB warehouse with a fixed "now". In Airflow the warehouse is the one the tasks use:
``CRYPTOETL_WAREHOUSE_URL``, else the ``cryptoetl_warehouse`` connection (the API server reads it from
the metadata DB). Auth: see ``cryptoetl_health``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_DAYS = 30
MAX_DAYS = 366
DAY_CHOICES = (7, 14, 30, 90)
QUALITY_LIMIT = 50  # failures and warnings each; then the latest passes
PASS_LIMIT = 20
ACTION_LIMIT = 100
STATE_TEXT = {"full": "complete", "partial": "partial", "pending": "pending (not due yet)",
              "empty": "empty", "none": "not expected"}
ICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect x="1" y="1" width="6" height="6" '
        'fill="#1a9850"/><rect x="9" y="1" width="6" height="6" fill="#91cf60"/><rect x="1" y="9" width="6" '
        'height="6" fill="#fee08b"/><rect x="9" y="9" width="6" height="6" fill="#d73027"/></svg>')


@dataclass(frozen=True)
class Warehouse:
    engine: Any  # sqlalchemy Engine
    quality_file: str | None = None


def airflow_warehouse() -> Warehouse:
    """The warehouse the tasks write, resolved as they resolve it (inside the API server)."""
    from cryptoetl.airflow.connection import warehouse_url
    from cryptoetl.config import Settings
    from cryptoetl.warehouse.engine import get_engine

    settings = Settings.from_env()
    return Warehouse(get_engine(warehouse_url(settings)), settings.quality_file)


@cache
def airflow_auth() -> Callable:
    """Airflow's own dependency: a valid JWT (cookie ``_token`` or bearer) of a user allowed to see the
    website. One object per process, so a test can override it (``app.dependency_overrides``)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.WEBSITE)


@cache
def _templates():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context: Any) -> str:
    return _templates().get_template(template).render(**context)


def create_app(warehouse: Callable[[], Warehouse] = airflow_warehouse,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
    """The FastAPI app: ``/`` (the page, behind Airflow's auth) and ``/icon.svg`` (the nav icon)."""
    from fastapi import Depends, FastAPI, Query, Request
    from fastapi.responses import HTMLResponse, Response
    from sqlalchemy.exc import SQLAlchemyError
    from starlette.exceptions import HTTPException

    from cryptoetl.config import ConfigError
    from cryptoetl.quality.coverage import PRICE_FAMILY
    from cryptoetl.redaction import redact

    app = FastAPI(title="cryptoetl data health", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(airflow_auth())])
    def page(days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS), table: str = Query(PRICE_FAMILY[0])):
        try:
            context = page_context(warehouse(), clock(), days, table if table in PRICE_FAMILY else PRICE_FAMILY[0])
        except (ConfigError, SQLAlchemyError) as exc:
            message = redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return HTMLResponse(render("cryptoetl_health_error.html", title="The warehouse cannot be read",
                                       message=message), status_code=503)
        return HTMLResponse(render("cryptoetl_health.html", **context))

    @app.get("/icon.svg", include_in_schema=False)
    def icon():  # the nav bar's icon: public, like Airflow's own static files
        return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code not in (401, 403):
            return HTMLResponse(render("cryptoetl_health_error.html", title=f"HTTP {exc.status_code}",
                                       message=str(exc.detail)), status_code=exc.status_code)
        message = (f"{exc.detail}. Log in to Airflow first (the page reads your Airflow session), "
                   "with a user allowed to see the Airflow UI.")
        return HTMLResponse(render("cryptoetl_health_error.html", title="Not logged in to Airflow" if
                                   exc.status_code == 401 else "Not allowed", message=message, login=True),
                            status_code=exc.status_code, headers=exc.headers)

    return app


def page_context(wh: Warehouse, now: datetime, n_days: int, table: str) -> dict[str, Any]:
    """Everything the template shows, read from the warehouse."""
    from cryptoetl.quality import coverage
    from cryptoetl.quality.health import freshness
    from cryptoetl.warehouse.quality import actions

    today = now.astimezone(UTC).date()
    start, end = today - timedelta(days=n_days - 1), today + timedelta(days=1)
    window = coverage.days(start, end)
    bad = _bad_days(wh.engine, start, end)
    synthetic = coverage.synthetic_tables(wh.engine, start, end)
    per_table = coverage.table_days(wh.engine, start, end, now, wh.quality_file)
    per_coin = coverage.coin_days(wh.engine, table, start, end, now, wh.quality_file)
    fresh = [_freshness_row(f, now) for f in freshness(wh.engine, now, wh.quality_file)]
    results = _quality_rows(wh.engine)
    fills = [_action_row(a) for a in actions(wh.engine, since=_midnight(start), limit=ACTION_LIMIT)]
    return {
        "now": f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC", "n_days": n_days, "start": start, "end": today,
        "day_choices": DAY_CHOICES, "table": table, "tables": coverage.PRICE_FAMILY, "cell_px": _cell_px(n_days),
        "synthetic": synthetic, "all_synthetic": set(synthetic) >= set(coverage.TABLES),
        "months": _months(window), "columns": [_column(day) for day in window],
        "coin_columns": [_column(day, bad.get((table, day))) for day in window],
        "table_rows": [_table_row(name, cells, window, bad, synthetic) for name, cells in per_table.items()],
        "coin_rows": _coin_rows(table, per_coin, window),
        "freshness": fresh, "results": results, "actions": fills,
        "summary": {"failed": sum(r["status"] == "fail" for r in results),
                    "stale": sum(f["stale"] for f in fresh), "actions": len(fills)},
        "legend": [("full", "complete"), ("p90", "partial, ≥ 90 %"), ("p50", "partial, 50–90 %"),
                   ("p0", "partial, < 50 %"), ("empty", "empty"), ("pending", "pending: not due yet"),
                   ("none", "not expected")],
    }


def _cell_px(n_days: int) -> int:
    """Wide cells for a few days, narrow ones for a year: the heatmap stays about 750 px wide (it fits
    the UI's iframe beside Airflow's nav bar, with the table names and totals)."""
    return max(6, min(32, 750 // n_days - 2))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _bad_days(engine, start: date, end: date) -> dict[tuple[str, date], str]:
    """{(table, day): failed checks} for every day overlapping an interval whose latest check failed."""
    from cryptoetl.quality.coverage import TABLES
    from cryptoetl.warehouse.quality import bad_ranges

    out: dict[tuple[str, date], str] = {}
    for table, lo, hi, checks in bad_ranges(engine, TABLES, _midnight(start), _midnight(end)):
        day = max(lo.date(), start)
        while day < end and _midnight(day) < hi:
            out[(table, day)] = ", ".join(filter(None, (out.get((table, day)), checks)))
            day += timedelta(days=1)
    return out


def _months(window: list[date]) -> list[dict[str, Any]]:
    """The header's month row: each month's label and how many of the window's days it spans."""
    out: list[dict[str, Any]] = []
    for day in window:
        if out and out[-1]["key"] == (day.year, day.month):
            out[-1]["span"] += 1
        else:
            out.append({"key": (day.year, day.month), "label": f"{day:%b %Y}", "span": 1})
    return out


def _column(day: date, failed: str | None = None) -> dict[str, Any]:
    title = f"{day:%a %Y-%m-%d}" + (f" · failed quality check: {failed}" if failed else "")
    return {"label": str(day.day), "title": title, "weekend": day.weekday() >= 5, "bad": bool(failed),
            "day": day.isoformat()}


def _band(cell) -> str:
    """The colour class: the state, with partial split into three bands of its ratio."""
    if cell.state != "partial":
        return cell.state
    return "p90" if cell.ratio >= 0.9 else "p50" if cell.ratio >= 0.5 else "p0"


def _amount(present: int, expected: int, unit: str) -> str:
    if expected == 0:
        return f"{present:,} {unit}, none expected"
    return f"{present:,} of {expected:,} {unit} ({100 * min(present, expected) / expected:.1f} %)"


def _cell(cell, label: str, day: date, failed: str | None) -> dict[str, Any]:
    title = f"{label} · {day:%a %Y-%m-%d}: {_amount(cell.present, cell.expected, cell.unit)} · {STATE_TEXT[cell.state]}"
    if failed:
        title += f" · failed quality check: {failed}"
    return {"band": _band(cell), "state": cell.state, "day": day.isoformat(), "title": title,
            "bad": bool(failed), "present": cell.present, "expected": cell.expected}


def _total(cells) -> str:
    present = sum(min(c.present, c.expected) for c in cells)
    expected = sum(c.expected for c in cells)
    return "nothing expected" if not expected else f"{100 * present / expected:.1f} % of {expected:,}"


def _table_row(name: str, cells: dict, window: list[date], bad: dict, synthetic: list[str]) -> dict[str, Any]:
    from cryptoetl.quality.coverage import PRICE_FAMILY, UNIT

    return {"name": name, "unit": UNIT[name], "synthetic": name in synthetic, "coins": name in PRICE_FAMILY,
            "total": _total(cells.values()),
            "cells": [_cell(cells[day], name, day, bad.get((name, day))) for day in window]}


def _coin_rows(table: str, per_coin: dict, window: list[date]) -> list[dict[str, Any]]:
    """One row per coin, those missing the most due hours first. A failed check is the table's, not a
    coin's: the day's column header carries it."""
    rows = []
    for symbol, cells in per_coin.items():
        missing = sum(c.expected - min(c.present, c.expected) for c in cells.values() if c.due)
        rows.append({"symbol": symbol, "missing": missing, "total": _total(cells.values()),
                     "cells": [_cell(cells[day], f"{symbol} {table}", day, None) for day in window]})
    return sorted(rows, key=lambda r: (-r["missing"], r["symbol"]))


def _hours(value: float | None, days: bool) -> str:
    if value is None:
        return "—"
    return f"{value / 24:.1f} d" if days else f"{value:.1f} h"


def _freshness_row(f, now: datetime) -> dict[str, Any]:
    age, days = f.age_hours(now), f.target_hours >= 48  # age and target in the same unit
    return {"table": f.table, "newest": f"{f.newest:%Y-%m-%d %H:%M} UTC" if f.newest else "no rows",
            "age": _hours(age, days), "target": _hours(f.target_hours, days), "stale": f.stale(now),
            "status": "empty" if f.newest is None else "stale" if f.stale(now) else "fresh"}


def _quality_rows(engine) -> list[dict[str, Any]]:
    """The latest failures, then warnings, then passes, each newest first."""
    from cryptoetl.warehouse.quality import latest_results

    rows = [row for status, limit in (("fail", QUALITY_LIMIT), ("warn", QUALITY_LIMIT), ("pass", PASS_LIMIT))
            for row in latest_results(engine, limit, status=status)]
    return [{**r, "interval": _interval(r["interval_start"], r["interval_end"]), "observed": _number(r["observed"]),
             "threshold": _number(r["threshold"]), "checked": f"{r['checked_at']:%Y-%m-%d %H:%M}",
             "detail": r["detail"] or ""} for r in rows]


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _interval(start: datetime, end: datetime) -> str:
    whole_days = start.time() == end.time() == datetime.min.time()
    if whole_days:
        last = (end - timedelta(days=1)).date()
        return f"{start:%Y-%m-%d}" if last == start.date() else f"{start:%Y-%m-%d} → {last:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"


def _action_row(a: dict) -> dict[str, Any]:
    return {**a, "created": f"{a['created_at']:%Y-%m-%d %H:%M}", "detail": a["detail"] or "",
            "interval": _interval(a["interval_start"], a["interval_end"]),
            "backfill": "—" if a["backfill_id"] is None else f"#{a['backfill_id']}"}
