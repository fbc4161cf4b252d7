"""FRED/ALFRED client: the real ``fredapi.Fred`` with our HTTP layer under it.

``fredapi`` builds the requests and parses FRED's XML; it also raises a bare ``ValueError`` on
any HTTP error, never retries, and puts the API key in the URL it fetches. So this module
replaces only its one-line fetch (``Fred.__fetch_data``) with ``HttpSource.request``:

- the key travels as the ``api_key`` query parameter; like every client's key it is masked in
  every error (``SourceError``, even when FRED's message echoes it) and log line (cryptoetl/redaction.py);
- calls are spaced to FRED's documented 120 requests/minute (``FRED_RATE_PER_MINUTE``);
  HTTP 429 honours ``Retry-After``; 5xx, timeouts and connection errors retry with exponential
  backoff; other 4xx (FRED's ``<error code="400" message=...>``: bad key, unknown series,
  ALFRED's 2000-vintage cap) fail at once with FRED's message;
- before ``fredapi`` parses an answer, its shape is checked (root element, record element and
  attributes, numbers or FRED's ``"."``, no truncation by the row limit): a malformed or drifted
  payload is a ``FredPayloadError`` naming the series, never a half-parsed frame.

The root URL is ``FRED_BASE_URL`` (default ``https://api.stlouisfed.org/fred``); the offline
sandbox is reached only through it. Whether an answer was labelled synthetic is reported with
the data, so the loader can label its rows.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from cryptoetl.sources.http import HttpSource, SourceError, SourcePayloadError
from cryptoetl.sources.spec import DEFAULT_PLAN, Plan, Pool, SourceSpec, SourceStep

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# What each endpoint's document must look like: root element, record element, record attributes.
SHAPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "/series/observations": ("observations", "observation", ("realtime_start", "realtime_end", "date", "value")),
    "/series": ("seriess", "series", ("id", "frequency", "units")),
    "/series/vintagedates": ("vintage_dates", "vintage_date", ()),
}
VINTAGE_CAP = 2000  # ALFRED refuses real-time periods holding more vintage dates than this
FRED_NAN = "."  # FRED's "no value" (fredapi's Fred.nan_char)


SPEC = SourceSpec(
    name="fred",
    title="FRED/ALFRED",
    plans={DEFAULT_PLAN: Plan("https://api.stlouisfed.org/fred", 120, needs_key=True)},  # 120 requests/min
    steps=(
        SourceStep(
            step="macro",
            run="cryptoetl.loaders.macro:run_macro",
            writes="macro_indicators",
            dag_id="macro_fred",
            task_id="load_macro_fred",
            description="FRED/ALFRED series with their vintages (when each value became known)",
        ),
    ),
    sandbox="cryptoetl.sandbox.fred:FredApi",
    sandbox_path="/fred",
    sandbox_env={"FRED_API_KEY": "0123456789abcdef0123456789abcdef"},
    pool=Pool(2, "Concurrent FRED tasks (the API allows 120 requests/min per key; the client spaces calls)."),
    key_use="the macro step reads FRED/ALFRED",
)


@cache
def _fredapi_class() -> type:
    """``fredapi.Fred`` fetching through the client, built on first use (fredapi imports pandas;
    the registry reads SPEC at DAG parse time). Its ``__init__`` is skipped on purpose: it would
    read ``FRED_API_KEY`` from the environment behind the settings' back and may install a
    process-wide urllib proxy opener; neither is wanted, and urllib is not used."""
    from fredapi import Fred

    class _Fredapi(Fred):
        def __init__(self, client: FredClient, api_key: str):
            self.api_key = api_key
            self.proxies = None
            self.root_url = client.base_url
            self._client = client

        # fredapi calls self.__fetch_data(url), i.e. self._Fred__fetch_data(url): this replaces it.
        def _Fred__fetch_data(self, url: str) -> ET.Element:
            return self._client.fetch_xml(url)

    return _Fredapi


class FredClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str, *, api_key: str, rate_per_minute: float = 120, **kwargs):
        super().__init__(base_url, api_key=api_key, rate_per_minute=rate_per_minute,
                         headers={"accept": "text/xml, application/xml"}, **kwargs)
        self._api_key = api_key
        self.fred = _fredapi_class()(self, api_key)
        self.synthetic = False  # whether any answer so far was labelled synthetic
        self._error_body: bytes | None = None  # FRED's <error message=...> of the last failed call
        self.session.hooks["response"].append(self._remember_error)

    def _remember_error(self, resp, *args, **kwargs):
        self._error_body = resp.content if resp.status_code >= 400 else None
        return resp

    def _fred_message(self) -> str | None:
        try:
            root = ET.fromstring(self._error_body or b"")
        except ET.ParseError:
            return None
        return root.get("message") if root.tag == "error" else None

    # -- the fetch fredapi calls --------------------------------------------------------------
    def fetch_xml(self, url: str) -> ET.Element:
        """GET a URL that fredapi built, with the key added as a parameter; the checked XML root."""
        if not url.startswith(self.base_url):
            raise SourceError(f"fred: fredapi built a URL outside {self.base_url!r}")
        split = urlsplit(url[len(self.base_url):])
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        series = params.get("series_id", "?")
        params["api_key"] = self._api_key
        try:
            resp = self.request(path, params)
        except SourceError as exc:
            text = str(exc)
            if type(exc) is SourceError and (message := self._fred_message()):
                # a final 4xx: FRED's own message in full (bad key, unknown series, vintage cap)
                text = f"{text.split(': HTTP ')[0]}: HTTP {message}" if ": HTTP " in text else f"{text}: {message}"
            if text != str(exc):
                raise type(exc)(text) from None
            raise
        self.synthetic = self.synthetic or resp.synthetic
        where = f"fred GET {path} series_id={series!r}"
        try:
            root = ET.fromstring(resp.body)
        except ET.ParseError as exc:
            raise SourcePayloadError(f"{where}: response is not valid XML ({exc}); body starts "
                                   f"{resp.text[:80]!r}") from None
        self._check_shape(root, path, where)
        return root

    @staticmethod
    def _check_shape(root: ET.Element, path: str, where: str) -> None:
        if path not in SHAPES:
            return
        root_tag, record_tag, attrs = SHAPES[path]
        if root.tag != root_tag:
            raise SourcePayloadError(f"{where}: root element is <{root.tag}>, expected <{root_tag}>; "
                                   "has the API schema changed?")
        records = list(root)
        for rec in records:
            if rec.tag != record_tag:
                raise SourcePayloadError(f"{where}: found <{rec.tag}> records, expected <{record_tag}>; "
                                       "has the API schema changed?")
            missing = [a for a in attrs if rec.get(a) is None]
            if missing:
                raise SourcePayloadError(f"{where}: a <{record_tag}> lacks {missing}; has the API schema changed?")
        if record_tag == "observation":
            for rec in records:
                value = rec.get("value")
                try:
                    for attr in ("date", "realtime_start"):
                        date.fromisoformat(rec.get(attr))
                    if value != FRED_NAN:
                        float(value)
                except ValueError:
                    raise SourcePayloadError(f"{where}: bad observation {rec.attrib}") from None
        count = root.get("count")
        if count is not None and count.isdigit() and int(count) > len(records) + int(root.get("offset") or 0):
            raise SourcePayloadError(f"{where}: answer truncated ({len(records)} of {count} records); "
                                   "split the request")

    def _track(self, call: Callable[[], object]) -> tuple[object, bool]:
        self.synthetic = False
        result = call()
        return result, self.synthetic

    # -- endpoints (fredapi does the request building and the parsing) ---------------------------
    def vintages(self, series_id: str, realtime_start: date, realtime_end: date) -> tuple[pd.DataFrame, bool]:
        """ALFRED rows valid at some day of [realtime_start, realtime_end] (both inclusive):
        columns ``date``, ``realtime_start`` (dates) and ``value`` (float, NaN for "."), and whether
        the answer was synthetic. ``realtime_start`` is clipped by FRED to the queried start."""
        if (realtime_end - realtime_start).days + 1 > VINTAGE_CAP:
            raise ValueError(f"{series_id}: real-time period [{realtime_start}, {realtime_end}] is longer than "
                             f"{VINTAGE_CAP} days and may exceed ALFRED's vintage cap; split it")
        frame, synthetic = self._track(lambda: self.fred.get_series_all_releases(
            series_id, realtime_start=realtime_start.isoformat(), realtime_end=realtime_end.isoformat()))
        return _tidy(frame, ["date", "realtime_start", "value"]), synthetic

    def observations(self, series_id: str, start: date, end: date) -> tuple[pd.DataFrame, bool]:
        """The latest-release values of observation dates [start, end] (both inclusive): columns
        ``date`` and ``value`` (NaN for "."), and whether the answer was synthetic."""
        series, synthetic = self._track(lambda: self.fred.get_series(
            series_id, observation_start=start.isoformat(), observation_end=end.isoformat()))
        import pandas as pd

        frame = pd.DataFrame({"date": list(series.index), "value": list(series.values)})
        return _tidy(frame, ["date", "value"]), synthetic

    def series_info(self, series_id: str) -> pd.Series:
        """FRED's description of a series (title, frequency, units, ...)."""
        return self.fred.get_series_info(series_id)


def _tidy(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """fredapi's frames as typed columns (dates as ``datetime.date``, values as float); fredapi
    returns a column-less frame for an empty answer."""
    import pandas as pd

    if frame is None or frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "value" else "object") for c in columns})
    out = pd.DataFrame({c: frame[c] for c in columns}).reset_index(drop=True)
    for c in columns:
        out[c] = out[c].astype("float64") if c == "value" else pd.to_datetime(out[c]).dt.date
    return out
