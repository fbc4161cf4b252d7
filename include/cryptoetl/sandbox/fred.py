"""Sandbox FRED/ALFRED API (``/fred``). ALL DATA HERE IS SYNTHETIC.

Speaks the real request and response shapes of the three endpoints ``fredapi`` uses, in
FRED's default XML (``file_type=xml``):

- ``/series/observations?series_id=&observation_start=&observation_end=&realtime_start=&realtime_end=``
  answers ``<observations ... count=N><observation realtime_start= realtime_end= date= value=/>``.
  Like ALFRED, each row is one period during which an observation had one value; a query's
  real-time period defaults to today (the sandbox clock), rows are those whose period overlaps
  the queried one, and their ``realtime_start``/``realtime_end`` are *clipped* to it (so a row
  reporting the query's own ``realtime_start`` may have started earlier). No vintage after the
  sandbox clock is ever served.
- ``/series?series_id=`` answers ``<seriess><series id= title= frequency= units= .../></seriess>``.
- ``/series/vintagedates?series_id=`` answers ``<vintage_dates><vintage_date>...</vintage_date>``.

Errors are FRED's: HTTP 400 with ``<error code="400" message="Bad Request.  ..."/>`` for a
missing or malformed ``api_key``, an unknown series, a bad date, or a real-time period holding
more than 2000 vintage dates (ALFRED's cap). Series (catalogue below) have realistic shapes:
monthly values get a first release and a revision a month later, quarterly GDP growth three
estimates a month apart, business-daily market series one release a few business days after
the observation and ``"."`` (no value) on US holidays and some random days; DFF is daily
including weekends. Values are seeded per series on a fixed grid (daily series from 2015, the
others from 2023), so they never depend on which ranges were asked before. Faults: ``empty`` drops
every record, ``drift`` renames the ``<observation>`` element (as an API version change would).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from xml.sax.saxutils import quoteattr

import numpy as np
from pandas.tseries.holiday import USFederalHolidayCalendar

from cryptoetl.sandbox.common import Route, rng

PREFIX = "/fred"
XML = "text/xml; charset=UTF-8"
FIRST_OBSERVATION = date(2015, 1, 1)  # daily series: long enough for ALFRED's vintage cap to bite
FIRST_PERIOD = date(2023, 1, 1)  # monthly/quarterly series (ALFRED answers carry their whole history)
LAST_OBSERVATION = date(2032, 12, 31)
VINTAGE_CAP = 2000
EARLIEST, LATEST = "1776-07-04", "9999-12-31"
KEY_HELP = "Read https://research.stlouisfed.org/docs/api/api_key.html for more information."
_KEY_RE = re.compile(r"^[a-z0-9]{32}$")


@dataclass(frozen=True)
class SeriesSpec:
    title: str
    frequency: str  # "M", "Q", "D" (business days), "D7" (every calendar day)
    units: str
    units_short: str
    seasonal_adjustment: str
    level: float
    sigma: float
    decimals: int
    release: int  # M/Q: days after the period end; D: business days after the observation
    phi: float = 0.98  # AR(1) pull towards the level
    floor: float | None = None
    weekly_release: bool = False  # D: released on the Monday after the observation's week


CATALOG: dict[str, SeriesSpec] = {
    "UNRATE": SeriesSpec("Unemployment Rate", "M", "Percent", "%", "Seasonally Adjusted",
                         4.0, 0.12, 1, 7, floor=2.5),
    "CPIAUCSL": SeriesSpec("Consumer Price Index for All Urban Consumers: All Items in U.S. City Average", "M",
                           "Index 1982-1984=100", "Index 1982-1984=100", "Seasonally Adjusted",
                           240.0, 0.6, 3, 12, phi=1.0),
    "A191RL1Q225SBEA": SeriesSpec("Real Gross Domestic Product", "Q",
                                  "Percent Change from Preceding Period", "% Chg. from Preceding Period",
                                  "Seasonally Adjusted Annual Rate", 2.2, 1.6, 1, 28, phi=0.3),
    "FEDFUNDS": SeriesSpec("Federal Funds Effective Rate", "M", "Percent", "%", "Not Seasonally Adjusted",
                           3.0, 0.15, 2, 1, floor=0.05),
    "IR14270": SeriesSpec("Import Price Index (End Use): Nonmonetary Gold", "M", "Index 2000=100",
                          "Index 2000=100", "Not Seasonally Adjusted", 650.0, 14.0, 1, 14, phi=1.0, floor=100.0),
    "DFF": SeriesSpec("Federal Funds Effective Rate", "D7", "Percent", "%", "Not Seasonally Adjusted",
                      3.0, 0.01, 2, 1, phi=0.999, floor=0.05),
    "DGS10": SeriesSpec("Market Yield on U.S. Treasury Securities at 10-Year Constant Maturity, Quoted on an "
                        "Investment Basis", "D", "Percent", "%", "Not Seasonally Adjusted", 3.5, 0.05, 2, 1,
                        phi=0.999, floor=0.5),
    "VIXCLS": SeriesSpec("CBOE Volatility Index: VIX", "D", "Index", "Index", "Not Seasonally Adjusted",
                         18.0, 1.1, 2, 1, phi=0.95, floor=9.0),
    "DTWEXBGS": SeriesSpec("Nominal Broad U.S. Dollar Index", "D", "Index Jan 2006=100", "Index Jan 2006=100",
                           "Not Seasonally Adjusted", 120.0, 0.3, 4, 0, phi=0.999, weekly_release=True),
    "DCOILWTICO": SeriesSpec("Crude Oil Prices: West Texas Intermediate (WTI) - Cushing, Oklahoma", "D",
                             "Dollars per Barrel", "$ per Barrel", "Not Seasonally Adjusted", 75.0, 1.3, 2, 3,
                             phi=0.995, floor=10.0),
}


def us_holidays() -> np.ndarray:
    return USFederalHolidayCalendar().holidays("2014-01-01", "2034-12-31").values.astype("datetime64[D]")


class _Series:
    """Every observation and every vintage of one series, generated once from its seeds.

    ``releases[k][i]`` is the day vintage k of observation i became public and ``values[k][i]``
    its value as FRED would print it ("." = no value)."""

    def __init__(self, series_id: str, spec: SeriesSpec, holidays: np.ndarray):
        first, last = np.datetime64(FIRST_OBSERVATION, "D"), np.datetime64(LAST_OBSERVATION, "D")
        if spec.frequency == "M":
            months = np.arange(np.datetime64(FIRST_PERIOD, "M"), np.datetime64(LAST_OBSERVATION, "M") + 1)
            self.dates = months.astype("datetime64[D]")
            period_end = (months + 1).astype("datetime64[D]") - 1
        elif spec.frequency == "Q":
            months = np.arange(np.datetime64(FIRST_PERIOD, "M"), np.datetime64(LAST_OBSERVATION, "M") + 1, 3)
            self.dates = months.astype("datetime64[D]")
            period_end = (months + 3).astype("datetime64[D]") - 1
        else:
            days = np.arange(first, last + 1)
            self.dates = days if spec.frequency == "D7" else days[np.is_busday(days)]
            period_end = self.dates
        n = len(self.dates)
        gen = rng("fred", series_id, "values")
        shocks = gen.normal(0.0, spec.sigma, n)
        level = np.empty(n)
        x = spec.level
        for i in range(n):
            x = spec.level + spec.phi * (x - spec.level) + shocks[i]
            level[i] = x
        if spec.phi == 1.0:  # trending series (price indexes): a drift keeps them rising like the real ones
            level += np.arange(n) * spec.sigma * 0.5
        if spec.floor is not None:
            level = np.maximum(level, spec.floor)
        unit = 10.0 ** -spec.decimals

        def fmt(values: np.ndarray) -> np.ndarray:
            return np.array([f"{v:.{spec.decimals}f}" for v in values], dtype=object)

        if spec.frequency in ("M", "Q"):
            first_release = np.busday_offset(period_end + spec.release, 0, roll="forward", holidays=holidays)
            n_vintages = 3 if spec.frequency == "Q" else 2
            self.releases = [first_release]
            for _ in range(n_vintages - 1):  # each revision about a month after the previous estimate
                self.releases.append(np.busday_offset(self.releases[-1] + 30, 0, roll="forward", holidays=holidays))
            revisions = rng("fred", series_id, "revisions").integers(1, 4, (n_vintages, n))
            signs = rng("fred", series_id, "signs").choice([-1.0, 1.0], (n_vintages, n))
            self.values = [fmt(level + (revisions[k] * signs[k] * unit if k else 0.0)) for k in range(n_vintages)]
        else:
            if spec.weekly_release:  # the Monday after the observation's week (rolled past holidays)
                monday_next = self.dates + (7 - (self.dates.astype("datetime64[D]").view("int64") - 4) % 7)
                release = np.busday_offset(monday_next, 0, roll="forward", holidays=holidays)
            else:
                release = np.busday_offset(self.dates, spec.release, roll="forward", holidays=holidays)
            values = fmt(level)
            if spec.frequency == "D":  # markets closed on US holidays, plus a few random gaps
                missing = np.isin(self.dates, holidays) | (rng("fred", series_id, "gaps").random(n) < 0.02)
                values[missing] = "."
            self.releases, self.values = [release], [values]

    def vintage_dates(self, today: np.datetime64) -> np.ndarray:
        every = np.unique(np.concatenate(self.releases))
        return every[every <= today]

    def rows(self, rs: np.datetime64, re_: np.datetime64, obs_lo: np.datetime64, obs_hi: np.datetime64,
             today: np.datetime64) -> list[tuple[str, str, str, str]]:
        """(realtime_start, realtime_end, date, value) rows overlapping [rs, re_], clipped to it."""
        out = []
        latest = np.datetime64(LATEST)
        inside = np.nonzero((self.dates >= obs_lo) & (self.dates <= obs_hi))[0]
        n_vintages = len(self.releases)
        for i in inside:
            for k in range(n_vintages):
                start = self.releases[k][i]
                if start > today:
                    break
                nxt = self.releases[k + 1][i] if k + 1 < n_vintages else None
                end = nxt - 1 if nxt is not None and nxt <= today else latest
                if start <= re_ and end >= rs:
                    out.append((str(max(start, rs)), str(min(end, re_)), str(self.dates[i]), self.values[k][i]))
        return out


def _error(message: str, status: int = 400):
    body = f'<?xml version="1.0" encoding="utf-8" ?>\n<error code="{status}" message={quoteattr(message)} />\n'
    return status, body, XML


def _day(value: str | None, default: str, name: str) -> np.datetime64:
    raw = value if value not in (None, "") else default
    try:
        return np.datetime64(date.fromisoformat(raw), "D")
    except ValueError:
        raise ValueError(f"Bad Request.  Variable {name} is not a valid date (YYYY-MM-DD).") from None


class FredApi:
    def __init__(self, server):
        self.server = server
        self._series: dict[str, _Series] = {}
        self._holidays: np.ndarray | None = None

    def routes(self) -> list[Route]:
        return [
            Route("GET", rf"^{PREFIX}/series/observations$", self.observations, auth=self.auth,
                  key_param="api_key", empty=self._empty, drift=lambda body: body.replace("<observation ", "<obs ")),
            Route("GET", rf"^{PREFIX}/series/vintagedates$", self.vintagedates, auth=self.auth,
                  key_param="api_key", empty=self._empty),
            Route("GET", rf"^{PREFIX}/series$", self.series_info, auth=self.auth,
                  key_param="api_key", empty=self._empty, drift=lambda body: body.replace("<series ", "<series_v2 ")),
        ]

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _empty(body: str) -> str:
        body = re.sub(r"\s*<(observation|series|vintage_date)\b[^>]*?(/>|>[^<]*</\1>)", "", body)
        return re.sub(r'count="\d+"', 'count="0"', body)

    def auth(self, query, headers):
        key = query.get("api_key")
        if not key:
            return _error(f"Bad Request.  Variable api_key is not set.  {KEY_HELP}")[:2] + (None, XML)
        if not _KEY_RE.match(key):
            return _error("Bad Request.  The value for variable api_key is not a 32 character alpha-numeric "
                          f"lower-case string.  {KEY_HELP}")[:2] + (None, XML)
        return None

    def _today(self) -> np.datetime64:
        return np.datetime64(datetime.fromtimestamp(self.server.now(), UTC).date(), "D")

    def _get(self, query) -> tuple[str, _Series] | tuple:
        series_id = query.get("series_id")
        if not series_id:
            return _error("Bad Request.  Variable series_id is not set.")
        if series_id not in CATALOG:
            return _error("Bad Request.  The series does not exist.")
        if query.get("file_type", "xml") != "xml":
            return _error("Bad Request.  The synthetic sandbox only serves file_type=xml.")
        if self._holidays is None:
            self._holidays = us_holidays()
        if series_id not in self._series:
            self._series[series_id] = _Series(series_id, CATALOG[series_id], self._holidays)
        return series_id, self._series[series_id]

    def _realtime(self, query) -> tuple[np.datetime64, np.datetime64]:
        today = str(self._today())
        rs = _day(query.get("realtime_start"), today, "realtime_start")
        re_ = _day(query.get("realtime_end"), today, "realtime_end")
        if rs > re_:
            raise ValueError("Bad Request.  The real-time start date must be less than or equal to the "
                             "real-time end date.")
        return rs, re_

    # -- endpoints --------------------------------------------------------------------------
    def observations(self, query):
        got = self._get(query)
        if len(got) == 3:
            return got
        series_id, series = got
        try:
            rs, re_ = self._realtime(query)
            obs_lo = _day(query.get("observation_start"), EARLIEST, "observation_start")
            obs_hi = _day(query.get("observation_end"), LATEST, "observation_end")
        except ValueError as exc:
            return _error(str(exc))
        today = self._today()
        vintages = series.vintage_dates(today)
        n = int(((vintages >= rs) & (vintages <= re_)).sum())
        if n > VINTAGE_CAP:
            return _error(f"Bad Request.  There are {n} vintage dates in the specified real-time period: {rs} to "
                          f"{re_}.  This exceeds the maximum number of vintage dates allowed ({VINTAGE_CAP}).")
        rows = series.rows(rs, re_, obs_lo, obs_hi, today)
        lines = [f'  <observation realtime_start="{a}" realtime_end="{b}" date="{d}" value="{v}"/>'
                 for a, b, d, v in rows]
        head = (f'<?xml version="1.0" encoding="utf-8" ?>\n<!-- SYNTHETIC sandbox data, not FRED data -->\n'
                f'<observations realtime_start="{rs}" realtime_end="{re_}" observation_start="{obs_lo}" '
                f'observation_end="{obs_hi}" units="lin" output_type="1" file_type="xml" '
                f'order_by="observation_date" sort_order="asc" count="{len(rows)}" offset="0" limit="100000">')
        return 200, "\n".join([head, *lines, "</observations>"]) + "\n", XML

    def series_info(self, query):
        got = self._get(query)
        if len(got) == 3:
            return got
        series_id, series = got
        spec = CATALOG[series_id]
        today = self._today()
        known = series.dates[series.releases[0] <= today]
        freq = {"M": "Monthly", "Q": "Quarterly", "D": "Daily", "D7": "Daily, 7-Day"}[spec.frequency]
        attrs = {
            "id": series_id, "realtime_start": str(today), "realtime_end": str(today),
            "title": f"{spec.title} (SYNTHETIC sandbox)", "observation_start": str(series.dates[0]),
            "observation_end": str(known[-1]) if len(known) else str(series.dates[0]),
            "frequency": freq, "frequency_short": spec.frequency[0], "units": spec.units,
            "units_short": spec.units_short, "seasonal_adjustment": spec.seasonal_adjustment,
            "seasonal_adjustment_short": "SA" if spec.seasonal_adjustment.startswith("Seasonally") else "NSA",
            "last_updated": f"{today} 08:00:00-05", "popularity": "50",
            "notes": "Synthetic series generated by the cryptoetl sandbox; not FRED data.",
        }
        fields = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        body = (f'<?xml version="1.0" encoding="utf-8" ?>\n<seriess realtime_start="{today}" '
                f'realtime_end="{today}">\n  <series {fields}/>\n</seriess>\n')
        return 200, body, XML

    def vintagedates(self, query):
        got = self._get(query)
        if len(got) == 3:
            return got
        _, series = got
        try:
            rs, re_ = _day(query.get("realtime_start"), EARLIEST, "realtime_start"), \
                _day(query.get("realtime_end"), LATEST, "realtime_end")
        except ValueError as exc:
            return _error(str(exc))
        dates = series.vintage_dates(self._today())
        dates = dates[(dates >= rs) & (dates <= re_)][:10000]
        lines = [f"  <vintage_date>{d}</vintage_date>" for d in dates]
        head = (f'<?xml version="1.0" encoding="utf-8" ?>\n<vintage_dates realtime_start="{rs}" '
                f'realtime_end="{re_}" order_by="vintage_date" sort_order="asc" count="{len(dates)}" '
                f'offset="0" limit="10000">')
        return 200, "\n".join([head, *lines, "</vintage_dates>"]) + "\n", XML

