"""The macro step: FRED/ALFRED series into ``macro_indicators``, keyed by when each value became known.

**Series.** Listed in ``include/cryptoetl/macro_series.json`` (or the file named by
``CRYPTOETL_MACRO_SERIES``): add an entry to add a series, no code. The file is read when the
step runs, never at DAG parse; a bad entry is a ``ConfigError`` naming the file and the entry.

**Knowledge time.** Every row carries ``known_at``, the UTC time from which a model may use the
value, and ``known_at_rule``, how it was derived:

- ``alfred`` (revised monthly/quarterly series): one row per ALFRED vintage, i.e. per period in
  which an observation had one value. ``realtime_start`` is the vintage date FRED reports and
  ``known_at = realtime_start 00:00 UTC + delay_hours``. A revision is a new row with a later
  ``realtime_start``; the first release stays, so history is never rewritten.
- ``lag`` (daily market series: their whole vintage history exceeds ALFRED's 2000-vintage cap,
  and their revisions are rare): the latest-release value, with a documented publication lag:
  ``realtime_start`` = the observation date moved forward ``lag_business_days`` US business days
  (from the next business day when it falls on a weekend or federal holiday) and
  ``known_at = realtime_start 00:00 UTC + delay_hours``. ``realtime_start`` is then our estimate
  of the publication date, not ALFRED's.

``delay_hours`` defaults to 30 (06:00 UTC the next day): FRED dates vintages in US time and may
post late in the day; by then that US day is over, so the value is public (no look-ahead) and the
daily run that loads the window containing ``known_at`` runs after it (nothing is missed).

**Interval semantics.** A run for [start, end) is a window of *knowledge* time: it writes exactly
the rows whose ``known_at`` falls in it (``replace_interval`` on ``known_at`` for the configured
series), and fetches what it needs for that: for ``alfred``, the ALFRED real-time period
[first vintage date - 1 day, last vintage date] (the extra day absorbs FRED's clipping of
``realtime_start`` to the queried start; periods longer than 1999 days are split to stay under the
vintage cap); for ``lag``, the observation dates that can map into the window. Each row belongs to
one window whatever the chunking, so a backfill in any chunks equals day-by-day runs, a rerun is
idempotent, and nothing learned after a window is ever written into it.

**Point-in-time join** (latest value known at hour ``T``, with its age)::

    SELECT m.* FROM macro_indicators m
    WHERE m.series_id = 'UNRATE' AND m.known_at <= :T
    ORDER BY m.observation_date DESC, m.known_at DESC LIMIT 1

(``T - known_at`` is how long the value has been known; ``T - observation_date`` its age).

**Failure behaviour.** Every series is fetched first, then everything is written in one
transaction. If any series fails (HTTP error after retries, malformed or drifted payload), the
task fails and nothing is written: the interval keeps its previous rows. An empty answer is
accepted only where the warehouse holds nothing for that series in the interval (it never erases
loaded rows). For ``lag`` series, a business day in the window whose observations FRED has not
published is an error too (the lag is too short, or FRED is late): retry, or raise the lag.
FRED's ``"."`` (no value) is stored as NULL, never 0.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval, midnight
from cryptoetl.sources.fred import FredClient
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.writes import replace_interval

log = logging.getLogger(__name__)

DEFAULT_SERIES_FILE = Path(__file__).resolve().parents[1] / "macro_series.json"  # package data
DEFAULT_DELAY_HOURS = 30
MAX_REALTIME_DAYS = 1999  # + the 1-day margin = 2000 days: can never hold more than 2000 vintage dates
FREQUENCIES = ("daily", "weekly", "monthly", "quarterly")
COLUMNS = ["series_id", "observation_date", "realtime_start", "indicator_name", "value", "known_at",
           "known_at_rule", "frequency", "units", "source"]


class MacroDataMissing(RuntimeError):
    """FRED returned less than the warehouse or the publication rule says exists: refusing to
    write an incomplete interval."""


@dataclass(frozen=True)
class MacroSeries:
    series_id: str
    indicator_name: str
    frequency: str
    units: str
    rule: str  # "alfred" | "lag"
    lag_business_days: int | None = None  # rule "lag" only, required there
    delay_hours: int = DEFAULT_DELAY_HOURS
    notes: str = ""

    @property
    def known_at_rule(self) -> str:
        lag = f"+{self.lag_business_days}bd" if self.rule == "lag" else ""
        return f"{self.rule}{lag}+{self.delay_hours}h"

    @property
    def delay(self) -> timedelta:
        return timedelta(hours=self.delay_hours)


def load_series(path: str | Path | None = None) -> tuple[MacroSeries, ...]:
    """The configured series, validated; ``path`` None means the file shipped with the code."""
    file = Path(path) if path else DEFAULT_SERIES_FILE
    where = f"macro series file {file} (CRYPTOETL_MACRO_SERIES)"
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from None
    entries = raw.get("series") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where} must be an object with a non-empty list 'series'")
    allowed = {f.name for f in fields(MacroSeries)}
    out: list[MacroSeries] = []
    for i, entry in enumerate(entries):
        label = f"{where}, series[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{label} is not an object")
        label = f"{where}, series[{i}] ({entry.get('series_id', '?')})"
        if unknown := sorted(set(entry) - allowed):
            raise ConfigError(f"{label}: unknown keys {unknown}; allowed: {sorted(allowed)}")
        try:
            spec = MacroSeries(**entry)
        except TypeError as exc:
            raise ConfigError(f"{label}: {exc}") from None
        problems = []
        if not isinstance(spec.series_id, str) or not re.fullmatch(r"[A-Z0-9_]{1,32}", spec.series_id):
            problems.append("series_id must be a FRED id (A-Z, 0-9, _; <= 32 chars)")
        if not isinstance(spec.indicator_name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", spec.indicator_name):
            problems.append("indicator_name must be snake_case, <= 64 chars")
        if spec.frequency not in FREQUENCIES:
            problems.append(f"frequency must be one of {FREQUENCIES}")
        if not isinstance(spec.units, str) or not spec.units or len(spec.units) > 128:
            problems.append("units must be a non-empty string of <= 128 chars")
        if spec.rule not in ("alfred", "lag"):
            problems.append("rule must be 'alfred' or 'lag'")
        if spec.rule == "lag" and (type(spec.lag_business_days) is not int or not 0 <= spec.lag_business_days <= 60):
            problems.append("rule 'lag' needs lag_business_days: an integer in [0, 60]")
        if spec.rule == "alfred" and spec.lag_business_days is not None:
            problems.append("lag_business_days only applies to rule 'lag'")
        if type(spec.delay_hours) is not int or not 0 <= spec.delay_hours <= 24 * 14:
            problems.append("delay_hours must be an integer in [0, 336]")
        if problems:
            raise ConfigError(f"{label}: {'; '.join(problems)}")
        out.append(spec)
    for attr in ("series_id", "indicator_name"):
        values = [getattr(s, attr) for s in out]
        if dupes := sorted({v for v in values if values.count(v) > 1}):
            raise ConfigError(f"{where}: duplicate {attr} {dupes}")
    return tuple(out)


def feature_series(path: str | Path | None) -> tuple[tuple[str, str], ...]:
    """(series_id, indicator_name) of a custom series file (``CRYPTOETL_MACRO_SERIES``), whose series
    get feature columns beside the packaged ones (``schema.macro_feature_columns``: ``migrate`` adds
    them, the features rebuild fills them); () for the packaged file, whose columns are declared.
    ConfigError, naming the file, for a bad file or colliding column names."""
    if not path:
        return ()
    configured = tuple((spec.series_id, spec.indicator_name) for spec in load_series(path))
    try:
        schema.macro_feature_columns(configured)
    except ValueError as exc:
        raise ConfigError(f"macro series file {path} (CRYPTOETL_MACRO_SERIES): {exc}") from None
    return configured


@cache
def _us_holidays() -> np.ndarray:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    return USFederalHolidayCalendar().holidays("1950-01-01", "2100-12-31").values.astype("datetime64[D]")


def publication_dates(observation_dates, lag_business_days: int) -> np.ndarray:
    """Observation date + N US business days, counting from the next business day when the date
    is not one (a Saturday value of DFF is published with Monday's, on Tuesday)."""
    days = np.asarray(pd.to_datetime(pd.Series(observation_dates)).values.astype("datetime64[D]"))
    return np.busday_offset(days, lag_business_days, roll="forward", holidays=_us_holidays())


def _first_day_at_or_after(ts: datetime) -> date:
    return ts.date() if ts.time() == time.min else ts.date() + timedelta(days=1)


def fetch_series(client, spec: MacroSeries, interval: Interval) -> tuple[pd.DataFrame, bool]:
    """The rows of one series whose ``known_at`` falls in the interval, and whether the answers
    were synthetic. Raises on any source problem."""
    if spec.rule == "alfred":
        return _fetch_alfred(client, spec, interval)
    return _fetch_lag(client, spec, interval)


def _fetch_alfred(client, spec: MacroSeries, interval: Interval) -> tuple[pd.DataFrame, bool]:
    first = _first_day_at_or_after(interval.start - spec.delay)  # vintage dates R with R + delay in the window
    last = _first_day_at_or_after(interval.end - spec.delay) - timedelta(days=1)
    parts, synthetic = [], False
    chunk = first
    while chunk <= last:
        chunk_end = min(last, chunk + timedelta(days=MAX_REALTIME_DAYS - 1))
        # One day earlier than needed: FRED clips realtime_start to the queried start, so rows
        # reporting that day may have started earlier; they are dropped below.
        frame, synthetic_part = client.vintages(spec.series_id, chunk - timedelta(days=1), chunk_end)
        synthetic = synthetic or synthetic_part
        parts.append(frame[(frame["realtime_start"] >= chunk) & (frame["realtime_start"] <= chunk_end)])
        chunk = chunk_end + timedelta(days=1)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["date", "realtime_start", "value"])
    rows = rows.rename(columns={"date": "observation_date"})
    rows["known_at"] = [midnight(d) + spec.delay for d in rows["realtime_start"]]
    return rows, synthetic


