"""The macro step: the real fredapi-based client against the offline FRED sandbox (synthetic data),
every fault kind, and the step's point-in-time, idempotency and backfill properties on SQLite
and MariaDB."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from helpers import dump, settings_for, utc

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval
from cryptoetl.loaders.macro import DEFAULT_SERIES_FILE, MacroDataMissing, load_series, publication_dates
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources.fred import FredClient
from cryptoetl.sources.http import SourceError, SourcePayloadError, SourceRateLimited
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import schema

KEY = "0123456789abcdef0123456789abcdef"  # FRED keys are 32 lower-case alphanumerics
DAYS = [Interval(utc(2026, 2, d), utc(2026, 2, d + 1)) for d in range(3, 12)]  # UNRATE revised on 02-06
TABLE = schema.macro_indicators


def client(server, slept=None, **kwargs) -> FredClient:
    sleep = slept.append if slept is not None else (lambda s: None)
    kwargs.setdefault("api_key", KEY)
    return FredClient(server.urls()["fred"], rate_per_minute=60_000, sleep=sleep, **kwargs)


def context(engine, server, *, key: str | None = KEY, series_file=None, **client_kwargs) -> StepContext:
    env = server.env() | ({"FRED_API_KEY": key} if key else {})
    settings = settings_for(engine, server, source_env=env,
                            macro_series_file=str(series_file) if series_file else None)
    clients = {FredClient: client(server, api_key=key, **client_kwargs)} if key else {}
    return StepContext(settings=settings, engine=engine, clients=clients)


def series_file(tmp_path, *entries) -> str:
    path = tmp_path / "series.json"
    path.write_text(json.dumps({"series": list(entries)}))
    return str(path)


def run(ctx, intervals) -> None:
    for interval in intervals:
        get_step("macro").execute(ctx, interval)


# -- the client against the sandbox ------------------------------------------------------------


def test_alfred_vintages_are_clipped_to_the_queried_period_like_fred(sandbox_clean):
    rows, synthetic = client(sandbox_clean).vintages("UNRATE", date(2026, 1, 1), date(2026, 3, 31))
    assert synthetic and list(rows.columns) == ["date", "realtime_start", "value"]
    assert rows["realtime_start"].min() == date(2026, 1, 1)  # older vintages report the queried start
    by_obs = rows.groupby("date")["value"].nunique()
    assert (by_obs > 1).any()  # a first release and a revision of the same month
    # the api_key travelled as the query parameter fredapi uses
    assert sandbox_clean.requests[-1]["query"]["api_key"] == KEY
    assert sandbox_clean.requests[-1]["path"] == "/fred/series/observations"


def test_latest_release_observations_and_missing_values_are_nan_never_zero(sandbox_clean):
    rows, _ = client(sandbox_clean).observations("DGS10", date(2026, 1, 12), date(2026, 1, 23))
    holiday = rows[rows["date"] == date(2026, 1, 19)]  # Martin Luther King Jr. Day: FRED prints "."
    assert len(holiday) == 1 and holiday["value"].isna().all()
    assert (rows["value"].dropna() != 0).all() and len(rows) == 10


def test_series_info_uses_fredapi_parsing(sandbox_clean):
    info = client(sandbox_clean).series_info("IR14270")
    assert info["frequency"] == "Monthly" and info["units"] == "Index 2000=100"
    assert "SYNTHETIC" in info["title"]


def test_429_honours_retry_after(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "429", "count": 2, "retry_after": 7, "path_contains": "/fred/"}])
    slept = []
    rows, _ = client(sandbox_clean, slept).observations("VIXCLS", date(2026, 3, 2), date(2026, 3, 6))
    assert len(rows) == 5 and slept == [7.0, 7.0]


def test_persistent_429_gives_up_rate_limited_without_the_key(sandbox_clean, caplog):
    sandbox_clean.set_faults([{"kind": "429", "count": -1, "path_contains": "/fred/"}])
    with caplog.at_level(logging.WARNING), pytest.raises(SourceRateLimited, match="3 attempts") as info:
        client(sandbox_clean, max_retries=2).observations("VIXCLS", date(2026, 3, 2), date(2026, 3, 6))
    assert KEY not in str(info.value) and KEY not in caplog.text and "VIXCLS" in str(info.value)


def test_500_is_retried_with_backoff_then_fails(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "500", "count": 2, "path_contains": "/fred/"}])
    slept = []
    rows, _ = client(sandbox_clean, slept, backoff_base=1.0).observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
    assert len(rows) == 5 and slept == [1.0, 2.0]
    sandbox_clean.set_faults([{"kind": "500", "count": -1, "path_contains": "/fred/"}])
    with pytest.raises(SourceError, match="HTTP 500") as info:
        client(sandbox_clean, max_retries=1).observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
    assert KEY not in str(info.value)


def test_timeouts_are_retried_then_fail():
    with SandboxServer(timeout_sleep=0.6) as server:
        server.set_faults([{"kind": "timeout", "count": 1}])
        rows, _ = client(server, timeout=0.2).observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
        assert len(rows) == 5
        server.set_faults([{"kind": "timeout", "count": -1}])
        with pytest.raises(SourceError, match="Timeout") as info:
            client(server, timeout=0.2, max_retries=1).observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
        assert KEY not in str(info.value)


@pytest.mark.parametrize("kind,message", [("malformed", "not valid XML"), ("drift", "schema changed")])
def test_bad_payloads_fail_clearly_without_retry(sandbox_clean, kind, message):
    sandbox_clean.set_faults([{"kind": kind, "count": 1, "path_contains": "/fred/"}])
    before = len(sandbox_clean.requests)
    with pytest.raises(SourcePayloadError, match=message) as info:
        client(sandbox_clean).vintages("UNRATE", date(2026, 1, 1), date(2026, 1, 31))
    assert "UNRATE" in str(info.value) and KEY not in str(info.value)
    assert len(sandbox_clean.requests) == before + 1


def test_empty_payload_is_an_empty_frame(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "empty", "count": 2, "path_contains": "/fred/"}])
    vintages, _ = client(sandbox_clean).vintages("UNRATE", date(2026, 1, 1), date(2026, 1, 31))
    observations, _ = client(sandbox_clean).observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
    assert vintages.empty and list(vintages.columns) == ["date", "realtime_start", "value"]
    assert observations.empty and list(observations.columns) == ["date", "value"]


def test_fred_400_errors_are_final_and_never_show_the_key(sandbox_clean):
    before = len(sandbox_clean.requests)
    with pytest.raises(SourceError, match="series does not exist"):
        client(sandbox_clean).observations("NOSUCHSERIES", date(2026, 3, 2), date(2026, 3, 6))
    assert len(sandbox_clean.requests) == before + 1  # a 400 is not retried
    with pytest.raises(SourceError, match="not a 32 character") as info:
        client(sandbox_clean, api_key="my-secret-key").observations("DGS10", date(2026, 3, 2), date(2026, 3, 6))
    assert "my-secret-key" not in str(info.value)


def test_server_requires_the_key_like_fred(sandbox_clean):
    import requests

    resp = requests.get(sandbox_clean.urls()["fred"] + "/series/observations", params={"series_id": "UNRATE"},
                        timeout=5)
    assert resp.status_code == 400 and 'code="400"' in resp.text and "Variable api_key is not set" in resp.text


def test_alfred_vintage_cap_is_fred_error_and_client_never_asks_for_more(sandbox_clean):
    c = client(sandbox_clean)
    with pytest.raises(SourceError, match="maximum number of vintage dates allowed"):
        c.fred.get_series_all_releases("DFF")  # every vintage ever: what the cap is about
    with pytest.raises(ValueError, match="vintage cap"):
        c.vintages("DFF", date(2020, 1, 1), date(2026, 1, 1))


def test_rate_limit_is_freds_120_per_minute_from_settings(sqlite_engine, sandbox_clean):
    settings = settings_for(sqlite_engine, sandbox_clean,
                            source_env=(sandbox_clean.env() | {"FRED_API_KEY": KEY}))
    clock = iter([0.0, 0.1, 5.0]).__next__
    slept = []
    c = FredClient.from_settings(settings, sleep=slept.append, clock=clock)
    assert c.min_interval == 0.5
    c.observations("DGS10", date(2026, 3, 2), date(2026, 3, 3))
    c.observations("DGS10", date(2026, 3, 2), date(2026, 3, 3))
    assert slept == [pytest.approx(0.4)]


# -- configuration ----------------------------------------------------------------------------------


def test_shipped_series_file_is_valid_and_complete():
    series = {s.series_id: s for s in load_series(DEFAULT_SERIES_FILE)}
    assert {"UNRATE", "CPIAUCSL", "A191RL1Q225SBEA", "FEDFUNDS", "DFF", "DGS10", "VIXCLS", "DTWEXBGS",
            "DCOILWTICO", "IR14270"} <= set(series)
    assert series["IR14270"].frequency == "monthly" and "Index" in series["IR14270"].units
    assert all(s.rule == "lag" for s in series.values() if s.frequency == "daily")
    assert all(s.rule == "alfred" for s in series.values() if s.frequency in ("monthly", "quarterly"))


@pytest.mark.parametrize("entry,message", [
    ({"series_id": "UNRATE", "indicator_name": "u", "frequency": "monthly", "units": "%", "rule": "guess"},
     "rule must be"),
    ({"series_id": "DGS10", "indicator_name": "y", "frequency": "daily", "units": "%", "rule": "lag"},
     "lag_business_days"),
    ({"series_id": "UNRATE", "indicator_name": "u", "frequency": "monthly", "units": "%", "rule": "alfred",
      "lagg": 1}, "unknown keys"),
])
def test_bad_series_file_is_a_config_error_naming_the_file(tmp_path, entry, message):
    path = series_file(tmp_path, entry)
    with pytest.raises(ConfigError, match=message) as info:
        load_series(path)
    assert "series.json" in str(info.value)


def test_missing_key_fails_when_the_step_runs_naming_the_setting(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean, key=None)
    with pytest.raises(ConfigError, match="FRED_API_KEY"):
        get_step("macro").execute(ctx, DAYS[0])
    with pytest.raises(ConfigError, match="FRED_API_KEY"):
        FredClient.from_settings(ctx.settings)


def test_publication_lag_counts_us_business_days():
    got = publication_dates([date(2026, 3, 6), date(2026, 3, 7), date(2026, 1, 16), date(2026, 1, 19)], 1)
    # Fri -> Mon; Sat -> from Monday, +1 -> Tue; Fri before MLK day -> Tue; MLK day (holiday) -> Wed
    assert [str(d) for d in got] == ["2026-03-09", "2026-03-10", "2026-01-20", "2026-01-21"]


# -- the step ---------------------------------------------------------------------------------------


def test_rows_are_point_in_time_and_labelled(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    interval = Interval(utc(2026, 1, 1), utc(2026, 3, 1))
    assert get_step("macro").execute(ctx, interval) > 0
    rows = [dict(zip([c.name for c in TABLE.columns], r, strict=True)) for r in dump(engine, TABLE)]
    assert {r["series_id"] for r in rows} == {s.series_id for s in load_series()}
    for r in rows:  # no row of the interval is known outside it, and none before it happened
        assert datetime(2026, 1, 1) <= r["known_at"] < datetime(2026, 3, 1)
        assert r["observation_date"] <= r["realtime_start"] < r["known_at"].date()
        assert r["source"] == "fred-sandbox-synthetic" and r["value"] != 0
    unrate = sorted((r for r in rows if r["series_id"] == "UNRATE"), key=lambda r: r["known_at"])
    dec = [r for r in unrate if r["observation_date"] == date(2025, 12, 1)]
    # the first release is kept, and the revision a month later is a new row with a new value
    assert len(dec) == 2 and dec[0]["value"] != dec[1]["value"]
    assert dec[1]["realtime_start"] - dec[0]["realtime_start"] >= timedelta(days=28)
    assert dec[0]["known_at_rule"] == "alfred+30h" and dec[0]["known_at"].hour == 6
    gdp = [r for r in rows if r["series_id"] == "A191RL1Q225SBEA"]
    assert gdp and all(r["frequency"] == "quarterly" for r in gdp)
    dgs10 = [r for r in rows if r["series_id"] == "DGS10"]
    assert any(r["value"] is None for r in dgs10)  # FRED's "." is NULL, never 0
    mlk = [r for r in dgs10 if r["observation_date"] == date(2026, 1, 19)]
    assert mlk[0]["value"] is None and mlk[0]["known_at"] == datetime(2026, 1, 22, 6)


def test_a_day_never_holds_what_was_learned_later(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean)
    get_step("macro").execute(ctx, DAYS[4])  # 2026-02-07: the December UNRATE revision of 2026-02-06 lands here
    rows = dump(sqlite_engine, TABLE)
    assert {"UNRATE", "DGS10"} <= {r[0] for r in rows}
    assert all(datetime(2026, 2, 7) <= r[5] < datetime(2026, 2, 8) for r in rows)
    # ALFRED clips older vintages to the queried start: none of them may be taken as new on this day
    assert all(r[2] == date(2026, 2, 6) for r in rows if r[0] in ("UNRATE", "CPIAUCSL", "FEDFUNDS"))


def test_running_intervals_twice_leaves_identical_tables(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    run(ctx, DAYS[:3])
    first = dump(engine, TABLE)
    run(ctx, DAYS[:3])
    assert dump(engine, TABLE) == first and len(first) > 0


def test_backfill_equals_daily_runs_and_overlapping_chunks(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    whole = Interval(DAYS[0].start, DAYS[-1].end)
    get_step("macro").execute(ctx, whole)
    one_run = dump(engine, TABLE)
    with engine.begin() as conn:
        conn.execute(TABLE.delete())
    run(ctx, DAYS)
    assert dump(engine, TABLE) == one_run
    with engine.begin() as conn:
        conn.execute(TABLE.delete())
    run(ctx, [Interval(utc(2026, 2, 3), utc(2026, 2, 7)), Interval(utc(2026, 2, 5), utc(2026, 2, 10)),
              Interval(utc(2026, 2, 9), utc(2026, 2, 12)), Interval(utc(2026, 2, 4, 6), utc(2026, 2, 6, 12))])
    assert dump(engine, TABLE) == one_run
    assert {r[0] for r in one_run} >= {"UNRATE", "DGS10", "DFF", "DTWEXBGS"}


@pytest.mark.parametrize("fault", ["500", "429", "timeout", "malformed", "drift"])
def test_failed_load_leaves_the_interval_untouched(engine, sandbox_clean, fault):
    ctx = context(engine, sandbox_clean)
    run(ctx, DAYS[:2])
    before = dump(engine, TABLE)
    sandbox_clean.set_faults([{"kind": fault, "count": -1, "path_contains": "/fred/", "retry_after": 0}])
    previous_sleep, sandbox_clean.timeout_sleep = sandbox_clean.timeout_sleep, 0.5
    try:
        failing = context(engine, sandbox_clean, max_retries=1, timeout=0.2)
        with pytest.raises(SourceError):
            get_step("macro").execute(failing, DAYS[1])
    finally:
        sandbox_clean.timeout_sleep = previous_sleep
    assert dump(engine, TABLE) == before


def test_one_failing_series_writes_nothing(tmp_path, sqlite_engine, sandbox_clean):
    good = {"series_id": "UNRATE", "indicator_name": "unemployment_rate", "frequency": "monthly",
            "units": "Percent", "rule": "alfred"}
    bad = {"series_id": "NOSUCHSERIES", "indicator_name": "nothing", "frequency": "daily", "units": "Percent",
           "rule": "lag", "lag_business_days": 1}
    ctx = context(sqlite_engine, sandbox_clean, series_file=series_file(tmp_path, good, bad))
    with pytest.raises(SourceError, match="series does not exist"):
        get_step("macro").execute(ctx, Interval(utc(2026, 2, 1), utc(2026, 3, 1)))  # UNRATE was fetched fine
    assert dump(sqlite_engine, TABLE) == []


def test_empty_answers_write_nothing_and_never_erase(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean)
    sandbox_clean.set_faults([{"kind": "empty", "count": -1, "path_contains": "/fred/"}])
    assert get_step("macro").execute(ctx, DAYS[4]) == 0 and dump(sqlite_engine, TABLE) == []
    sandbox_clean.set_faults([])
    get_step("macro").execute(ctx, DAYS[4])
    before = dump(sqlite_engine, TABLE)
    sandbox_clean.set_faults([{"kind": "empty", "count": -1, "path_contains": "/fred/"}])
    with pytest.raises(MacroDataMissing, match="refusing to erase"):
        get_step("macro").execute(ctx, DAYS[4])
    assert dump(sqlite_engine, TABLE) == before


def test_a_publication_lag_shorter_than_reality_fails_instead_of_dropping_days(tmp_path, sqlite_engine):
    # The sandbox publishes WTI 3 business days late and never serves anything after its clock.
    run_time = datetime(2026, 3, 11, tzinfo=UTC).timestamp()  # the scheduled run of [03-10, 03-11)
    entry = {"series_id": "DCOILWTICO", "indicator_name": "wti_crude_oil", "frequency": "daily",
             "units": "Dollars per Barrel", "rule": "lag", "lag_business_days": 0}
    with SandboxServer(now=lambda: run_time) as server:
        too_short = context(sqlite_engine, server, series_file=series_file(tmp_path, entry))
        with pytest.raises(MacroDataMissing, match="lag_business_days is too short"):
            get_step("macro").execute(too_short, Interval(utc(2026, 3, 10), utc(2026, 3, 11)))
        shipped = context(sqlite_engine, server)  # the shipped rule: 7 business days
        assert get_step("macro").execute(shipped, Interval(utc(2026, 3, 10), utc(2026, 3, 11))) > 0
