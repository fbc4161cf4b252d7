"""Quota-aware history loads: landed 90-day blocks, shared call slots, the monthly budget and the
plan's history limit, through the prices step against the sandbox (synthetic data)."""

from __future__ import annotations

import math
import threading

import pandas as pd
import pytest
from helpers import dump, settings_for, utc
from sqlalchemy import select

from cryptoetl.config import ConfigError
from cryptoetl.intervals import Interval
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources.coingecko import CoinGeckoClient, CoinGeckoHistoryError
from cryptoetl.sources.http import SourceError
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import landing, quota, schema

NOW = utc(2026, 3, 20, 0, 30)
CHART = ("coingecko", "/coins/{coin}/market_chart/range")


def context(engine, sandbox, source_env=None, options=(), **client_kwargs):
    settings = settings_for(engine, sandbox, source_env=source_env)
    client = CoinGeckoClient(sandbox.base_url, rate_per_minute=60_000, sleep=lambda s: None, **client_kwargs)
    return StepContext(settings=settings, engine=engine, clients={CoinGeckoClient: client},
                       clock=NOW.timestamp, options=frozenset(options))


def chart_calls(sandbox) -> int:
    return sandbox.stats().get(CHART[0], {}).get(CHART[1], 0)


def days(first, n):
    return [Interval(utc(2026, 1, 1) + (first + i) * (utc(2026, 1, 2) - utc(2026, 1, 1)),
                     utc(2026, 1, 1) + (first + i + 1) * (utc(2026, 1, 2) - utc(2026, 1, 1))) for i in range(n)]


def test_a_day_by_day_history_load_pays_each_block_once_and_equals_one_run(engine, sandbox_clean):
    ctx = context(engine, sandbox_clean)
    sandbox_clean.reset_stats()
    runs = days(40, 30)  # 2026-02-10 .. 2026-03-12: crosses a 90-day block boundary (2026-03-08)
    for interval in runs:
        get_step("prices").execute(ctx, interval)
    coins = len(ctx.settings.symbols)
    assert chart_calls(sandbox_clean) <= coins * (math.ceil(30 / 90) + 1)
    day_by_day = dump(engine, schema.price_data_real)
    get_step("prices").execute(ctx, Interval(runs[0].start, runs[-1].end))  # the same range in one run
    assert dump(engine, schema.price_data_real) == day_by_day and len(day_by_day) > 0.9 * coins * 30 * 24
    assert chart_calls(sandbox_clean) <= coins * 2  # and read from the landing store, not called again


def test_a_retry_does_not_pay_again_for_the_coins_already_landed(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean, max_retries=0)
    sandbox_clean.set_faults([{"kind": "500", "count": -1, "path_contains": "/solana/"}])
    sandbox_clean.reset_stats()
    with pytest.raises(SourceError, match="HTTP 500"):
        get_step("prices").execute(ctx, days(70, 1)[0])
    assert dump(sqlite_engine, schema.price_data_real) == []  # no partial interval
    first = chart_calls(sandbox_clean)
    sandbox_clean.set_faults([])
    get_step("prices").execute(ctx, days(70, 1)[0])
    assert chart_calls(sandbox_clean) - first == 1  # only solana's block: bitcoin's and ethereum's were landed
    assert {row[0] for row in dump(sqlite_engine, schema.price_data_real)} == {c.symbol for c in ctx.settings.symbols}


def test_the_monthly_budget_refuses_a_run_before_any_call(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean, source_env={"COINGECKO_MONTHLY_CALLS": "4"})
    before = len(sandbox_clean.requests)
    with pytest.raises(quota.BudgetExceeded, match=r"needs 6 calls, and 0 of the 4-call monthly budget "
                                                     r"\(COINGECKO_MONTHLY_CALLS\)") as info:
        get_step("prices").execute(ctx, Interval(utc(2026, 3, 1), utc(2026, 3, 10)))  # 3 coins x 2 blocks
    assert "Nothing was called" in str(info.value) and len(sandbox_clean.requests) == before


