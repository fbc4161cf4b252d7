"""On-chain sources against the offline sandbox (synthetic data): blockchain.info and Etherscan
clients with every fault kind, and the onchain_btc / onchain_eth steps on SQLite and MariaDB."""

from __future__ import annotations

import importlib
from datetime import date, datetime, timedelta

import pytest
import requests
from helpers import dump, settings_for, utc
from sqlalchemy import delete, select, text

from cryptoetl.config import UNIVERSE, ConfigError, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders.technical import run_technical
from cryptoetl.sandbox.onchain import PRO_ONLY, QUERY_TIMEOUT, SERVER_BUSY
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources import blockchain_info, etherscan
from cryptoetl.sources.blockchain_info import BlockchainInfoClient
from cryptoetl.sources.etherscan import EtherscanAuthError, EtherscanBusyError, EtherscanClient, EtherscanPlanError
from cryptoetl.sources.http import SourceDataGap, SourceError, SourcePayloadError, SourceRateLimited
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step
from cryptoetl.warehouse import features, schema

PRO_KEY = "sandbox-pro-0123456789"
FREE_KEY = "sandbox-free-0123456789"
D1, D6 = date(2026, 3, 1), date(2026, 3, 6)
FIVE_DAYS = Interval(utc(2026, 3, 1), utc(2026, 3, 6))
DAYS = [Interval(utc(2026, 3, d), utc(2026, 3, d + 1)) for d in range(1, 6)]
CHUNKS = [Interval(utc(2026, 3, 1), utc(2026, 3, 4)), Interval(utc(2026, 3, 3), utc(2026, 3, 6))]
TABLE = schema.crypto_onchain_data
BTC_ONLY = ("active_addresses", "transfer_volume_usd", "output_volume_native", "fees_usd", "miners_revenue_usd",
            "hash_rate", "difficulty")
ETH_ONLY = ("new_addresses", "avg_gas_price_gwei", "block_count", "gas_used", "network_utilization")
# Frozen sandbox clock: 2026-03-04 12:00 UTC, so 2026-03-04 has not ended yet.
FROZEN_NOW = utc(2026, 3, 4, 12).timestamp()


@pytest.fixture
def sb(sandbox_clean):
    """The session sandbox with no HTTP faults and no injected Etherscan errors."""
    api = sandbox_clean.apis["EtherscanApi"]
    api.clear_errors()
    yield sandbox_clean
    api.clear_errors()


@pytest.fixture(scope="module")
def frozen():
    with SandboxServer(now=lambda: FROZEN_NOW) as server:
        yield server


def _sleep(slept):
    return slept.append if slept is not None else (lambda s: None)


def btc(server, slept=None, **kwargs) -> BlockchainInfoClient:
    return BlockchainInfoClient(server.urls()["blockchain_info"], rate_per_minute=60_000, sleep=_sleep(slept),
                                **kwargs)


def eth(server, key=PRO_KEY, plan="pro", slept=None, **kwargs) -> EtherscanClient:
    return EtherscanClient(server.urls()["etherscan"], api_key=key, plan=plan, rate_per_minute=60_000,
                           sleep=_sleep(slept), **kwargs)


def context(engine, server, *, plan="pro", key=PRO_KEY, now=None, **client_kwargs) -> StepContext:
    env = server.env() | {"ETHERSCAN_API_KEY": key, "ETHERSCAN_API_PLAN": plan}
    settings = settings_for(engine, server, source_env=env)
    clients = {BlockchainInfoClient: btc(server, **client_kwargs),
               EtherscanClient: eth(server, key=key, plan=plan, **client_kwargs)}
    if now is None:
        return StepContext(settings=settings, engine=engine, clients=clients)
    return StepContext(settings=settings, engine=engine, clients=clients, clock=lambda: now)


def load(ctx, intervals, steps=("onchain_btc", "onchain_eth")) -> int:
    return sum(get_step(step).execute(ctx, interval) for interval in intervals for step in steps)


