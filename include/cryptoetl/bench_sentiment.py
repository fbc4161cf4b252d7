"""Sentiment step throughput: end to end (crypto_news rows -> crypto_sentiment_data rows through
``run_sentiment``) against the model's raw forward pass on the same texts, plus int8 vs fp32.

    python -m cryptoetl.bench_sentiment [--small] [--url URL] [--model-dir DIR]   # standalone
    bench_sentiment(engine, n_articles)                                           # from cryptoetl.bench

Everything is SYNTHETIC: seeded articles with realistic title/summary lengths, and, unless
``model_dir`` is given, a BERT-base-sized classifier (``BertConfig()`` defaults: 12 layers, hidden 768,
~110M parameters) with RANDOM weights and the tiny offline WordPiece tokenizer: the compute per token
is a real BERT-base's; the scores mean nothing. ``model_dir`` (a real FinBERT/CryptoBERT directory)
is used for both model roles when given.

Measured in the same run, with the same torch thread count:

- raw: the model's forward pass alone over the same texts, tokenized beforehand, in the same
  length-sorted padded batches the step builds;
- e2e: ``run_sentiment`` with both models already loaded (read the interval's articles, check what is
  scored, tokenize, batch, forward, write in one transaction), rescoring every article;
- e2e_cold: the same from a fresh context: resolve + content-hash + load both models included, as a
  pod does once per run;
- int8: the same texts through a dynamically quantized copy (``CRYPTOETL_SENTIMENT_INT8``): forward
  articles/s and max/mean |score difference| against fp32.

Best of ``repeats`` for raw and e2e. The bench's articles live in 2001-01-01 (away from any other
bench data) and are deleted at the end. Timings belong here, never in pytest.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, delete, insert

from cryptoetl.config import SentimentSettings, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders import sentiment as step
from cryptoetl.sentiment import model as sm
from cryptoetl.sentiment import tiny
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema

log = logging.getLogger(__name__)

BENCH_DAY = datetime(2001, 1, 1)
ID_PREFIX = "benchsent"


def synthetic_articles(n: int, seed: int = 7, crypto_share: float = 0.7) -> list[dict]:
    """SYNTHETIC crypto_news rows: titles of 6-16 words; summaries of 15-60 words (none for ~15%, like
    CryptoPanic posts), i.e. ~20-100 tokens per text, as news titles + standfirsts are."""
    rng = np.random.default_rng(seed)
    words = np.array(tiny.WORDS)
    rows = []
    for i in range(n):
        title = " ".join(rng.choice(words, int(rng.integers(6, 17)))).capitalize()
        summary = None if rng.random() < 0.15 else " ".join(rng.choice(words, int(rng.integers(15, 61)))).capitalize()
        published_at = BENCH_DAY + timedelta(seconds=int(i * 86_399 / n))
        rows.append({"article_id": f"{ID_PREFIX}{i:07d}", "published_at": published_at, "source": "bench-synthetic",
                     "title": title, "summary": summary,
                     "url": f"https://bench.invalid/sentiment/{i}",
                     "category": "crypto" if rng.random() < crypto_share else "general", "is_synthetic": True})
    return rows


def build_bert_base(out: Path, seed: int = 3) -> Path:
    """A BERT-base-sized classifier with RANDOM weights (FinBERT's label order), the tiny WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = tiny.wordpiece_tokenizer()
    config = BertConfig(id2label=dict(tiny.FINBERT_LABELS), label2id={v: k for k, v in tiny.FINBERT_LABELS.items()},
                        cryptoetl_synthetic=True)  # defaults: 12 layers, hidden 768, 12 heads, 512 positions
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    return tiny._save(Path(out), model, tokenizer, "Random BERT-base for the sentiment bench")


def _cleanup(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (schema.crypto_sentiment_data, schema.crypto_news):
            conn.execute(delete(table).where(table.c.article_id.like(f"{ID_PREFIX}%")))


def _raw_forward_seconds(handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]], batch_size: int) -> float:
    """Forward passes alone: tokenization and padding happen before the clock starts."""
    prepared = [(handles[key].model, handles[key].model.batches(handles[key].model.encode(texts), batch_size))
                for key, texts in groups.items() if texts]
    began = time.perf_counter()
    for model, batches in prepared:
        for _idx, inputs in batches:
            model.forward(inputs)
    return time.perf_counter() - began


