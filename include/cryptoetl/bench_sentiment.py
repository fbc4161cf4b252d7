"""Sentiment step throughput: the step's default path (``run_sentiment``, the precision gate
choosing int8 or fp32 at load time) against the fp32 forward pass on the same texts in the same run.

    python -m cryptoetl.bench_sentiment [--small] [--url URL] [--model-dir DIR]   # standalone
    bench_sentiment(engine, n_articles)                                           # from cryptoetl.bench

Everything is SYNTHETIC: seeded articles with realistic title/summary lengths, and, unless
``model_dir`` is given, a BERT-base-sized classifier (``BertConfig()`` defaults: 12 layers, hidden 768,
~110M parameters) with RANDOM weights and the tiny offline WordPiece tokenizer: the compute per token
is a real BERT-base's; the scores mean nothing, and neither does the gate's agreement on them (a
random BERT-base's probabilities sit near 1/3 for every text). ``model_dir`` (a real
FinBERT/CryptoBERT directory) is used for both model roles when given: then the agreement is real.

Measured in the same run, with the same torch thread count, best of ``repeats``, interleaved:

- fp32 raw: the fp32 model's forward pass alone (``CRYPTOETL_SENTIMENT_INT8=0``), tokenized
  beforehand, in the same length-sorted padded batches the step builds: the reference;
- default raw: the same for the model the default path chose (the gate's int8 copy, or fp32);
- default e2e: ``run_sentiment`` with the default settings and both models already loaded (read the
  interval's articles, check what is scored, tokenize, batch, forward, write in one transaction),
  rescoring every article. ``ratio`` = default e2e articles/s / fp32 raw articles/s (target >= 3);
- the gate, once per model revision, torch build and CPU (the step keeps its decisions in the
  warehouse; the bench measures it): its cost in seconds, its agreement on the calibration set and its
  choice; and the stored default-path scores against the fp32 forward pass on the bench texts;
- default cold: ``run_sentiment`` from a fresh context: resolve + content-hash + load + gate of both
  models included, as the first pod of a new model revision does (the bench's database is new, so
  no decision is kept yet; later pods reuse it and skip the gate's scoring).

The bench's articles live in 2001-01-01 (away from any other bench data) and are deleted at the end.
Timings belong here, never in pytest.
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
from sqlalchemy import Engine, delete, insert, select

from cryptoetl.config import SentimentSettings, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders import sentiment as step
from cryptoetl.sentiment import model as sm
from cryptoetl.sentiment import precision, tiny
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema

log = logging.getLogger(__name__)

BENCH_DAY = datetime(2001, 1, 1)
ID_PREFIX = "benchsent"
BACKLOG_ARTICLES = 675_000  # the backlog of the system this replaces (README)


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


def _raw_forward(handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]],
                 batch_size: int) -> tuple[float, dict[str, np.ndarray]]:
    """Forward passes alone (tokenization and padding happen before the clock starts): seconds, and the
    probabilities of every group's texts in their order."""
    prepared = [(key, handles[key].model, handles[key].model.batches(handles[key].model.encode(texts), batch_size))
                for key, texts in groups.items() if texts]
    probs = {key: np.empty((len(texts), 3)) for key, texts in groups.items()}
    began = time.perf_counter()
    for key, model, batches in prepared:
        for idx, inputs in batches:
            probs[key][idx] = model.forward(inputs)
    return time.perf_counter() - began, probs