def clear(engine):
    with engine.begin() as conn:
        conn.execute(delete(TABLE))


def column(engine, name, symbol):
    return [row[name] for row in (r._mapping for r in _rows(engine)) if row["symbol"] == symbol]


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(TABLE.select().order_by(TABLE.c.symbol, TABLE.c.date)).fetchall()


# ----------------------------------------------------------------------------- blockchain.info client
def test_btc_charts_are_daily_complete_deterministic_and_in_documented_units(sb):
    metrics, synthetic = btc(sb).daily_metrics(D1, D6)
    days = {date(2026, 3, d) for d in range(1, 6)}
    assert synthetic and all(set(values) == days for values in metrics.values())
    assert 1e5 < metrics["transaction_count"][D1] < 3e6
    assert 1e8 < metrics["hash_rate"][D1] < 1e10  # TH/s
    assert 1e13 < metrics["difficulty"][D1] < 1e15
    assert 3e5 < metrics["avg_block_size_bytes"][D1] < 4e6  # MB chart scaled to bytes
    one_day, _ = btc(sb).daily_metrics(date(2026, 3, 3), date(2026, 3, 4))
    assert all(one_day[col][date(2026, 3, 3)] == metrics[col][date(2026, 3, 3)] for col in metrics)
    req = sb.requests[-1]
    assert req["path"] == "/blockchain/charts/avg-block-size"
    assert req["query"]["format"] == "json" and req["query"]["sampled"] == "false"
    assert req["query"]["start"] == "2026-03-03" and req["query"]["timespan"].endswith("days")


def test_btc_429_honours_retry_after(sb):
    sb.set_faults([{"kind": "429", "count": 2, "retry_after": 7, "path_contains": "/charts/"}])
    slept = []
    values, _ = btc(sb, slept).chart("n-transactions", D1, D6)
    assert len(values) == 5 and slept == [7.0, 7.0]
    sb.set_faults([{"kind": "429", "count": -1, "path_contains": "/charts/"}])
    with pytest.raises(SourceRateLimited, match="3 attempts"):
        btc(sb, max_retries=2).chart("n-transactions", D1, D6)


def test_btc_500_backs_off_then_fails(sb):
    sb.set_faults([{"kind": "500", "count": 2, "path_contains": "/charts/"}])
    slept = []
    assert len(btc(sb, slept, backoff_base=1.0).chart("difficulty", D1, D6)[0]) == 5
    assert slept == [1.0, 2.0]
    sb.set_faults([{"kind": "500", "count": -1, "path_contains": "/charts/"}])
    with pytest.raises(SourceError, match="HTTP 500"):
        btc(sb, max_retries=1).chart("difficulty", D1, D6)


def test_btc_timeouts_are_retried_then_fail(sb):
    old, sb.timeout_sleep = sb.timeout_sleep, 0.4
    try:
        sb.set_faults([{"kind": "timeout", "count": 1, "path_contains": "/charts/"}])
        assert len(btc(sb, timeout=0.15).chart("hash-rate", D1, D6)[0]) == 5
        sb.set_faults([{"kind": "timeout", "count": -1, "path_contains": "/charts/"}])
        with pytest.raises(SourceError, match="Timeout"):
            btc(sb, timeout=0.15, max_retries=1).chart("hash-rate", D1, D6)
    finally:
        sb.timeout_sleep = old


@pytest.mark.parametrize("kind,error,message", [
    ("malformed", SourcePayloadError, "not valid JSON"),
    ("drift", SourcePayloadError, "schema changed"),
    ("empty", SourceDataGap, "n-unique-addresses: 2026-03-01, 2026-03-02"),
])
def test_btc_bad_payloads_fail_naming_the_chart(sb, kind, error, message):
    sb.set_faults([{"kind": kind, "count": 1, "path_contains": "/charts/n-unique-addresses"}])
    before = len(sb.requests)
    with pytest.raises(error, match=message):
        btc(sb).daily_metrics(D1, date(2026, 3, 3))
    assert any("n-unique-addresses" in r["path"] for r in sb.requests[before:])


