"""The quota bench counts what it claims: the calls the sandbox served, per coin, for a history load."""

from __future__ import annotations

import math
from datetime import timedelta

from helpers import utc

from cryptoetl import bench_quota
from cryptoetl.intervals import Interval
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.sources.coingecko import SPEC, CoinGeckoClient
from cryptoetl.steps import get_step


def test_the_quota_bench_reports_the_calls_the_sandbox_counted():
    result = bench_quota.load(coins=2, days=4, now=utc(2026, 3, 9, 12))  # crosses the 2026-03-08 block start
    assert result["calls"] == 2 * 2 and result["bound"] == 2 * 2  # two blocks per coin, each paid once
    assert result["rows"] == result["one_run_rows"] > 0.9 * 2 * 4 * 24 and result["one_run_calls"] == 0
    rows = bench_quota.report(1, [3], now=utc(2026, 3, 9, 12))
    assert rows[0][:2] == ("CoinGecko calls per coin, 3-day history", "2.00")


def test_the_bench_plans_and_fetches_on_the_pro_plan_it_serves(tmp_path):
    """The settings name the plan the client is built on (pro): days older than the public plan's 365 are
    planned as blocks, paid once, not one call a day that the public window clips to nothing."""
    now = utc(2026, 3, 9, 12)
    with SandboxServer(now=now.timestamp, require_key="pro") as server:
        ctx = bench_quota._context(tmp_path / "warehouse.db", server, 1, now.timestamp())
        assert ctx.client(CoinGeckoClient).plan == SPEC.resolve(ctx.settings).plan == "pro"
        first = utc(2026, 3, 9) - timedelta(days=400)
        rows = [get_step("prices").execute(ctx, Interval(first + timedelta(days=i), first + timedelta(days=i + 1)))
                for i in range(5)]
        assert server.stats()["coingecko"][bench_quota.CHART] <= math.ceil(5 / 90) + 1
        assert all(n > 0.9 * 24 for n in rows)
        ctx.engine.dispose()