def test_a_range_beyond_the_plan_fails_before_any_call(sqlite_engine):
    with SandboxServer(now=NOW.timestamp) as server:
        ctx = context(sqlite_engine, server)
        with pytest.raises(CoinGeckoHistoryError, match="public plan serves the last 365 days"):
            get_step("prices").execute(ctx, Interval(utc(2025, 3, 1), utc(2025, 3, 2)))
        assert server.requests == []


def test_a_client_on_another_plan_than_the_settings_is_refused_before_any_call(sqlite_engine):
    """The planner reads the plan from the settings (production builds the client from them): a pro
    client under settings naming none (public) would plan the public window and fetch nothing older."""
    with SandboxServer(now=NOW.timestamp, require_key="pro") as server:
        ctx = context(sqlite_engine, server, api_key="CG-x", plan="pro")
        with pytest.raises(ConfigError, match="client is on the pro plan but the settings name the public plan"):
            get_step("prices").execute(ctx, Interval(utc(2025, 1, 1), utc(2025, 1, 2)))
        assert server.requests == []


def test_the_call_count_is_kept_per_month_and_logged(sqlite_engine, sandbox_clean, caplog):
    ctx = context(sqlite_engine, sandbox_clean)
    ctx.clients[CoinGeckoClient].limiter = quota.WarehouseLimiter(sqlite_engine, clock=NOW.timestamp)
    with caplog.at_level("INFO"):
        get_step("prices").execute(ctx, days(70, 1)[0])
    assert quota.calls_this_month(sqlite_engine, "coingecko", NOW.timestamp()) == 3
    assert "3 CoinGecko calls" in caplog.text