def test_btc_unknown_chart_is_final(sb):
    before = len(sb.requests)
    with pytest.raises(SourceError, match="HTTP 404"):
        btc(sb).chart("no-such-chart", D1, D6)
    assert len(sb.requests) == before + 1


def test_btc_sandbox_serves_no_day_that_has_not_ended(frozen):
    values, _ = btc(frozen).chart("n-transactions", D1, D6)
    assert sorted(values) == [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    with pytest.raises(SourceDataGap, match="2026-03-04, 2026-03-05"):
        btc(frozen).daily_metrics(D1, D6)


def test_btc_client_spaces_calls_at_the_configured_rate(sb):
    assert BlockchainInfoClient.from_settings(Settings()).min_interval == 10.0  # 6 calls a minute
    slept = []
    client = BlockchainInfoClient(sb.urls()["blockchain_info"], rate_per_minute=6, sleep=slept.append,
                                  clock=iter([0.0, 4.0, 10.0]).__next__)
    client.chart("difficulty", D1, D6)
    client.chart("difficulty", D1, D6)  # 4 s after the first: waits the rest of its 10 s slot
    assert slept == [6.0]


# ----------------------------------------------------------------------------- Etherscan client
def test_eth_pro_daily_stats_in_documented_units(sb):
    metrics, synthetic = eth(sb).daily_metrics(D1, D6)
    days = {date(2026, 3, d) for d in range(1, 6)}
    assert synthetic and set(metrics) == set(eth(sb).columns) and all(set(v) == days for v in metrics.values())
    assert 1e5 < metrics["transaction_count"][D1] < 1e7
    assert 6_000 < metrics["block_count"][D1] <= 7_200
    assert 0.01 < metrics["avg_gas_price_gwei"][D1] < 1_000  # wei / 1e9
    assert 0 < metrics["network_utilization"][D1] < 1
    req = sb.requests[-1]
    assert req["path"] == "/etherscan/v2/api"
    assert req["query"] | {"apikey": "-"} == {"chainid": "1", "module": "stats", "action": "dailynetutilization",
                                             "startdate": "2026-03-01", "enddate": "2026-03-05", "sort": "asc",
                                             "apikey": "-"}


def test_eth_free_key_gives_block_counts_from_free_endpoint(sb):
    before = len(sb.requests)
    free, _ = eth(sb, key=FREE_KEY, plan="free").daily_metrics(D1, D6)
    pro, _ = eth(sb).daily_metrics(D1, D6)
    assert set(free) == {"block_count"} and free["block_count"] == pro["block_count"]
    free_calls = [r["query"] for r in sb.requests[before:] if r["query"]["apikey"] == FREE_KEY]
    assert len(free_calls) == 6 and {q["action"] for q in free_calls} == {"getblocknobytime"}
    assert free_calls[0]["timestamp"] == str(int(utc(2026, 3, 1).timestamp()) - 1)


def test_missing_key_or_bad_plan_names_the_setting_before_any_call():
    with pytest.raises(ConfigError, match="ETHERSCAN_API_KEY"):
        EtherscanClient.from_settings(Settings())
    env = {"ETHERSCAN_API_KEY": "k", "ETHERSCAN_API_PLAN": "platinum"}
    with pytest.raises(ConfigError, match="ETHERSCAN_API_PLAN"):
        EtherscanClient.from_settings(Settings(source_env=env))


def test_sandbox_speaks_etherscans_error_shapes(sb):
    url = sb.urls()["etherscan"]
    query = {"chainid": "1", "module": "stats", "action": "dailytx", "startdate": "2026-03-01",
             "enddate": "2026-03-01", "sort": "asc"}
    no_key = requests.get(url, params=query, timeout=5)
    assert no_key.status_code == 200
    assert no_key.json() == {"status": "0", "message": "NOTOK", "result": "Missing/Invalid API Key"}
    bad_key = requests.get(url, params=query | {"apikey": "nope"}, timeout=5).json()
    assert bad_key["status"] == "0" and bad_key["result"].startswith("Invalid API Key")
    free = requests.get(url, params=query | {"apikey": FREE_KEY}, timeout=5).json()
    assert free == {"status": "0", "message": "NOTOK", "result": PRO_ONLY}
    ok = requests.get(url, params=query | {"apikey": PRO_KEY}, timeout=5).json()
    assert ok["status"] == "1" and ok["result"][0]["UTCDate"] == "2026-03-01"


def test_invalid_key_is_final_and_never_shown(sb):
    before = len(sb.requests)
    with pytest.raises(EtherscanAuthError, match="ETHERSCAN_API_KEY") as info:
        eth(sb, key="not-a-real-key").daily_metrics(D1, D6)
    assert "not-a-real-key" not in str(info.value) and len(sb.requests) == before + 1


def test_free_key_on_pro_plan_names_the_plan_setting(sb):
    with pytest.raises(EtherscanPlanError, match="ETHERSCAN_API_PLAN"):
        eth(sb, key=FREE_KEY, plan="pro").daily_metrics(D1, D6)


def test_http_200_rate_limit_answers_are_retried_with_backoff(sb):
    api = sb.apis["EtherscanApi"]
    api.inject_error("Max calls per sec rate limit reached (3/sec)", count=2)
    slept = []
    values, _ = eth(sb, slept=slept, backoff_base=1.0).daily_stat("dailytx", D1, D6)
    assert len(values) == 5 and slept == [1.0, 2.0]
    api.inject_error("Max rate limit reached", count=-1)
    with pytest.raises(SourceRateLimited, match="3 attempts"):
        eth(sb, max_retries=2).daily_stat("dailytx", D1, D6)
    api.clear_errors()
    api.inject_error("Max daily rate limit reached. 100000 (100%)", count=-1)
    before = len(sb.requests)
    with pytest.raises(SourceRateLimited, match="00:00 UTC"):
        eth(sb).daily_stat("dailytx", D1, D6)
    assert len(sb.requests) == before + 1  # retrying within the task cannot help


def _stats_query(day: date, action: str = "dailytx") -> dict:
    return {"chainid": "1", "module": "stats", "action": action, "startdate": day.isoformat(),
            "enddate": day.isoformat(), "sort": "asc", "apikey": PRO_KEY}


def test_sandbox_answers_transient_notok_now_and_then_by_default(sb):
    url, api = sb.urls()["etherscan"], sb.apis["EtherscanApi"]
    queries = [_stats_query(date(2026, 1, 1 + d), action) for d in range(20)
               for action in ("dailytx", "dailygasused")]
    first = [requests.get(url, params=q, timeout=5).json() for q in queries]
    again = [requests.get(url, params=q, timeout=5).json() for q in queries]
    transient = [a for a in first if a["status"] == "0"]
    assert transient and len(transient) < len(queries) / 2  # now and then
    shapes = [{k: a[k] for k in ("message", "result")} for a in transient]  # the two recorded shapes
    assert {"message": "NOTOK", "result": QUERY_TIMEOUT} in shapes
    assert {"message": SERVER_BUSY, "result": None} in shapes
    assert all(a["status"] == "1" for a in again)  # transient: the same query answers when asked again
    api.clear_errors()  # deterministic: the same queries, the same transient answers
    assert [requests.get(url, params=q, timeout=5).json() for q in queries] == first
    api.clear_errors()
    api.transient_every = 0
    try:
        assert all(requests.get(url, params=q, timeout=5).json()["status"] == "1" for q in queries)
    finally:
        api.transient_every = 8


def test_transient_notok_answers_are_retried_within_the_task(sb):
    slept = []
    before = len(sb.requests)
    metrics, _ = eth(sb, slept=slept).daily_metrics(date(2026, 1, 1), date(2026, 2, 1))  # 8 calls, default sandbox
    answers = len(sb.requests) - before
    backoffs = [s for s in slept if s >= 0.5]  # not the client's call spacing
    assert answers > len(metrics) == 8 and backoffs == [1.0] * (answers - 8)  # each transient: one retry, one backoff
    assert all(len(values) == 31 for values in metrics.values())
    api = sb.apis["EtherscanApi"]
    api.inject_error(SERVER_BUSY, count=2, action="dailytx")
    slept.clear()
    assert len(eth(sb, slept=slept, backoff_base=1.0).daily_stat("dailytx", D1, D6)[0]) == 5
    assert [s for s in slept if s >= 0.5][:2] == [1.0, 2.0]  # exponential backoff


@pytest.mark.parametrize("answer", [QUERY_TIMEOUT, SERVER_BUSY])
def test_a_transient_answer_that_persists_fails_naming_it(sb, answer):
    sb.apis["EtherscanApi"].inject_error(answer, count=-1)
    before = len(sb.requests)
    with pytest.raises(EtherscanBusyError, match="giving up after 3 attempts") as info:
        eth(sb, max_retries=2).daily_stat("dailytx", D1, D6)
    assert answer[:30] in str(info.value) and len(sb.requests) == before + 3
    assert PRO_KEY not in str(info.value)


def test_other_notok_answers_are_final(sb):
    sb.apis["EtherscanApi"].transient_every = 0
    try:
        before = len(sb.requests)
        with pytest.raises(SourceError, match="chainid"):
            eth(sb, chain_id=5).daily_stat("dailytx", D1, D6)
        assert len(sb.requests) == before + 1
        sb.apis["EtherscanApi"].inject_error("Error! Invalid date format, use yyyy-MM-dd", count=-1)
        with pytest.raises(SourceError, match="Invalid date format") as info:
            eth(sb).daily_stat("dailytx", D1, D6)
        assert len(sb.requests) == before + 2 and not isinstance(info.value, EtherscanBusyError)
    finally:
        sb.apis["EtherscanApi"].transient_every = 8


def test_eth_429_honours_retry_after(sb):
    sb.set_faults([{"kind": "429", "count": 1, "retry_after": 5, "path_contains": "/etherscan/"}])
    slept = []
    assert len(eth(sb, slept=slept).daily_stat("dailytx", D1, D6)[0]) == 5 and slept == [5.0]
    sb.set_faults([{"kind": "429", "count": -1, "path_contains": "/etherscan/"}])
    with pytest.raises(SourceRateLimited, match="HTTP 429"):
        eth(sb, max_retries=1).daily_stat("dailytx", D1, D6)


def test_eth_500_and_timeouts_are_retried_and_the_key_stays_hidden(sb):
    sb.set_faults([{"kind": "500", "count": 1, "path_contains": "/etherscan/"}])
    assert len(eth(sb).daily_stat("dailytx", D1, D6)[0]) == 5
    sb.set_faults([{"kind": "500", "count": -1, "path_contains": "/etherscan/"}])
    with pytest.raises(SourceError, match="HTTP 500") as info:
        eth(sb, max_retries=1).daily_stat("dailytx", D1, D6)
    assert PRO_KEY not in str(info.value)
    old, sb.timeout_sleep = sb.timeout_sleep, 0.4
    try:
        sb.set_faults([{"kind": "timeout", "count": 1, "path_contains": "/etherscan/"}])
        assert len(eth(sb, timeout=0.15).daily_stat("dailytx", D1, D6)[0]) == 5
        sb.set_faults([{"kind": "timeout", "count": -1, "path_contains": "/etherscan/"}])
        with pytest.raises(SourceError, match="Timeout") as info:
            eth(sb, timeout=0.15, max_retries=1).daily_stat("dailytx", D1, D6)
        assert PRO_KEY not in str(info.value)
    finally:
        sb.timeout_sleep = old


@pytest.mark.parametrize("plan,kind,error,message", [
    ("pro", "malformed", SourcePayloadError, "not valid JSON"),
    ("pro", "drift", SourcePayloadError, "schema changed"),
    ("pro", "empty", SourceDataGap, "dailytx: 2026-03-01"),
    ("free", "malformed", SourcePayloadError, "not valid JSON"),
    ("free", "drift", SourcePayloadError, "schema changed"),
    ("free", "empty", SourceError, "No closest block found"),
])
def test_eth_bad_payloads_fail_clearly(sb, plan, kind, error, message):
    sb.set_faults([{"kind": kind, "count": 1, "path_contains": "/etherscan/"}])
    key = PRO_KEY if plan == "pro" else FREE_KEY
    with pytest.raises(error, match=message):
        eth(sb, key=key, plan=plan).daily_metrics(D1, D6)


# ----------------------------------------------------------------------------- steps
def test_running_an_interval_twice_leaves_identical_rows(engine, sb):
    ctx = context(engine, sb)
    assert load(ctx, [FIVE_DAYS]) == 10
    first = dump(engine, TABLE)
    assert load(ctx, [FIVE_DAYS]) == 10
    assert dump(engine, TABLE) == first and len(first) == 10


def test_backfill_equals_daily_runs_and_overlapping_chunks(engine, sb):
    ctx = context(engine, sb)
    load(ctx, [FIVE_DAYS])
    one_run = dump(engine, TABLE)
    clear(engine)
    load(ctx, DAYS)
    assert dump(engine, TABLE) == one_run
    clear(engine)
    load(ctx, CHUNKS)
    assert dump(engine, TABLE) == one_run and len(one_run) == 2 * 5


@pytest.mark.parametrize("step,fault", [
    ("onchain_btc", {"kind": "malformed", "path_contains": "/charts/difficulty"}),
    ("onchain_btc", {"kind": "drift", "path_contains": "/charts/miners-revenue"}),
    ("onchain_btc", {"kind": "empty", "path_contains": "/charts/avg-block-size"}),
    ("onchain_btc", {"kind": "500", "count": -1, "path_contains": "/charts/hash-rate"}),
    ("onchain_eth", {"kind": "malformed", "path_contains": "/etherscan/"}),
    ("onchain_eth", {"kind": "drift", "path_contains": "/etherscan/"}),
    ("onchain_eth", {"kind": "empty", "path_contains": "/etherscan/"}),
    ("onchain_eth", {"kind": "429", "count": -1, "path_contains": "/etherscan/"}),
    ("onchain_eth", {"etherscan": "Max rate limit reached", "action": "dailynetutilization"}),
])
def test_a_failing_metric_leaves_the_interval_untouched(engine, sb, step, fault):
    ctx = context(engine, sb)
    load(ctx, [FIVE_DAYS])
    before = dump(engine, TABLE)
    if "etherscan" in fault:  # the last action fails after seven succeeded: still nothing written
        sb.apis["EtherscanApi"].inject_error(fault["etherscan"], count=-1, action=fault["action"])
    else:
        sb.set_faults([fault])
    failing = context(engine, sb, max_retries=1)
    with pytest.raises(SourceError):
        get_step(step).execute(failing, DAYS[2])
    assert dump(engine, TABLE) == before


def test_missing_metrics_are_null_never_zero_and_rows_are_labelled(engine, sb):
    load(context(engine, sb), [DAYS[0]])
    btc_row, eth_row = (r._mapping for r in _rows(engine))
    assert btc_row["data_source"] == "blockchain.info-sandbox-synthetic" and btc_row["is_synthetic"]
    assert eth_row["data_source"] == "etherscan-pro-sandbox-synthetic" and eth_row["is_synthetic"]
    assert all(eth_row[c] is None for c in BTC_ONLY) and all(btc_row[c] is None for c in ETH_ONLY)
    assert all(btc_row[c] > 0 for c in BTC_ONLY) and all(eth_row[c] > 0 for c in ETH_ONLY)
    # usable from the next midnight + each source's publication delay
    assert btc_row["complete_at"] == datetime(2026, 3, 2) + blockchain_info.PUBLICATION_DELAY
    assert eth_row["complete_at"] == datetime(2026, 3, 2) + etherscan.PUBLICATION_DELAY


def test_eth_free_plan_writes_block_counts_and_nulls_without_touching_btc(sqlite_engine, sb):
    load(context(sqlite_engine, sb), [FIVE_DAYS])
    btc_before = [r for r in dump(sqlite_engine, TABLE) if r[0] == "BTC"]
    pro_blocks = column(sqlite_engine, "block_count", "ETH")
    get_step("onchain_eth").execute(context(sqlite_engine, sb, plan="free", key=FREE_KEY), FIVE_DAYS)
    assert [r for r in dump(sqlite_engine, TABLE) if r[0] == "BTC"] == btc_before
    assert column(sqlite_engine, "block_count", "ETH") == pro_blocks
    assert set(column(sqlite_engine, "data_source", "ETH")) == {"etherscan-free-sandbox-synthetic"}
    for name in ("transaction_count", "new_addresses", "fees_native", "gas_used", "avg_gas_price_gwei"):
        assert column(sqlite_engine, name, "ETH") == [None] * 5


def test_features_use_a_loaded_day_only_from_its_source_publication_delay(engine, sb):
    """Through the loader: each source's day D is stored with complete_at = D+1 + its delay, and
    the features of an hour before that still show day D-1 (with its age); from it, day D."""
    load(context(engine, sb), [DAYS[0], DAYS[1]])  # 03-01 and 03-02
    start, end = datetime(2026, 3, 3), datetime(2026, 3, 4)
    prices = [{"symbol": symbol, "time": start + timedelta(hours=h), "price": 1.0, "market_cap": None,
               "total_volume": None, "source": "sandbox-synthetic"} for symbol in ("BTC", "ETH") for h in range(24)]
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), prices)
    run_technical(StepContext(settings_for(engine, symbols=UNIVERSE[:2]), engine),  # the features read its rows
                  Interval(utc(2026, 3, 3), utc(2026, 3, 4)))
    features.rebuild(engine, start, end, ["BTC", "ETH"])
    onchain = {(r["symbol"], r["date"]): r for r in (r._mapping for r in _rows(engine))}
    table = schema.ml_features_materialized
    for symbol, delay in (("BTC", blockchain_info.PUBLICATION_DELAY), ("ETH", etherscan.PUBLICATION_DELAY)):
        assert timedelta(hours=1) <= delay < timedelta(days=1)
        assert onchain[symbol, date(2026, 3, 2)]["complete_at"] == start + delay
        with engine.connect() as conn:
            got = {(r.time if isinstance(r.time, datetime) else datetime.fromisoformat(str(r.time))): r
                   for r in conn.execute(select(table.c.time, table.c.onchain_transaction_count,
                                                table.c.onchain_age_days).where(table.c.symbol == symbol))}
        for hour in (start, start + delay - timedelta(hours=1)):  # day 03-02 has ended, not yet published
            assert got[hour].onchain_transaction_count == onchain[symbol, date(2026, 3, 1)]["transaction_count"]
            assert got[hour].onchain_age_days == pytest.approx(2 + (hour - start) / timedelta(days=1))
        for hour in (start + delay, end - timedelta(hours=1)):
            assert got[hour].onchain_transaction_count == onchain[symbol, date(2026, 3, 2)]["transaction_count"]
            assert got[hour].onchain_age_days == pytest.approx(1 + (hour - start) / timedelta(days=1))