def _fetch_lag(client, spec: MacroSeries, interval: Interval) -> tuple[pd.DataFrame, bool]:
    lo = (interval.start - spec.delay).date() - timedelta(days=2 * spec.lag_business_days + 10)
    hi = (interval.end - spec.delay).date()
    frame, synthetic = client.observations(spec.series_id, lo, hi)
    frame = frame.rename(columns={"date": "observation_date"})
    published = publication_dates(frame["observation_date"], spec.lag_business_days) if len(frame) else []
    frame["realtime_start"] = [pd.Timestamp(d).date() for d in published]
    frame["known_at"] = [midnight(d) + spec.delay for d in frame["realtime_start"]]
    inside = frame.loc[np.array([interval.start <= k < interval.end for k in frame["known_at"]], dtype=bool)]
    if len(frame) > len(inside) and len(frame):
        # The series existed before this window: every business day on which the rule says FRED
        # published something must have brought at least one observation.
        day, expected = _first_day_at_or_after(interval.start - spec.delay), []
        while midnight(day) + spec.delay < interval.end:
            if np.is_busday(np.datetime64(day, "D"), holidays=_us_holidays()):
                expected.append(day)
            day += timedelta(days=1)
        missing = sorted(set(expected) - set(inside["realtime_start"]))
        if missing:
            raise MacroDataMissing(
                f"macro: FRED returned no {spec.series_id} observations for the publication day(s) "
                f"{[d.isoformat() for d in missing]} of {interval} (rule {spec.known_at_rule}); FRED is late or "
                "lag_business_days is too short for this series: retry later, or raise it in the series file")
    return inside.reset_index(drop=True), synthetic