def bench_sentiment(engine: Engine, n_articles: int = 200, *, batch_size: int = 32, threads: int | None = None,
                    model_dir: str | None = None, repeats: int = 3, seed: int = 7) -> dict:
    """Run the sentiment bench on ``engine`` (schema created) and return its figures:
    ``default_e2e_articles_per_s`` (the step as it runs by default, models loaded),
    ``fp32_raw_articles_per_s`` (the fp32 forward pass on the same texts) and their ``ratio`` (target
    >= 3); the gate's ``precision`` choice, ``gate_s`` (its one-off cost, both models),
    ``gate_mean_abs_score_diff`` / ``gate_label_agreement`` (worst of the two models, calibration set);
    ``bench_*`` the same agreement of the stored default-path scores on the bench texts;
    ``e2e_vs_raw`` (default e2e / its own forward pass), ``default_cold_articles_per_s`` (loading and
    gate included), the 675k-article backlog in hours both ways, plus the setup."""
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
        # The default settings (int8 auto: the gate decides), as the step runs them.
        cfg = SentimentSettings(cryptobert_path=model_dir, finbert_path=model_dir, batch_size=batch_size,
                                torch_threads=threads, rescore=True)
        settings = Settings(warehouse_url=engine.url.render_as_string(hide_password=False), sentiment=cfg)
        articles = synthetic_articles(n_articles, seed)
        with engine.begin() as conn:
            conn.execute(insert(schema.crypto_news), articles)
        interval = Interval(BENCH_DAY, BENCH_DAY + timedelta(days=1))
        picked = {key: [a for a in articles if step.ROUTES[a["category"]] == key] for key in ("cryptobert", "finbert")}
        groups = {key: [step.article_text(a["title"], a["summary"]) for a in group] for key, group in picked.items()}

        fp32, fp32_load_s = _load_models(replace(cfg, int8=False), groups, threads)
        default, default_load_s = _load_models(cfg, groups, threads)  # the gate runs here, once per model
        ctx = StepContext(settings=settings, engine=engine, models=dict(default))
        _warm_up(fp32, groups, batch_size)
        _warm_up(default, groups, batch_size)
        timed = _timings(ctx, fp32, default, groups, interval, n_articles, repeats)
        stored = _stored_agreement(engine, picked, timed.pop("fp32_probs"))
        cold_s = _cold_e2e_seconds(settings, engine, interval)
        return {"n_articles": n_articles, "model": model_name, "batch_size": batch_size,
                **_setup_figures(default, groups), "fp32_load_s": round(fp32_load_s, 2),
                "default_load_s": round(default_load_s, 2), **_gate_figures(default), **timed, **stored,
                "default_cold_articles_per_s": round(n_articles / cold_s, 2),
                **_backlog(timed["default_e2e_articles_per_s"], timed["fp32_raw_articles_per_s"])}
    finally:
        _cleanup(engine)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _load_models(cfg: SentimentSettings, groups: dict[str, list[str]],
                 threads: int | None) -> tuple[dict[str, sm.ModelHandle], float]:
    """Both model roles' handles, loaded now (the gate included under auto); and the seconds it took."""
    began = time.perf_counter()
    handles = {key: sm.ModelHandle(sm.ModelSpec.from_settings(cfg, key), threads=threads) for key in groups}
    for handle in handles.values():
        handle.model  # noqa: B018 - load now, to time it
    return handles, time.perf_counter() - began


def _warm_up(handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]], batch_size: int) -> None:
    for key, texts in groups.items():  # warm-up: first-call allocations and kernel selection
        if texts:
            handles[key].model.score(texts[:batch_size], batch_size)


def _setup_figures(handles: dict[str, sm.ModelHandle], groups: dict[str, list[str]]) -> dict:
    import torch

    tokens = [len(ids) for key, texts in groups.items() for ids in handles[key].model.encode(texts)]
    return {"threads": torch.get_num_threads(), "mean_tokens": round(statistics.mean(tokens), 1),
            "max_tokens": max(tokens), "cpu": f"{torch.backends.cpu.get_cpu_capability()}, int8 dot-product "
                                             f"instructions: {', '.join(precision.int8_dot_product_flags()) or 'none'}"}