def test_every_onchain_source_states_a_publication_delay_the_features_cover():
    """A source writing crypto_onchain_data defines its PUBLICATION_DELAY once, next to its SPEC; the
    features' lookahead after an on-chain change covers delays up to ONCHAIN_MAX_DELAY_HOURS."""
    from cryptoetl.sources import registry
    from cryptoetl.warehouse.features import onchain as onchain_features

    writers = [spec for spec in registry.sources() if any(s.writes == TABLE.name for s in spec.steps)]
    assert {spec.name for spec in writers} >= {"blockchain_info", "etherscan"}
    for spec in writers:
        delay = importlib.import_module(f"cryptoetl.sources.{spec.name}").PUBLICATION_DELAY
        assert timedelta(0) < delay <= timedelta(hours=onchain_features.ONCHAIN_MAX_DELAY_HOURS), spec.name
    assert onchain_features.LOOKAHEAD_HOURS[TABLE.name] == \
        onchain_features.ONCHAIN_MAX_AGE_DAYS * 24 + onchain_features.ONCHAIN_MAX_DELAY_HOURS


def test_onchain_metrics_view_returns_the_rows(engine, sb):
    load(context(engine, sb), [DAYS[0], DAYS[1]])
    with engine.connect() as conn:
        rows = [r._mapping for r in conn.execute(text(
            f"SELECT * FROM {schema.ONCHAIN_VIEW} ORDER BY symbol, date"))]
    assert [(r["symbol"], str(r["date"])[:10]) for r in rows] == [
        ("BTC", "2026-03-01"), ("BTC", "2026-03-02"), ("ETH", "2026-03-01"), ("ETH", "2026-03-02")]
    assert str(rows[0]["available_at"]).startswith(str(datetime(2026, 3, 2) + blockchain_info.PUBLICATION_DELAY))
    assert rows[0]["hash_rate"] > 0 and rows[2]["hash_rate"] is None
    assert "complete_at" not in rows[0] and {c.name for c in TABLE.columns} - {"complete_at"} <= set(rows[0])