def run_macro(ctx: StepContext, interval: Interval) -> int:
    """Fetch every configured series for the knowledge window, then write them in one transaction."""
    client = ctx.client(FredClient)  # a missing FRED_API_KEY fails here, before anything else
    series = load_series(ctx.settings.macro_series_file)
    frames = []
    for spec in series:
        try:
            rows, synthetic = fetch_series(client, spec, interval)
        except Exception:
            log.error("macro: %s (%s) failed for %s; nothing is written for this interval",
                      spec.series_id, spec.indicator_name, interval)
            raise
        if rows.empty:
            _refuse_to_erase(ctx.engine, spec, interval)
            log.info("macro: %s has no values known in %s", spec.series_id, interval)
            continue
        frames.append(rows.assign(
            series_id=spec.series_id, indicator_name=spec.indicator_name, known_at_rule=spec.known_at_rule,
            frequency=spec.frequency, units=spec.units, source="fred-sandbox-synthetic" if synthetic else "fred"))
    rows = pd.concat(frames, ignore_index=True)[COLUMNS] if frames else []
    return replace_interval(ctx.engine, schema.macro_indicators, rows, time_column="known_at",
                            start=interval.start, end=interval.end, keys={"series_id": [s.series_id for s in series]})


def _refuse_to_erase(engine, spec: MacroSeries, interval: Interval) -> None:
    table = schema.macro_indicators
    with engine.connect() as conn:
        held = conn.execute(select(table.c.series_id).where(
            table.c.series_id == spec.series_id, table.c.known_at >= to_naive_utc(interval.start),
            table.c.known_at < to_naive_utc(interval.end)).limit(1)).first()
    if held is not None:
        raise MacroDataMissing(f"macro: FRED returned nothing for {spec.series_id} in {interval}, but the warehouse "
                               "holds rows there; refusing to erase them (rerun later)")
