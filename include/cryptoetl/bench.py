"""``make bench``: the pipeline's heavy steps at a chosen scale, on MariaDB/MySQL.

    python -m cryptoetl.bench            # production scale: 320 symbols x 456 and 912 days hourly (7M rows)
    python -m cryptoetl.bench --small    # 20 symbols x 30 and 60 days: a couple of minutes
    python -m cryptoetl.bench --symbols 50 --days 120 --url mysql+mysqldb://root@127.0.0.1:3306/test

It creates a throwaway database on the server, fills ``price_data_real`` with SYNTHETIC seeded
random walks (the longest of ``--days``), then times, in the same run:

- technical indicators, full backfill, end to end (read prices, ``ta``, write): rows/s;
- ml_features_materialized, full rebuild (DELETE + INSERT ... SELECT) at each history length
  (456 and 912 days), against the floor of a plain ``INSERT ... SELECT`` copy of the same rows;
- the hourly increments of both steps and a one-day features rebuild (``bench_derived.py``);
- sentiment end to end (``run_sentiment``: read, tokenize, score, write) against the raw forward pass
  of the same BERT-base-sized model (random weights) on the same texts (``bench_sentiment.py``);
- what each DAG file costs the DAG processor over a bare DAG, in local and Kubernetes mode
  (``bench_parse.py``; needs no database);
- CoinGecko calls per coin of a 30-, 90- and 456-day history load, counted by the sandbox
  (``bench_quota.py``; a SQLite warehouse).

The database is dropped at the end. Timings belong here, never in pytest.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, make_url, text

from cryptoetl import bench_derived
from cryptoetl.config import Settings
from cryptoetl.intervals import Interval
from cryptoetl.step import StepContext
from cryptoetl.universe import Coin
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import get_engine
from cryptoetl.warehouse.records import to_records
from cryptoetl.warehouse.writes import replace_interval_parts

DEFAULT_URL = "mysql+mysqldb://root@127.0.0.1:3306/test"
START = datetime(2025, 1, 1, tzinfo=UTC)


def synthetic_prices(symbols: list[str], hours: int, seed: int = 11) -> pd.DataFrame:
    """SYNTHETIC seeded random walks, one row per symbol per hour."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(START, periods=hours, freq="h").tz_localize(None)
    frames = []
    for i, symbol in enumerate(symbols):
        walk = (10.0 + i) * np.exp(np.cumsum(rng.normal(0, 0.006, hours)))
        frames.append(pd.DataFrame({"symbol": symbol, "time": times, "price": walk, "market_cap": walk * 1e8,
                                    "total_volume": walk * 1e6, "source": "sandbox-synthetic"}))
    return pd.concat(frames, ignore_index=True)