def test_interval_reaching_into_today_stores_only_completed_days(sqlite_engine, sb, frozen):
    # Loaded earlier with a free key: rows for 03-04 and 03-05 must survive the partial rerun.
    get_step("onchain_eth").execute(context(sqlite_engine, sb, plan="free", key=FREE_KEY), FIVE_DAYS)
    ctx = context(sqlite_engine, frozen, now=FROZEN_NOW)
    assert load(ctx, [FIVE_DAYS]) == 2 * 3  # 03-01 .. 03-03 have ended, 03-04 has not
    rows = [r._mapping for r in _rows(sqlite_engine)]
    assert [str(r["date"]) for r in rows if r["symbol"] == "BTC"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert [r["data_source"].split("-")[1] for r in rows if r["symbol"] == "ETH"] == ["pro"] * 3 + ["free"] * 2
    assert max(r["complete_at"] for r in rows if r["data_source"].startswith("blockchain")) == \
        datetime(2026, 3, 4) + blockchain_info.PUBLICATION_DELAY
    before = dump(sqlite_engine, TABLE)
    assert load(ctx, [Interval(utc(2026, 3, 4), utc(2026, 3, 6))]) == 0  # no day has ended
    assert dump(sqlite_engine, TABLE) == before


def test_intervals_must_be_whole_days(sqlite_engine, sb):
    with pytest.raises(ConfigError, match="00:00 UTC"):
        get_step("onchain_btc").execute(context(sqlite_engine, sb), Interval(utc(2026, 3, 1, 6), utc(2026, 3, 2)))


def test_missing_key_fails_the_step_naming_the_setting_and_writes_nothing(sqlite_engine, sb):
    settings = settings_for(sqlite_engine, sb, source_env=(sb.env()))
    ctx = StepContext(settings=settings, engine=sqlite_engine)  # the step builds its own client
    with pytest.raises(ConfigError, match="ETHERSCAN_API_KEY"):
        get_step("onchain_eth").execute(ctx, DAYS[0])
    assert dump(sqlite_engine, TABLE) == []


def test_symbols_outside_the_universe_are_not_loaded(sqlite_engine, sb):
    from cryptoetl.config import UNIVERSE

    ctx = context(sqlite_engine, sb)
    ctx.settings = settings_for(sqlite_engine, sb, symbols=UNIVERSE[1:3], source_env=ctx.settings.source_env)
    assert get_step("onchain_btc").execute(ctx, DAYS[0]) == 0 and get_step("onchain_eth").execute(ctx, DAYS[0]) == 1