def bench_sentiment(engine: Engine, n_articles: int = 200, *, batch_size: int = 32, threads: int | None = None,
                    int8: bool = True, model_dir: str | None = None, repeats: int = 3, seed: int = 7) -> dict:
    """Run the sentiment bench on ``engine`` (schema created) and return its figures:
    ``e2e_articles_per_s``, ``raw_articles_per_s``, ``ratio`` (e2e / raw, target >= 0.9),
    ``e2e_cold_articles_per_s`` (model loading included), ``int8_max_abs_score_diff`` /
    ``int8_mean_abs_score_diff`` / ``int8_raw_articles_per_s`` (None when ``int8`` is False), plus the
    setup (threads, batch size, mean tokens per text, load seconds, model)."""
    import torch

    tmp = None
    _cleanup(engine)
    try:
        if model_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="cryptoetl-bench-sentiment-"))
            began = time.perf_counter()
            model_dir = str(build_bert_base(tmp / "bert-base-random"))
            log.info("bench sentiment: random BERT-base saved in %.1fs", time.perf_counter() - began)
            model_name = "random BERT-base (BertConfig defaults), SYNTHETIC"
        else:
            model_name = model_dir
        cfg = SentimentSettings(cryptobert_path=model_dir, finbert_path=model_dir, batch_size=batch_size,
                                torch_threads=threads, rescore=True)
        settings = Settings(warehouse_url=engine.url.render_as_string(hide_password=False), sentiment=cfg)
        articles = synthetic_articles(n_articles, seed)
        with engine.begin() as conn:
            conn.execute(insert(schema.crypto_news), articles)
        interval = Interval(BENCH_DAY, BENCH_DAY + timedelta(days=1))
        groups = {key: [step.article_text(a["title"], a["summary"])
                        for a in articles if step.ROUTES[a["category"]] == key] for key in ("cryptobert", "finbert")}

        # warm context: both models loaded once, as the step loads them
        handles, load_s = _load_models(cfg, groups, threads)
        ctx = StepContext(settings=settings, engine=engine,
                          models=dict(handles))
        tokens = [len(ids) for key, texts in groups.items() for ids in handles[key].model.encode(texts)]
        _warm_up(handles, groups, batch_size)
        raw_s, e2e_s = _raw_and_e2e_seconds(ctx, handles, groups, batch_size, interval, n_articles, repeats)
        cold_s = _cold_e2e_seconds(settings, engine, interval)

        result = {
            "n_articles": n_articles, "model": model_name, "threads": torch.get_num_threads(),
            "batch_size": batch_size, "mean_tokens": round(statistics.mean(tokens), 1), "max_tokens": max(tokens),
            "load_s": round(load_s, 2),
            "raw_articles_per_s": round(n_articles / min(raw_s), 2),
            "e2e_articles_per_s": round(n_articles / min(e2e_s), 2),
            "ratio": round(min(raw_s) / min(e2e_s), 3),
            "e2e_cold_articles_per_s": round(n_articles / cold_s, 2),
            "int8_raw_articles_per_s": None, "int8_max_abs_score_diff": None, "int8_mean_abs_score_diff": None,
        }
        if int8:
            result.update(_int8_figures(cfg, handles, groups, batch_size, threads, repeats, n_articles))
        return result
    finally:
        _cleanup(engine)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _load_models(cfg: SentimentSettings, groups: dict[str, list[str]],
                 threads: int | None) -> tuple[dict[str, sm.ModelHandle], float]:
    """Both model roles' handles, loaded now; and the seconds loading took."""
    began = time.perf_counter()
    handles = {key: sm.ModelHandle(sm.ModelSpec.from_settings(cfg, key), threads=threads) for key in groups}
    for handle in handles.values():
        handle.model  # noqa: B018 - load now, to time it
    return handles, time.perf_counter() - began


