"""News sentiment: label mapping, batching, once-per-revision scoring, rescore, deletions, routing,
missing models. Tiny SYNTHETIC models (sentiment/tiny.py) are built once per session, offline."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from helpers import dump, settings_for, utc
from sqlalchemy import delete, insert, select, update

from cryptoetl.config import ConfigError, SentimentSettings, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders import sentiment as step
from cryptoetl.sentiment import model as sm
from cryptoetl.sentiment import tiny
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema

DAY = Interval(utc(2026, 1, 5), utc(2026, 1, 6))
T0 = datetime(2026, 1, 5)
ARTICLES = [  # (id, hour, title, summary, category, is_synthetic)
    ("a1", 1, "Bitcoin surges to a record high", "ETF inflows climb as traders turn bullish", "crypto", False),
    ("a2", 2, "Ethereum slumps after exploit", None, "crypto", False),
    ("a3", 3, "SEC rejects spot ETF", "Regulators cite fraud risks; the decision is final " * 5, "crypto", True),
    ("g1", 4, "Fed holds rates steady", "Inflation outlook unchanged, stocks flat", "general", False),
    ("g2", 5, "Recession fears hit stocks", "Nasdaq and Dow tumble as yields rise", "general", False),
]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment-models")
    paths = tiny.build_all(root)
    # Same weights as the tiny CryptoBERT, bullish and bearish swapped in id2label.
    paths["cryptobert_swapped"] = tiny.build_cryptobert(root / "cryptobert_swapped",
                                                        id2label={0: "BULLISH", 1: "neutral", 2: "Bearish"})
    paths["bad_labels"] = tiny.build_finbert(root / "bad_labels", id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    return paths


def _settings(engine, tiny_models, **sentiment) -> Settings:
    cfg = SentimentSettings(cryptobert_path=str(tiny_models["cryptobert"]), finbert_path=str(tiny_models["finbert"]),
                            batch_size=2)
    return settings_for(engine, sentiment=replace(cfg, **sentiment))


def _ctx(engine, tiny_models, **sentiment) -> StepContext:
    return StepContext(settings=_settings(engine, tiny_models, **sentiment), engine=engine)


def _add_news(engine, articles=ARTICLES) -> None:
    rows = [{"article_id": aid, "published_at": T0 + timedelta(hours=h), "source": "guardian", "title": title,
             "summary": summary, "url": f"https://example.test/{aid}", "category": cat, "is_synthetic": synth}
            for aid, h, title, summary, cat, synth in articles]
    with engine.begin() as conn:
        conn.execute(insert(schema.crypto_news), rows)


def _rows(engine) -> dict:
    t = schema.crypto_sentiment_data
    with engine.connect() as conn:
        return {(r.article_id, r.model_key): r._asdict() for r in conn.execute(select(t))}


def _count_forward(handle: sm.ModelHandle) -> list[int]:
    calls = [0]
    handle.model.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


# -- labels and scoring --------------------------------------------------------------------------

def test_label_columns_follow_id2label_case_insensitively():
    assert sm.label_columns({0: "Bearish", 1: "Neutral", 2: "Bullish"}) == (2, 0, 1)  # CryptoBERT
    assert sm.label_columns({0: "positive", 1: "negative", 2: "neutral"}) == (0, 1, 2)  # FinBERT
    assert sm.label_columns({"0": "NEUTRAL", "1": "bullish", "2": "Negative"}) == (1, 2, 0)
    for bad in ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, {0: "positive", 1: "bullish", 2: "neutral"},
                {0: "positive", 1: "negative"}, {0: "positive", 1: "negative", 2: "neutral", 3: "mixed"}):
        with pytest.raises(sm.UnknownLabels, match="unknown label set"):
            sm.label_columns(bad)


def test_score_sign_follows_the_labels_not_the_positions(tiny_models):
    texts = [a[2] for a in ARTICLES]
    normal = sm.ModelHandle(sm.ModelSpec("cryptobert", "x", str(tiny_models["cryptobert"]), "P", 128)).model
    swapped = sm.ModelHandle(sm.ModelSpec("cryptobert", "x", str(tiny_models["cryptobert_swapped"]), "P", 128)).model
    p, q = normal.score(texts), swapped.score(texts)
    assert normal.columns == (2, 0, 1) and swapped.columns == (0, 2, 1)
    # same weights, same logits: what was bullish is now bearish, so every score flips sign
    np.testing.assert_allclose(q[:, 0], p[:, 1], atol=1e-6)
    np.testing.assert_allclose(q[:, 1], p[:, 0], atol=1e-6)
    np.testing.assert_allclose(q[:, 0] - q[:, 1], -(p[:, 0] - p[:, 1]), atol=1e-6)
    assert np.abs(p[:, 0] - p[:, 1]).min() > 0.01  # not trivially zero


@pytest.mark.parametrize("key", ["cryptobert", "finbert"])
def test_batched_scores_equal_one_by_one_in_input_order(tiny_models, key):
    texts = [step.article_text(a[2], a[3]) for a in ARTICLES] + ["x", "Markets " * 400, "Bitcoin ETF " * 7]
    model = sm.ModelHandle(sm.ModelSpec(key, "x", str(tiny_models[key]), "P", 256)).model
    batched = model.score(texts, batch_size=3)
    single = np.vstack([model.score([t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-6)
    ids = model.encode(texts)
    assert max(len(i) for i in ids) == model.max_length == (128 if key == "cryptobert" else 256)  # truncated
    widths = []
    for idx, inputs in model.batches(ids, 3):  # length-sorted, each padded only to its own longest item
        assert inputs["input_ids"].shape[1] == max(len(ids[i]) for i in idx)
        widths.append(inputs["input_ids"].shape[1])
    assert widths == sorted(widths) and widths[0] < widths[-1]


def test_tiny_models_are_deterministic_and_marked_synthetic(tiny_models, tmp_path):
    again = tiny.build_cryptobert(tmp_path / "again")
    spec = sm.ModelSpec("cryptobert", "x", str(again), "P", 128)
    resolved = sm.resolve(spec)
    assert resolved.revision == sm.resolve(replace(spec, path=str(tiny_models["cryptobert"]))).revision
    assert resolved.revision.startswith("sha256:") and len(resolved.revision) == 7 + 16
    assert resolved.synthetic
    assert tiny.SYNTHETIC_NOTE in (again / "README.md").read_text()
    assert sm.resolve(replace(spec, int8=True)).revision == resolved.revision + "+int8"
    size = sum(f.stat().st_size for f in again.iterdir())
    assert size < 1_000_000


def test_hf_cache_snapshot_gives_the_commit_as_revision(tiny_models, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--ElKulako--cryptobert"
    shutil.copytree(tiny_models["cryptobert"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    resolved = sm.resolve(sm.ModelSpec("cryptobert", "ElKulako/cryptobert", None, "CRYPTOETL_CRYPTOBERT_PATH", 128))
    assert resolved.revision == commit
    assert resolved.path == repo / "snapshots" / commit


def test_settings_from_env():
    cfg = Settings.from_env({"CRYPTOETL_CRYPTOBERT_PATH": "/m/c", "CRYPTOETL_SENTIMENT_BATCH_SIZE": "8",
                             "CRYPTOETL_SENTIMENT_INT8": "1", "CRYPTOETL_SENTIMENT_RESCORE": "true",
                             "CRYPTOETL_TORCH_THREADS": "3", "CRYPTOETL_FINBERT_MODEL_ID": "me/finbert"}).sentiment
    assert (cfg.cryptobert_path, cfg.batch_size, cfg.int8, cfg.rescore, cfg.torch_threads, cfg.finbert_model_id) == (
        "/m/c", 8, True, True, 3, "me/finbert")
    assert cfg.cryptobert_max_length == 128 and cfg.finbert_max_length == 256
    with pytest.raises(ConfigError, match="CRYPTOETL_SENTIMENT_BATCH_SIZE"):
        Settings.from_env({"CRYPTOETL_SENTIMENT_BATCH_SIZE": "0"})
    with pytest.raises(ConfigError, match="CRYPTOETL_SENTIMENT_INT8"):
        Settings.from_env({"CRYPTOETL_SENTIMENT_INT8": "maybe"})


# -- the step ------------------------------------------------------------------------------------

def test_step_routes_scores_and_stores(engine, tiny_models, caplog):
    _add_news(engine)
    ctx = _ctx(engine, tiny_models)
    with caplog.at_level(logging.WARNING):
        assert step.run_sentiment(ctx, DAY) == 5
    assert "SYNTHETIC sentiment model" in caplog.text
    rows = _rows(engine)
    assert set(rows) == {("a1", "cryptobert"), ("a2", "cryptobert"), ("a3", "cryptobert"), ("g1", "finbert"),
                         ("g2", "finbert")}
    for (aid, key), row in rows.items():
        art = next(a for a in ARTICLES if a[0] == aid)
        handle = ctx.models[key]
        text = step.article_text(art[2], art[3])
        assert row["model_id"] == {"cryptobert": "ElKulako/cryptobert", "finbert": "ProsusAI/finbert"}[key]
        # the default path: the precision gate keeps these random models in fp32 (test_sentiment_precision.py)
        assert row["model_revision"] == sm.content_revision(tiny_models[key]) == handle.revision
        assert row["published_at"] == T0 + timedelta(hours=art[1])
        assert row["text_sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert row["is_synthetic"] is True  # tiny models are synthetic
        expected = handle.model.score([text])[0]
        np.testing.assert_allclose([row["p_positive"], row["p_negative"], row["p_neutral"]], expected, atol=1e-5)
        assert row["score"] == pytest.approx(row["p_positive"] - row["p_negative"], abs=1e-12)
        assert row["label"] == sm.CANONICAL_LABELS[int(np.argmax(expected))]
    assert step.article_text("T", None) == "T" and step.article_text("T", "S") == "T. S"


def test_rerun_scores_nothing_and_rewrites_nothing(engine, tiny_models):
    _add_news(engine)
    ctx = _ctx(engine, tiny_models)
    step.run_sentiment(ctx, DAY)
    before = dump(engine, schema.crypto_sentiment_data)
    calls = [_count_forward(ctx.models[k]) for k in ("cryptobert", "finbert")]
    assert step.run_sentiment(ctx, DAY) == 0
    assert [c[0] for c in calls] == [0, 0]
    fresh = _ctx(engine, tiny_models)  # a new pod: resolves the revision, loads no weights
    assert step.run_sentiment(fresh, DAY) == 0
    assert set(fresh.models) == {"cryptobert", "finbert"} and not any(h.loaded for h in fresh.models.values())
    assert dump(engine, schema.crypto_sentiment_data) == before


def test_rescore_scores_again_and_changed_text_is_scored_again(engine, tiny_models):
    _add_news(engine)
    ctx = _ctx(engine, tiny_models)
    step.run_sentiment(ctx, DAY)
    before = dump(engine, schema.crypto_sentiment_data)
    crypto_calls = _count_forward(ctx.models["cryptobert"])
    again = StepContext(settings=_settings(engine, tiny_models, rescore=True), engine=engine, models=ctx.models)
    assert step.run_sentiment(again, DAY) == 5
    assert crypto_calls[0] == 2  # 3 crypto articles, batch size 2
    assert len(dump(engine, schema.crypto_sentiment_data)) == 5
    np.testing.assert_allclose(np.array([r[6:10] for r in dump(engine, schema.crypto_sentiment_data)], float),
                               np.array([r[6:10] for r in before], float), atol=1e-9)  # deterministic
    with engine.begin() as conn:
        conn.execute(update(schema.crypto_news).where(schema.crypto_news.c.article_id == "a2")
                     .values(summary="Losses deepen as whales sell"))
    crypto_calls[0] = 0
    assert step.run_sentiment(ctx, DAY) == 1
    assert crypto_calls[0] == 1
    assert _rows(engine)[("a2", "cryptobert")]["text_sha256"] == step.text_hash(
        "Ethereum slumps after exploit. Losses deepen as whales sell")


def test_a_new_revision_replaces_the_old_scores(sqlite_engine, tiny_models):
    """int8 (or a model upgrade) is a new revision: it rescores and replaces, one row per article
    and model role, so features never count an article twice."""
    _add_news(sqlite_engine, ARTICLES[:2])
    step.run_sentiment(_ctx(sqlite_engine, tiny_models, int8=False), DAY)  # fp32 forced (the old default)
    t = schema.crypto_sentiment_data
    with sqlite_engine.connect() as conn:
        fp32 = sorted(conn.execute(select(t.c.article_id, t.c.model_revision)).all())
    assert step.run_sentiment(_ctx(sqlite_engine, tiny_models, int8=True), DAY) == 2
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(t.c.article_id, t.c.model_key, t.c.model_revision, t.c.score)).all()
    assert len(rows) == 2 and len({(r.article_id, r.model_key) for r in rows}) == 2
    assert {r.model_revision for r in rows} == {rev + "+int8" for _, rev in fp32}
    assert all(-1 <= r.score <= 1 for r in rows)
    assert step.run_sentiment(_ctx(sqlite_engine, tiny_models, int8=True), DAY) == 0  # once per revision


def test_vanished_article_rows_are_deleted_others_untouched(engine, tiny_models):
    _add_news(engine)
    ctx = _ctx(engine, tiny_models)
    step.run_sentiment(ctx, DAY)
    before = {k: v for k, v in _rows(engine).items() if k[0] != "g2"}
    with engine.begin() as conn:
        conn.execute(delete(schema.crypto_news).where(schema.crypto_news.c.article_id == "g2"))
    assert step.run_sentiment(ctx, DAY) == 0
    assert _rows(engine) == before
    with engine.begin() as conn:  # every article gone: rows deleted without loading a model
        conn.execute(delete(schema.crypto_news))
    fresh = _ctx(engine, tiny_models)
    assert step.run_sentiment(fresh, DAY) == 0
    assert _rows(engine) == {} and not any(h.loaded for h in fresh.models.values())


def test_category_change_moves_the_article_to_the_other_model(sqlite_engine, tiny_models):
    _add_news(sqlite_engine)
    ctx = _ctx(sqlite_engine, tiny_models)
    step.run_sentiment(ctx, DAY)
    with sqlite_engine.begin() as conn:
        conn.execute(update(schema.crypto_news).where(schema.crypto_news.c.article_id == "g1")
                     .values(category="crypto"))
    assert step.run_sentiment(ctx, DAY) == 1
    keys = set(_rows(sqlite_engine))
    assert ("g1", "cryptobert") in keys and ("g1", "finbert") not in keys


def test_empty_interval_returns_0_and_loads_no_model(engine, tmp_path, monkeypatch):
    _add_news(engine, ARTICLES[:1])  # on another day
    monkeypatch.setattr(sm, "resolve", lambda spec: pytest.fail("a model was resolved"))
    ctx = StepContext(settings=settings_for(engine, sentiment=SentimentSettings(cryptobert_path=str(tmp_path / "no"))),
                      engine=engine)
    assert step.run_sentiment(ctx, Interval(utc(2026, 1, 7), utc(2026, 1, 8))) == 0
    assert ctx.clients == {} and ctx.models == {} and _rows(engine) == {}


def test_missing_model_is_a_clear_error_and_writes_nothing(sqlite_engine, tiny_models, tmp_path, monkeypatch):
    _add_news(sqlite_engine)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ctx = _ctx(sqlite_engine, tiny_models, cryptobert_path=None)
    with pytest.raises(sm.ModelNotAvailable) as err:
        step.run_sentiment(ctx, DAY)
    message = str(err.value)
    assert isinstance(err.value, ConfigError)
    assert "ElKulako/cryptobert" in message and "CRYPTOETL_CRYPTOBERT_PATH" in message
    assert "docker build --target sentiment" in message and "hf download" in message
    ctx = _ctx(sqlite_engine, tiny_models, finbert_path=str(tmp_path / "nowhere"))
    with pytest.raises(sm.ModelNotAvailable, match="CRYPTOETL_FINBERT_PATH=.*is not a directory"):
        step.run_sentiment(ctx, DAY)
    assert _rows(sqlite_engine) == {}


def test_bad_model_or_category_writes_nothing(engine, tiny_models):
    _add_news(engine)
    ctx = _ctx(engine, tiny_models, finbert_path=str(tiny_models["bad_labels"]))
    with pytest.raises(sm.UnknownLabels, match="LABEL_0"):
        step.run_sentiment(ctx, DAY)  # CryptoBERT scored its articles first: not written either
    assert _rows(engine) == {}
    with engine.begin() as conn:
        conn.execute(update(schema.crypto_news).where(schema.crypto_news.c.article_id == "g1")
                     .values(category="sports"))
    with pytest.raises(step.UnknownCategory, match="sports"):
        step.run_sentiment(_ctx(engine, tiny_models), DAY)
    assert _rows(engine) == {}


def test_cli_rescore_flag(sqlite_engine, tiny_models, monkeypatch, capsys):
    from cryptoetl import cli

    _add_news(sqlite_engine, ARTICLES[:1])
    url = sqlite_engine.url.render_as_string(hide_password=False)
    for name, value in {"CRYPTOETL_WAREHOUSE_URL": url, "CRYPTOETL_CRYPTOBERT_PATH": str(tiny_models["cryptobert"]),
                        "CRYPTOETL_FINBERT_PATH": str(tiny_models["finbert"])}.items():
        monkeypatch.setenv(name, value)
    seen = []
    real = step.run_sentiment
    monkeypatch.setattr(step, "run_sentiment", lambda ctx, iv: seen.append(
        ctx.settings.sentiment.rescore or "rescore" in ctx.options) or real(ctx, iv))
    args = ["run", "sentiment", "--interval", "2026-01-05T00:00Z/2026-01-06T00:00Z"]
    assert cli.main(args) == 0
    assert cli.main([*args, "--rescore"]) == 0
    assert seen == [False, True]
    assert cli.main(["run", "prices", "--interval", "2026-01-05T00:00Z/2026-01-06T00:00Z", "--rescore"]) == 2
    assert "--rescore applies to the sentiment step only" in capsys.readouterr().err


def test_moved_publication_time_corrects_the_copy_without_scoring(sqlite_engine, tiny_models):
    _add_news(sqlite_engine)
    ctx = _ctx(sqlite_engine, tiny_models)
    step.run_sentiment(ctx, DAY)
    before = _rows(sqlite_engine)[("a1", "cryptobert")]
    calls = _count_forward(ctx.models["cryptobert"])
    with sqlite_engine.begin() as conn:
        conn.execute(update(schema.crypto_news).where(schema.crypto_news.c.article_id == "a1")
                     .values(published_at=T0 + timedelta(hours=7)))
    assert step.run_sentiment(ctx, DAY) == 0 and calls[0] == 0
    after = _rows(sqlite_engine)[("a1", "cryptobert")]
    assert after == {**before, "published_at": T0 + timedelta(hours=7)}