def synthetic_context(symbols: list[str], hours: int, seed: int = 12) -> dict:
    """SYNTHETIC macro vintages, on-chain days and scored news at production-like volumes: every
    macro series (daily ones daily, monthly ones with three vintages), BTC/ETH on-chain days,
    ~150 articles a day, a third of them mentioning a symbol (mostly the first few)."""
    rng = np.random.default_rng(seed)
    days = hours // 24
    day0 = START.replace(tzinfo=None)
    macro = []
    for series_id, name in schema.MACRO_FEATURE_SERIES:
        daily = series_id in ("DFF", "DGS10", "VIXCLS", "DTWEXBGS", "DCOILWTICO")
        periods = range(-30, days) if daily else range(-4, days // 30 + 1)
        for k in periods:
            obs = (day0 + timedelta(days=k)) if daily else (day0 + timedelta(days=30 * k))
            for vintage in ((1,) if daily else (35, 65, 95)):
                known = obs + timedelta(days=vintage, hours=30)
                macro.append({"series_id": series_id, "observation_date": obs.date(),
                              "realtime_start": (obs + timedelta(days=vintage)).date(), "indicator_name": name,
                              "value": float(rng.normal(100, 5)), "known_at": known, "known_at_rule": "bench",
                              "frequency": "daily" if daily else "monthly", "units": "SYNTHETIC",
                              "source": "fred-sandbox-synthetic"})
    onchain = []
    for symbol in symbols[:2]:
        for k in range(-2, days):
            day = day0 + timedelta(days=k)
            onchain.append({"symbol": symbol, "date": day.date(), "data_source": "bench-sandbox-synthetic",
                            "is_synthetic": True, **{name: float(rng.uniform(1, 1e6))
                                                     for name, _ in schema.ONCHAIN_METRIC_COLUMNS},
                            "complete_at": day + timedelta(days=1)})
    news, mentions, scores = [], [], []
    for i in range(days * 150):
        article_id = f"bench{i:08d}"
        published = day0 + timedelta(seconds=int(rng.integers(0, hours * 3600)))
        crypto = rng.random() < 0.7
        news.append({"article_id": article_id, "published_at": published, "source": "guardian",
                     "title": "SYNTHETIC", "summary": None, "url": f"https://bench.test/{i}",
                     "category": "crypto" if crypto else "general", "is_synthetic": True})
        if rng.random() < 0.33:
            rank = min(int(rng.zipf(1.6)) - 1, len(symbols) - 1)  # most mentions name the first few symbols
            mentions.append({"article_id": article_id, "symbol": symbols[rank]})
        p_pos, p_neg = float(rng.uniform(0, 0.6)), float(rng.uniform(0, 0.4))
        key = "cryptobert" if crypto else "finbert"
        scores.append({"article_id": article_id, "model_id": f"bench/{key}", "model_revision": "bench",
                       "model_key": key, "published_at": published, "label": "neutral", "score": p_pos - p_neg,
                       "p_positive": p_pos, "p_negative": p_neg, "p_neutral": 1 - p_pos - p_neg,
                       "text_sha256": "0" * 64, "is_synthetic": True})
    return {schema.macro_indicators: macro, schema.crypto_onchain_data: onchain, schema.crypto_news: news,
            schema.crypto_news_mentions: mentions, schema.crypto_sentiment_data: scores}


def _load_rows(engine, table, rows: list[dict], chunk: int = 20_000) -> None:
    """Every column in every record (one executemany shape), a column's own default where a row
    gives none: the warehouse's record converter, as every writer uses it."""
    with engine.begin() as conn:
        for lo in range(0, len(rows), chunk):
            conn.execute(table.insert(), to_records(rows[lo:lo + chunk], table))


def run(url: str, n_symbols: int, days: Sequence[int], n_articles: int = 200) -> list[tuple[str, str, str, str]]:
    """Fill a throwaway database with the longest history of ``days``, then time the derived steps
    (``bench_derived``; the features rebuild at each length) and sentiment. The database is dropped."""
    admin = create_engine(url)
    name = f"cryptoetl_bench_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    bench_url = make_url(url).set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    results = []
    try:
        engine = get_engine(bench_url)
        schema.create_all(engine)
        symbols = [f"S{i:03d}" for i in range(n_symbols)]
        hours = max(days) * 24
        _fill(engine, name, symbols, hours, max(days))
        universe = tuple(Coin(s, s.lower(), s) for s in symbols)
        ctx = StepContext(settings=Settings(warehouse_url=bench_url, symbols=universe), engine=engine)
        full = Interval(START, START + timedelta(hours=hours))
        results.append(bench_derived.technical_full(ctx, full))
        results += [bench_derived.features_vs_floor(engine, START, length, symbols) for length in sorted(days)]
        results += bench_derived.increments(ctx, engine, full.end, symbols)
        if n_articles:
            from cryptoetl.bench_sentiment import bench_sentiment

            print(f"· sentiment: {n_articles} SYNTHETIC articles, random-weight BERT-base (scores mean nothing)")
            results.append(_sentiment_row(bench_sentiment(engine, n_articles)))
        else:
            results.append(_sentiment_row(None))
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()
    return results


def _fill(engine, name: str, symbols: list[str], hours: int, days: int) -> int:
    """Load the SYNTHETIC prices (through the warehouse's bulk write path, a group of coins at a time)
    and context; returns the number of price rows."""
    print(f"· {len(symbols)} symbols x {days} days = {len(symbols) * hours:,} hourly SYNTHETIC price rows on {name}")
    end = START + timedelta(hours=hours)
    groups = [symbols[i:i + 40] for i in range(0, len(symbols), 40)]
    parts = (({"symbol": group}, synthetic_prices(group, hours, seed=11 + k)) for k, group in enumerate(groups))
    rows, load_s = bench_derived.timed(lambda: replace_interval_parts(
        engine, schema.price_data_real, parts, time_column="time", start=START, end=end))
    print(f"· loaded {rows:,} prices in {load_s:.1f}s")
    context = synthetic_context(symbols, hours)
    for table, context_rows in context.items():
        _load_rows(engine, table, context_rows)
    print("· SYNTHETIC context: " + ", ".join(f"{t.name} {len(r):,}" for t, r in context.items()))
    return rows


def _sentiment_row(result: dict | None) -> tuple[str, str, str, str]:
    if result is None:
        return ("sentiment, default path", "-", "skipped (--articles 0)", "")
    gate = (f"gate chose {result['precision']}: calibration mean |Δscore| {result['gate_mean_abs_score_diff']}, "
            f"labels {result['gate_label_agreement']:.1%}, {result['gate_s']}s once per model revision, torch "
            "build and CPU (kept in the warehouse)"
            if result["gate_label_agreement"] is not None else f"{result['precision']}, gate {result['gate_s']}s")
    detail = (f"{result['n_articles']} articles ({result['mean_tokens']} tokens avg), {result['threads']} threads; "
              f"{gate}; fp32 forward {result['fp32_raw_articles_per_s']}/s")
    measured = (f"default path {result['default_e2e_articles_per_s']} articles/s = {result['ratio']}× fp32 forward "
                "(target ≥ 3×)")
    return ("sentiment, default path (BERT-base, random weights)", detail, measured, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="20 symbols x 60 days")
    parser.add_argument("--symbols", type=int, help="number of symbols (default 320)")
    parser.add_argument("--days", help="history lengths in days, comma-separated (default 456,912: the features "
                                       "rebuild is timed at each; small: 30,60)")
    parser.add_argument("--articles", type=int, help="sentiment articles (default 200, small 48; 0 skips)")
    parser.add_argument("--url", default=DEFAULT_URL, help="MySQL/MariaDB server URL (a database is created)")
    parser.add_argument("--parse-repeat", type=int, default=3, help="DAG parse timing: best of N (0 skips)")
    parser.add_argument("--quota-coins", type=int, default=20, help="coins of the CoinGecko quota bench (0 skips)")
    args = parser.parse_args(argv)
    n_symbols = args.symbols or (20 if args.small else 320)
    days = [int(d) for d in (args.days or ("30,60" if args.small else "456,912")).split(",")]
    n_articles = args.articles if args.articles is not None else (48 if args.small else 200)
    results = run(args.url, n_symbols, days, n_articles)
    if args.parse_repeat:
        from cryptoetl import bench_parse

        results += [bench_parse.report(bench_parse.REPO / "dags", mode, args.parse_repeat, bench_parse.REPO / "include")
                    for mode in ("local", "kubernetes")]
    if args.quota_coins:
        from cryptoetl import bench_quota

        results += bench_quota.report(args.quota_coins, [30, 90] if args.small else [30, 90, 456])
    print_table(results)
    return 0


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    """The bench's result rows as aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
