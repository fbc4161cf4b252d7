"""The real CoinGecko client against the offline sandbox (synthetic data), every fault included."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import utc

from cryptoetl.config import ConfigError, Settings
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources.coingecko import CoinGeckoClient, CoinGeckoGranularityError, CoinGeckoHistoryError, to_hours
from cryptoetl.sources.http import SourceError, SourceRateLimited

DAY1 = (utc(2026, 3, 1), utc(2026, 3, 2))


def client(sandbox, slept=None, **kwargs):
    sleep = slept.append if slept is not None else (lambda s: None)
    return CoinGeckoClient(sandbox.base_url, rate_per_minute=60_000, sleep=sleep, **kwargs)


def test_hourly_rows_follow_the_points_as_stamped_and_are_deterministic(sandbox_clean):
    one_day = client(sandbox_clean).market_chart_range("bitcoin", *DAY1)
    ten_days = client(sandbox_clean).market_chart_range("bitcoin", utc(2026, 2, 25), utc(2026, 3, 7))
    assert (one_day["time"].dt.minute == 0).all() and one_day["time"].is_unique and ten_days["time"].is_unique
    assert one_day["time"].min() >= DAY1[0] and one_day["time"].max() <= utc(2026, 3, 1, 23)
    same = one_day.merge(ten_days, on="time")
    assert len(same) == len(one_day) and (same["price_x"] == same["price_y"]).all()
    assert (one_day["source"] == "sandbox-synthetic").all()
    # each row is the latest point stamped in (time - 55 min, time + 5 min]: never one from later
    lag = ten_days["observed_at"] - ten_days["time"]
    assert (lag > pd.Timedelta(minutes=-55)).all() and (lag <= pd.Timedelta(minutes=5)).all()
    # a 1-day interval is requested as >= 2 days so CoinGecko answers hourly, not 5-minutely
    req = sandbox_clean.requests[-2]
    assert int(req["query"]["to"]) - int(req["query"]["from"]) >= 2 * 86400


def _points(*stamps: str) -> pd.DataFrame:
    ts = pd.to_datetime(list(stamps), utc=True)
    return pd.DataFrame({"ts": ts, "price": range(1, len(ts) + 1), "market_cap": 1.0, "total_volume": 2.0})


def test_points_stand_for_the_hour_they_are_known_at():
    points = _points("2026-03-01 00:00:30", "2026-03-01 01:04:59",  # on time: their own hour
                     "2026-03-01 01:05:01", "2026-03-01 01:37:00",  # late: the next hour, the latest wins
                     "2026-03-01 05:20:00")  # after a 3-hour hole
    rows = to_hours(points, utc(2026, 3, 1), utc(2026, 3, 1, 8), "test")
    assert rows["time"].dt.hour.tolist() == [0, 1, 2, 6]  # hours 3-5 stay missing: no fill
    assert rows["price"].tolist() == [1, 2, 4, 5]
    assert rows["observed_at"].tolist() == list(pd.to_datetime(
        ["2026-03-01 00:00:30", "2026-03-01 01:04:59", "2026-03-01 01:37:00", "2026-03-01 05:20:00"], utc=True))


def test_daily_points_are_never_stored_as_hourly_rows():
    with SandboxServer(plan_history=False) as server, \
            pytest.raises(CoinGeckoGranularityError, match="daily granularity"):
        client(server).market_chart_range("bitcoin", utc(2023, 2, 1), utc(2023, 2, 5))  # before hourly data


def test_a_range_beyond_the_plan_is_refused_before_and_by_coingecko():
    with SandboxServer(now=lambda: utc(2026, 3, 10).timestamp()) as server:
        old = (utc(2025, 1, 1), utc(2025, 1, 2))
        before = len(server.requests)
        with pytest.raises(CoinGeckoHistoryError, match="nothing was called"):
            client(server).check_history(old[0], utc(2026, 3, 10))
        assert len(server.requests) == before
        with pytest.raises(CoinGeckoHistoryError, match="error 10012"):
            client(server).market_chart_range("bitcoin", *old)
        client(server, plan="pro").check_history(old[0], utc(2026, 3, 10))  # pro plans reach further


def test_long_ranges_are_split_into_90_day_requests(sandbox_clean):
    before = len(sandbox_clean.requests)
    rows = client(sandbox_clean).market_chart_range("ethereum", utc(2025, 1, 1), utc(2025, 7, 20))
    spans = [int(r["query"]["to"]) - int(r["query"]["from"]) for r in sandbox_clean.requests[before:]]
    assert 0.95 * 200 * 24 <= len(rows) <= 200 * 24 and rows["time"].is_unique
    assert len(spans) == 3 and max(spans) <= 90 * 86400


@pytest.mark.parametrize("plan,header", [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")])
def test_keys_go_in_the_plan_header_never_the_url(sandbox_clean, plan, header):
    client(sandbox_clean, api_key="CG-key-123", plan=plan).market_chart_range("bitcoin", *DAY1)
    req = sandbox_clean.requests[-1]
    assert req["headers"][header] == "CG-key-123"
    assert "CG-key-123" not in str(req["query"]) and "CG-key-123" not in req["path"]


def test_missing_key_names_the_setting():
    with pytest.raises(ConfigError, match="COINGECKO_API_KEY"):
        CoinGeckoClient.from_settings(Settings(source_env={"COINGECKO_API_PLAN": "demo"}))


def test_required_key_rejected_by_server_is_a_clear_error():
    with SandboxServer(require_key="pro") as server, pytest.raises(SourceError, match="HTTP 401"):
        client(server).market_chart_range("bitcoin", *DAY1)


def test_429_honours_retry_after(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "429", "count": 2, "retry_after": 7}])
    slept = []
    rows = client(sandbox_clean, slept).market_chart_range("bitcoin", *DAY1)
    assert len(rows) == 24 and slept == [7.0, 7.0]


def test_persistent_429_gives_up_with_rate_limited(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "429", "count": -1, "retry_after": 2}])
    with pytest.raises(SourceRateLimited, match="4 attempts"):
        client(sandbox_clean, max_retries=3).market_chart_range("bitcoin", *DAY1)


def test_a_long_retry_after_is_handed_back_to_airflow_not_slept(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "429", "count": -1}])  # CoinGecko's own: Retry-After 119
    slept, before = [], len(sandbox_clean.requests)
    with pytest.raises(SourceRateLimited, match="Retry-After 119 s is longer than the 60 s") as info:
        client(sandbox_clean, slept).market_chart_range("bitcoin", *DAY1)
    assert slept == [] and len(sandbox_clean.requests) == before + 1
    assert '"error_code": 429' in str(info.value)


def test_500_is_retried_with_exponential_backoff(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "500", "count": 2}])
    slept = []
    assert len(client(sandbox_clean, slept, backoff_base=1.0).market_chart_range("bitcoin", *DAY1)) == 24
    assert slept == [1.0, 2.0]
    sandbox_clean.set_faults([{"kind": "500", "count": -1}])
    with pytest.raises(SourceError, match="HTTP 500"):
        client(sandbox_clean, max_retries=2).market_chart_range("bitcoin", *DAY1)


def test_timeouts_are_retried_then_fail():
    with SandboxServer(timeout_sleep=1.0) as server:
        server.set_faults([{"kind": "timeout", "count": 1}])
        assert len(client(server, timeout=0.3).market_chart_range("bitcoin", *DAY1)) == 24
        server.set_faults([{"kind": "timeout", "count": -1}])
        with pytest.raises(SourceError, match="Timeout"):
            client(server, timeout=0.3, max_retries=1).market_chart_range("bitcoin", *DAY1)


@pytest.mark.parametrize("kind,message", [("malformed", "not valid JSON"), ("drift", "no 'prices'")])
def test_bad_payloads_fail_clearly_without_retry(sandbox_clean, kind, message):
    sandbox_clean.set_faults([{"kind": kind, "count": 1}])
    with pytest.raises(SourceError, match=message) as info:
        client(sandbox_clean).market_chart_range("bitcoin", *DAY1)
    assert "bitcoin" in str(info.value) or "/coins/bitcoin" in str(info.value)


def test_empty_payload_is_an_empty_frame(sandbox_clean):
    sandbox_clean.set_faults([{"kind": "empty", "count": 1}])
    rows = client(sandbox_clean).market_chart_range("bitcoin", *DAY1)
    assert rows.empty and list(rows.columns) == ["time", "price", "market_cap", "total_volume", "source",
                                                 "observed_at"]


def test_unknown_coin_is_not_retried(sandbox_clean):
    before = len(sandbox_clean.requests)
    with pytest.raises(SourceError, match="HTTP 404"):
        client(sandbox_clean).market_chart_range("no-such-coin", *DAY1)
    assert len(sandbox_clean.requests) == before + 1


def test_rate_limiter_spaces_calls(sandbox_clean):
    clock = iter([0.0, 0.5, 2.0]).__next__
    slept = []
    c = CoinGeckoClient(sandbox_clean.base_url, rate_per_minute=30, sleep=slept.append, clock=clock)
    c.get("/ping", {})
    c.get("/ping", {})  # 0.5 s after the first: must wait the remaining 1.5 s of its 2 s slot
    assert slept == [1.5]


def test_faults_can_be_set_over_http(sandbox_clean):
    import requests

    requests.post(f"http://127.0.0.1:{sandbox_clean.port}/__sandbox__/faults",
                  json=[{"kind": "500", "count": -1}], timeout=5).raise_for_status()
    with pytest.raises(SourceError):
        client(sandbox_clean, max_retries=0).market_chart_range("bitcoin", *DAY1)
    requests.delete(f"http://127.0.0.1:{sandbox_clean.port}/__sandbox__/faults", timeout=5)
    assert len(client(sandbox_clean).market_chart_range("bitcoin", *DAY1)) == 24


# -- /coins/markets: the real answer's quirks --------------------------------------------------------

class PagedMarkets(CoinGeckoClient):
    """The client with its HTTP call replaced by recorded-style pages (the ranking moves between pages)."""

    def __init__(self, pages):
        super().__init__("http://unused.invalid", rate_per_minute=60_000)
        self.pages, self.asked = pages, []

    def get(self, path, params):
        self.asked.append(params["page"])
        return self.pages[params["page"] - 1] if params["page"] <= len(self.pages) else [], False


def item(cid, rank, cap=1e6, price=1.0, symbol=None):
    return {"id": cid, "symbol": symbol or cid[:3], "name": cid.title(), "current_price": price,
            "market_cap": cap, "market_cap_rank": rank, "total_volume": None}


def test_top_coins_pages_dedupes_a_moved_coin_and_skips_unranked_ones(monkeypatch):
    monkeypatch.setattr("cryptoetl.sources.coingecko.MARKETS_PAGE", 3)
    pages = [[item("a", 1), item("b", 2), item("c", 3)],
             [item("c", 4), item("d", 5), item("e", 6)],  # c moved down between the calls: kept once
             [item("f", 7), item("nocap", None, cap=0, price=None, symbol="\u00a0nc")]]
    client = PagedMarkets(pages)
    top, synthetic = client.top_coins(6)
    assert [c.coingecko_id for c in top] == ["a", "b", "c", "d", "e", "f"] and synthetic is False
    assert client.asked == [1, 2, 3]  # ceil(6 / 3) pages, and one more because c counted once
    (nocap,) = client.markets(page=3)[0][1:]
    assert (nocap.rank, nocap.market_cap, nocap.price, nocap.ticker) == (None, None, None, "\u00a0nc")


@pytest.mark.parametrize("body", [{"error": "x"}, [{"symbol": "btc"}], [{"id": "bitcoin", "market_cap": "big"}]])
def test_a_malformed_markets_page_is_a_clear_error(body):
    from cryptoetl.sources.http import SourcePayloadError

    with pytest.raises(SourcePayloadError, match="coingecko /coins/markets page 1"):
        PagedMarkets([body]).markets(page=1)
