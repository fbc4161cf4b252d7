"""The CoinGecko quota bench: what a history load costs in API calls, counted by the sandbox.

    python -m cryptoetl.bench_quota --coins 20 --days 30 90 456     # part of make bench

For each history length D it loads D days of prices for ``--coins`` coins the way an Airflow
backfill does, one daily run after another, through the real prices step and client against the
offline sandbox (SYNTHETIC data, pro plan so that 456 days are served), in a throwaway SQLite
warehouse, and reports the ``market_chart/range`` calls per coin that the sandbox counted, against
the bound S x (ceil(D / 90) + 1) and the one call per coin per day the step made before. Then it
loads the longest range again as one run (one interval), and reports its peak RSS and its calls
(the blocks are landed: none). Calls per coin do not depend on the number of coins.

Times and figures belong here, never in pytest.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptoetl.intervals import Interval
from cryptoetl.sandbox.server import SandboxServer
from cryptoetl.step import StepContext
from cryptoetl.steps import get_step

CHART = "/coins/{coin}/market_chart/range"


def _context(path: Path, server: SandboxServer, coins: int, clock: float) -> StepContext:
    from dataclasses import replace

    from cryptoetl.config import Settings
    from cryptoetl.universe import Coin
    from cryptoetl.warehouse.engine import get_engine
    from cryptoetl.warehouse.schema import create_all

    engine = get_engine(f"sqlite:///{path}")
    create_all(engine)
    ids = sorted(server.apis["CoinGeckoApi"].coins)[:coins]  # known and synthetic coins alike
    universe = tuple(Coin(f"C{i:03d}", coin_id, coin_id) for i, coin_id in enumerate(ids))
    # the pro plan (456 days are served) named in the settings, as in production: the planner reads the
    # plan there, and the step builds its client from them (ctx.client -> from_settings), so both agree
    source_env = {**server.env(), "COINGECKO_API_PLAN": "pro", "COINGECKO_API_KEY": "bench",
                  "COINGECKO_RATE_PER_MINUTE": "600000"}
    settings = replace(Settings(warehouse_url=str(engine.url), source_env=source_env), symbols=universe)
    return StepContext(settings=settings, engine=engine, clock=lambda: clock)


def load(coins: int, days: int, now: datetime) -> dict:
    """Load ``days`` days before ``now``'s day, day by day, then as one run: calls and resources."""
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(now=now.timestamp, require_key="pro") as server:
        ctx = _context(Path(tmp) / "warehouse.db", server, coins, now.timestamp())
        began, rows = time.monotonic(), 0
        for day in range(days):
            interval = Interval(start + timedelta(days=day), start + timedelta(days=day + 1))
            rows += get_step("prices").execute(ctx, interval)
        wall = time.monotonic() - began
        calls = server.stats().get("coingecko", {}).get(CHART, 0)
        server.reset_stats()
        one_run = get_step("prices").execute(ctx, Interval(start, end))
        again = server.stats().get("coingecko", {}).get(CHART, 0)
        ctx.engine.dispose()
    return {"days": days, "coins": coins, "calls": calls, "rows": rows, "wall_s": wall, "one_run_rows": one_run,
            "one_run_calls": again, "bound": coins * (math.ceil(days / 90) + 1)}


def report(coins: int, lengths: list[int], now: datetime | None = None) -> list[tuple[str, str, str, str]]:
    now = now or datetime.now(UTC)
    results = []
    for days in lengths:
        r = load(coins, days, now)
        print(f"· prices history load, {coins} coins x {days} days day by day: {r['calls']} calls "
              f"({r['calls'] / coins:.2f} per coin), {r['rows']:,} rows in {r['wall_s']:.1f}s; the same range as "
              f"one run: {r['one_run_rows']:,} rows, {r['one_run_calls']} calls")
        results.append((f"CoinGecko calls per coin, {days}-day history", f"{r['calls'] / coins:.2f}",
                        f"bound {r['bound'] / coins:.0f} (ceil(D/90)+1); before: {days} (one a day)",
                        "target <= ceil(D/90)+1"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.append(("prices bench peak RSS (all loads, one process)", f"{peak:.0f} MiB",
                    f"{coins} coins, the longest range also as one interval", "pod limit 512 MiB"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench_quota", description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=20, help="coins loaded (calls per coin do not depend on it)")
    parser.add_argument("--days", type=int, nargs="+", default=[30, 90, 456], help="history lengths")
    args = parser.parse_args(argv)
    from cryptoetl.bench import print_table

    print_table(report(args.coins, args.days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
