"""The quota bench counts what it claims: the calls the sandbox served, per coin, for a history load."""

from __future__ import annotations

from helpers import utc

from cryptoetl import bench_quota


def test_the_quota_bench_reports_the_calls_the_sandbox_counted():
    result = bench_quota.load(coins=2, days=4, now=utc(2026, 3, 9, 12))  # crosses the 2026-03-08 block start
    assert result["calls"] == 2 * 2 and result["bound"] == 2 * 2  # two blocks per coin, each paid once
    assert result["rows"] == result["one_run_rows"] > 0.9 * 2 * 4 * 24 and result["one_run_calls"] == 0
    rows = bench_quota.report(1, [3], now=utc(2026, 3, 9, 12))
    assert rows[0][:2] == ("CoinGecko calls per coin, 3-day history", "2.00")