def _warm_up(handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]], batch_size: int) -> None:
    for key, texts in groups.items():  # warm-up: first-call allocations and kernel selection
        if texts:
            handles[key].model.score(texts[:batch_size], batch_size)


def _raw_and_e2e_seconds(ctx: StepContext, handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]],
                         batch_size: int, interval: Interval, n_articles: int,
                         repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` timings each of the raw forward passes and of ``run_sentiment`` (warm context)."""
    raw_s, e2e_s = [], []
    for _ in range(repeats):
        raw_s.append(_raw_forward_seconds(handles, groups, batch_size))
        began = time.perf_counter()
        written = step.run_sentiment(ctx, interval)
        e2e_s.append(time.perf_counter() - began)
        if written != n_articles:
            raise RuntimeError(f"bench sentiment: run_sentiment wrote {written} rows, expected {n_articles}")
    return raw_s, e2e_s


def _cold_e2e_seconds(settings: Settings, engine: Engine, interval: Interval) -> float:
    """``run_sentiment`` from a fresh context: resolving, hashing and loading both models included."""
    cold_ctx = StepContext(settings=settings, engine=engine)
    began = time.perf_counter()
    step.run_sentiment(cold_ctx, interval)
    cold_s = time.perf_counter() - began
    del cold_ctx
    return cold_s


def _int8_figures(cfg: SentimentSettings, handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]],
                  batch_size: int, threads: int | None, repeats: int, n_articles: int) -> dict:
    """int8 copies of the models: raw forward articles/s and |score difference| against fp32."""
    q_cfg = replace(cfg, int8=True)
    q_handles = {key: sm.ModelHandle(sm.ModelSpec.from_settings(q_cfg, key), threads=threads) for key in groups}
    diffs = []
    for key, texts in groups.items():
        if texts:
            fp32 = handles[key].model.score(texts, batch_size)
            q = q_handles[key].model.score(texts, batch_size)
            diffs.append(np.abs((q[:, 0] - q[:, 1]) - (fp32[:, 0] - fp32[:, 1])))
    diff = np.concatenate(diffs)
    q_raw = min(_raw_forward_seconds(q_handles, groups, batch_size) for _ in range(repeats))
    return {"int8_raw_articles_per_s": round(n_articles / q_raw, 2),
            "int8_max_abs_score_diff": float(f"{diff.max():.3g}"),
            "int8_mean_abs_score_diff": float(f"{diff.mean():.3g}")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench_sentiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="MySQL/MariaDB server URL: a throwaway database is created there and dropped "
                                      "(default: a throwaway SQLite file)")
    parser.add_argument("--small", action="store_true", help="48 articles instead of 200")
    parser.add_argument("--articles", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model-dir", help="a real model directory, used for both roles (default: random BERT-base)")
    parser.add_argument("--no-int8", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import uuid

    from sqlalchemy import create_engine, make_url, text

    from cryptoetl.warehouse.engine import get_engine

    tmp = admin = name = None
    if args.url is None:
        tmp = tempfile.mkdtemp(prefix="cryptoetl-bench-sentiment-db-")
        url = f"sqlite:///{tmp}/warehouse.db"
    else:  # a throwaway database on the server, dropped at the end
        admin = create_engine(args.url)
        name = f"cryptoetl_bench_sent_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        url = make_url(args.url).set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    try:
        engine = get_engine(url)
        schema.create_all(engine)
        n = args.articles or (48 if args.small else 200)
        result = bench_sentiment(engine, n, batch_size=args.batch_size, threads=args.threads, int8=not args.no_int8,
                                 model_dir=args.model_dir)
        engine.dispose()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            admin.dispose()
    for key, value in result.items():
        print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