def test_call_slots_are_shared_by_every_limiter_of_the_warehouse(engine):
    """Two processes (two limiters, two connections) at 600 calls a minute: 0.1 s apart together."""
    limiters = [quota.WarehouseLimiter(engine, clock=lambda: 1000.0) for _ in range(2)]
    waits: list[float] = []
    lock = threading.Lock()

    def book(limiter):
        for _ in range(5):
            wait = limiter.reserve("coingecko", 0.1)
            with lock:
                waits.append(round(wait, 6))

    threads = [threading.Thread(target=book, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [round(0.1 * i, 6) for i in range(10)]  # every slot once, none shared
    assert quota.calls_this_month(engine, "coingecko", 1000.0) == 10


def test_a_block_being_fetched_by_another_run_is_waited_for_not_fetched_again(sqlite_engine):
    fetch = landing.Fetch("bitcoin", utc(2026, 2, 13), utc(2026, 2, 13), utc(2026, 3, 1), utc(2026, 2, 13),
                          utc(2026, 3, 1))
    assert landing.claim(sqlite_engine, fetch, NOW, quota_ttl()) == "claimed"
    assert landing.claim(sqlite_engine, fetch, NOW, quota_ttl()) == "busy"
    import pandas as pd

    points = pd.DataFrame({"ts": pd.to_datetime(["2026-02-20 10:01"], utc=True), "price": [1.0],
                           "market_cap": [2.0], "total_volume": [None]})
    landing.land(sqlite_engine, fetch, points, synthetic=True, fetched_at=NOW, covered=(fetch.lo, fetch.hi))
    assert landing.claim(sqlite_engine, fetch, NOW, quota_ttl()) == "done"
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(schema.coingecko_chart_blocks.c.claimed_until)).scalar() is None
    # a claim left by a killed run expires
    other = landing.Fetch("ethereum", fetch.block_start, fetch.lo, fetch.hi, fetch.need_lo, fetch.need_hi)
    assert landing.claim(sqlite_engine, other, NOW, quota_ttl()) == "claimed"
    assert landing.claim(sqlite_engine, other, NOW + 2 * quota_ttl(), quota_ttl()) == "claimed"


def quota_ttl():
    from cryptoetl.loaders.prices import CLAIM_TTL

    return CLAIM_TTL


def test_the_quota_command_prints_the_month_and_what_a_range_would_cost(sqlite_engine, sandbox_clean, monkeypatch,
                                                                        capsys):
    from cryptoetl import cli

    url = sqlite_engine.url.render_as_string(hide_password=False)
    for name, value in {"CRYPTOETL_WAREHOUSE_URL": url, "CRYPTOETL_SYMBOLS": "BTC,ETH",
                        "COINGECKO_BASE_URL": sandbox_clean.base_url, "COINGECKO_API_PLAN": "demo",
                        "COINGECKO_API_KEY": "CG-test", "COINGECKO_MONTHLY_CALLS": "3"}.items():
        monkeypatch.setenv(name, value)
    before = len(sandbox_clean.requests)
    assert cli.main(["quota", "--start", "2026-03-01", "--end", "2026-03-10"]) == 0
    out = capsys.readouterr().out
    assert "demo plan: 0 calls in" in out and "3-call budget (3 left)" in out
    assert "2 coins, 4 calls for the blocks not landed yet (2.0 per coin" in out  # two blocks each
    assert "exceeds the budget by 1" in out and len(sandbox_clean.requests) == before  # it calls nothing


def test_a_day_inside_the_plan_window_loads_although_its_block_starts_before_it(sqlite_engine):
    """Public plan, 365 days: 2025-03-25 is inside, its block (from 2025-03-13) is not: the call is
    clipped to what the plan serves instead of failing with CoinGecko's 10012."""
    with SandboxServer(now=NOW.timestamp) as server:
        ctx = context(sqlite_engine, server)
        assert get_step("prices").execute(ctx, Interval(utc(2025, 3, 25), utc(2025, 3, 26))) > 0
        assert all(int(r["query"]["from"]) >= (NOW.timestamp() - 365 * 86400) for r in server.requests)
        with pytest.raises(CoinGeckoHistoryError):  # and a day before the window fails before any call
            get_step("prices").execute(ctx, Interval(utc(2025, 3, 19), utc(2025, 3, 20)))


def test_a_block_reaching_back_before_hourly_data_is_fetched_from_the_run_start(sqlite_engine):
    """The sandbox answers daily points for ranges starting before 2023-07-01 (HOURLY_SINCE); the block
    of 2023-07-10 starts on 2023-06-22: the step asks again from its own start, never stores daily rows."""
    with SandboxServer(now=NOW.timestamp, require_key="pro") as server:
        ctx = context(sqlite_engine, server, source_env={"COINGECKO_API_PLAN": "pro", "COINGECKO_API_KEY": "CG-x"},
                      api_key="CG-x", plan="pro")
        rows = get_step("prices").execute(ctx, Interval(utc(2023, 7, 10), utc(2023, 7, 11)))
        assert 0.9 * 3 * 24 <= rows <= 3 * 24


def test_a_young_block_asked_from_a_fraction_of_a_second_lands_without_duplicates(engine, sandbox_clean):
    now = utc(2026, 3, 9, 12, 0, 0) + (utc(2026, 3, 9, 0, 0, 1) - utc(2026, 3, 9)) / 2  # 12:00:00.5
    ctx = context(engine, sandbox_clean, options=["refetch"])
    ctx.clock = now.timestamp
    for _ in range(2):  # the block of 2026-03-08 is younger than two days: asked from now - 2 d
        get_step("prices").execute(ctx, Interval(utc(2026, 3, 8), utc(2026, 3, 9)))
    assert len(dump(engine, schema.price_data_real)) > 0.9 * 3 * 24


def test_points_keep_their_milliseconds_on_every_backend(engine):
    import pandas as pd

    from cryptoetl.sources.coingecko import to_hours

    stamps = pd.to_datetime(["2026-03-01 00:05:00.400", "2026-03-01 01:04:59.900"], utc=True)
    points = pd.DataFrame({"ts": stamps, "price": [1.0, 2.0], "market_cap": None, "total_volume": None})
    fetch = landing.Fetch("bitcoin", utc(2026, 2, 13), utc(2026, 2, 13), utc(2026, 3, 2), utc(2026, 2, 13),
                          utc(2026, 3, 2))
    landing.land(engine, fetch, points, synthetic=True, fetched_at=NOW, covered=(fetch.lo, fetch.hi))
    landed, _ = landing.read_points(engine, "bitcoin", utc(2026, 3, 1), utc(2026, 3, 2))
    assert landed["ts"].tolist() == stamps.tolist()
    rows = to_hours(landed, utc(2026, 3, 1), utc(2026, 3, 1, 3), "test")
    assert rows["time"].dt.hour.tolist() == [1] and rows["price"].tolist() == [2.0]  # :05:00.4 is past the bound


def test_an_interval_that_is_not_over_is_refused(sqlite_engine, sandbox_clean):
    from cryptoetl.sources.http import SourceDataGap

    ctx = context(sqlite_engine, sandbox_clean)  # the clock: 2026-03-20 00:30
    with pytest.raises(SourceDataGap, match="is not over"):
        get_step("prices").execute(ctx, Interval(utc(2026, 3, 19, 12), utc(2026, 3, 20, 12)))
    assert dump(sqlite_engine, schema.price_data_real) == []


def test_a_429_holds_every_process_off_for_its_retry_after(sqlite_engine):
    clock = [1000.0]
    limiter = quota.WarehouseLimiter(sqlite_engine, clock=lambda: clock[0])
    assert limiter.reserve("coingecko", 2.0) == 0
    limiter.hold("coingecko", 119)  # one task got a 429 with Retry-After: 119
    other = quota.WarehouseLimiter(sqlite_engine, clock=lambda: clock[0])
    assert other.reserve("coingecko", 2.0) == 119


def test_a_monthly_budget_is_refused_where_no_step_checks_it():
    from cryptoetl.config import ConfigError, Settings
    from cryptoetl.sources import registry

    with pytest.raises(ConfigError, match="ETHERSCAN_MONTHLY_CALLS is set, but no Etherscan step checks"):
        registry.get("etherscan").resolve(Settings(source_env={"ETHERSCAN_MONTHLY_CALLS": "100"}))
    with pytest.raises(ConfigError, match="COINGECKO_MONTHLY_CALLS='ten'"):
        registry.get("coingecko").resolve(Settings(source_env={"COINGECKO_MONTHLY_CALLS": "ten"}))
    budget = registry.get("coingecko").resolve(Settings(source_env={"COINGECKO_API_PLAN": "demo"})).monthly_calls
    assert budget == 10_000


def test_an_answer_missing_a_span_never_erases_the_landed_points(sqlite_engine):
    import pandas as pd

    fetch = landing.Fetch("bitcoin", utc(2026, 2, 13), utc(2026, 2, 13), utc(2026, 3, 2), utc(2026, 2, 13),
                          utc(2026, 3, 2))

    def answer(*hours: int, price: float) -> pd.DataFrame:
        ts = pd.to_datetime([f"2026-03-01 {h:02d}:01" for h in hours], utc=True)
        return pd.DataFrame({"ts": ts, "price": price, "market_cap": None, "total_volume": None})

    landing.land(sqlite_engine, fetch, answer(1, 2, 3, price=1.0), synthetic=True, fetched_at=NOW,
                 covered=(fetch.lo, fetch.hi))
    landing.land(sqlite_engine, fetch, answer(1, 3, price=2.0), synthetic=True, fetched_at=NOW,
                 covered=(fetch.lo, fetch.hi))  # a later answer lacks 02:01 and revises the others
    landed, _ = landing.read_points(sqlite_engine, "bitcoin", utc(2026, 3, 1), utc(2026, 3, 2))
    assert landed["price"].tolist() == [2.0, 1.0, 2.0]


@pytest.mark.parametrize("env,every", [
    ({"COINGECKO_API_PLAN": "pro", "CRYPTOETL_UNIVERSE": "top:320"}, 1),  # 10,912 calls a day of 500,000 a month
    ({"COINGECKO_API_PLAN": "demo"}, 1),  # the 10 packaged coins: 7,440 calls a month of 10,000
    ({"COINGECKO_API_PLAN": "demo", "CRYPTOETL_UNIVERSE": "top:320"}, None),  # not even twice a day
    ({"CRYPTOETL_UNIVERSE": "top:320"}, 6),  # public: 5 calls a minute, 70 min of calls a run
])
def test_the_intraday_cadence_is_the_fastest_the_quota_allows(env, every):
    from cryptoetl.config import Settings
    from cryptoetl.sources.coingecko import intraday_cron

    cron, why = intraday_cron(Settings.from_env({**env, "COINGECKO_API_KEY": "CG-x"}))
    assert cron == {None: None, 1: "0 * * * *"}.get(every, f"0 */{every} * * *")
    assert why.startswith("off" if every is None else f"every {every} h")


def test_hourly_runs_write_the_rows_of_the_daily_run_for_one_call_per_coin_each(engine, sandbox_clean):
    hour = utc(2026, 1, 1, 1) - utc(2026, 1, 1)
    hours = [Interval(utc(2026, 3, 12) + h * hour, utc(2026, 3, 12) + (h + 1) * hour) for h in range(24)]
    ctx = context(engine, sandbox_clean)
    ctx.clock = utc(2026, 3, 12, 0, 1).timestamp
    get_step("prices").execute(ctx, days(69, 1)[0])  # the day before, run at its end: landed up to 00:01
    sandbox_clean.reset_stats()
    for interval in hours:  # each run at the end of its hour, as the scheduler starts it
        ctx.clock = (interval.end + (utc(2026, 1, 1, 0, 1) - utc(2026, 1, 1))).timestamp
        get_step("prices_hourly").execute(ctx, interval)
    hourly = dump(engine, schema.price_data_real)
    assert chart_calls(sandbox_clean) == 3 * 24  # one call per coin per run, for the newest points only
    assert all(int(r["query"]["to"]) - int(r["query"]["from"]) <= 3 * 86400 for r in sandbox_clean.requests[-72:])
    get_step("prices").execute(ctx, days(70, 1)[0])  # the daily run of the same day: nothing to call
    assert dump(engine, schema.price_data_real) == hourly and chart_calls(sandbox_clean) == 3 * 24


def test_calls_end_at_the_last_whole_hour_so_no_live_point_is_landed(sqlite_engine, sandbox_clean):
    ctx = context(sqlite_engine, sandbox_clean)
    ctx.clock = utc(2026, 3, 12, 0, 40).timestamp  # 40 minutes into the hour after the interval
    get_step("prices_hourly").execute(ctx, Interval(utc(2026, 3, 11, 23), utc(2026, 3, 12)))
    assert int(sandbox_clean.requests[-1]["query"]["to"]) == int(utc(2026, 3, 12).timestamp())
    landed, _ = landing.read_points(sqlite_engine, "bitcoin", utc(2026, 3, 11), utc(2026, 3, 13))
    assert landed["ts"].max() <= pd.Timestamp(utc(2026, 3, 12))


def test_a_manual_run_of_an_hourly_twin_the_quota_turned_off_says_why():
    from cryptoetl.airflow.operators import resolve_intervals
    from cryptoetl.config import ConfigError

    now = utc(2026, 3, 12, 15, 44, 11)
    with pytest.raises(ConfigError, match="data interval is empty .* Run or backfill the daily DAG instead"):
        resolve_intervals({"data_interval_start": now, "data_interval_end": now}, get_step("prices_hourly"))