def _timings(ctx: StepContext, fp32: dict[str, sm.ModelHandle], default: dict[str, sm.ModelHandle],
             groups: dict[str, list[str]], interval: Interval, n_articles: int, repeats: int) -> dict:
    """Best of ``repeats`` of the fp32 forward, the default model's forward and ``run_sentiment`` on the
    default path (warm context), interleaved so that a busy machine slows all three alike."""
    batch_size = ctx.settings.sentiment.batch_size
    fp32_s, raw_s, e2e_s = [], [], []
    for _ in range(repeats):
        seconds, fp32_probs = _raw_forward(fp32, groups, batch_size)
        fp32_s.append(seconds)
        raw_s.append(_raw_forward(default, groups, batch_size)[0])
        began = time.perf_counter()
        written = step.run_sentiment(ctx, interval)
        e2e_s.append(time.perf_counter() - began)
        if written != n_articles:
            raise RuntimeError(f"bench sentiment: run_sentiment wrote {written} rows, expected {n_articles}")
    return {"fp32_raw_articles_per_s": round(n_articles / min(fp32_s), 2),
            "default_raw_articles_per_s": round(n_articles / min(raw_s), 2),
            "default_e2e_articles_per_s": round(n_articles / min(e2e_s), 2),
            "ratio": round(min(fp32_s) / min(e2e_s), 2), "e2e_vs_raw": round(min(raw_s) / min(e2e_s), 3),
            "fp32_probs": fp32_probs}


def _gate_figures(handles: dict[str, sm.ModelHandle]) -> dict:
    """The default path's choice and the gate's measurements (the worst of the model roles)."""
    models = {key: handle.model for key, handle in handles.items()}
    choices = {model.precision for model in models.values()}
    gates = [model.gate for model in models.values() if model.gate is not None]
    measured = [gate for gate in gates if gate.mean_abs_score_diff is not None]
    figures = {"precision": choices.pop() if len(choices) == 1 else
               " ".join(f"{key}={model.precision}" for key, model in models.items()),
               "revision": " ".join(sorted({model.revision for model in models.values()})),
               "gate_s": round(sum(gate.seconds for gate in gates), 2),
               "gate_calibration_texts": gates[0].n_texts if gates else None,
               "gate_mean_abs_score_diff": None, "gate_label_agreement": None}
    if measured:
        figures["gate_mean_abs_score_diff"] = float(f"{max(g.mean_abs_score_diff for g in measured):.3g}")
        figures["gate_label_agreement"] = round(min(g.label_agreement for g in measured), 4)
    return figures


def _stored_agreement(engine: Engine, picked: dict[str, list[dict]], fp32_probs: dict[str, np.ndarray]) -> dict:
    """The rows the default path stored, against the fp32 forward pass on the same texts."""
    sent = schema.crypto_sentiment_data
    with engine.connect() as conn:
        stored = {r.article_id: (r.p_positive, r.p_negative, r.p_neutral) for r in conn.execute(
            select(sent).where(sent.c.article_id.like(f"{ID_PREFIX}%")))}
    reference = np.vstack([fp32_probs[key] for key, group in picked.items() if group])
    scored = np.array([stored[a["article_id"]] for group in picked.values() for a in group], dtype=np.float64)
    mean_diff, max_diff, labels = precision.agreement(reference, scored)
    return {"bench_mean_abs_score_diff": float(f"{mean_diff:.3g}"),
            "bench_max_abs_score_diff": float(f"{max_diff:.3g}"), "bench_label_agreement": round(labels, 4)}


def _backlog(default_per_s: float, fp32_per_s: float) -> dict:
    """Hours to score the backlog of the system this replaces, at the measured rates."""
    return {"backlog_articles": BACKLOG_ARTICLES,
            "backlog_default_hours": round(BACKLOG_ARTICLES / default_per_s / 3600, 1),
            "backlog_fp32_forward_hours": round(BACKLOG_ARTICLES / fp32_per_s / 3600, 1)}


def _cold_e2e_seconds(settings: Settings, engine: Engine, interval: Interval) -> float:
    """``run_sentiment`` from a fresh context: resolving, hashing, loading and gating both models included."""
    cold_ctx = StepContext(settings=settings, engine=engine)
    began = time.perf_counter()
    step.run_sentiment(cold_ctx, interval)
    cold_s = time.perf_counter() - began
    del cold_ctx
    return cold_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench_sentiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="MySQL/MariaDB server URL: a throwaway database is created there and dropped "
                                      "(default: a throwaway SQLite file)")
    parser.add_argument("--small", action="store_true", help="48 articles instead of 200")
    parser.add_argument("--articles", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model-dir", help="a real model directory, used for both roles (default: random BERT-base)")
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
        result = bench_sentiment(engine, n, batch_size=args.batch_size, threads=args.threads,
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
