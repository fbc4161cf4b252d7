"""The sentiment precision gate (sentiment/precision.py): int8 only when it agrees with fp32 on the
calibration set, the decision in the stored revision, a default flip that does not rescore history.

The gate is tested on a tiny BERT classifier TRAINED here (a few seconds, one thread) on a labelled
synthetic set, so that its fp32 scores have real margins and agreement means something; and on the
seeded RANDOM stand-ins of sentiment/tiny.py, whose int8 copies disagree with them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from helpers import settings_for, utc
from sqlalchemy import insert, select

from cryptoetl.config import ConfigError, SentimentSettings, Settings
from cryptoetl.intervals import Interval
from cryptoetl.loaders import sentiment as step
from cryptoetl.sentiment import calibration, precision, tiny
from cryptoetl.sentiment import model as sm
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema

HEADLINES = list(calibration.HEADLINES)
DAY = Interval(utc(2026, 2, 2), utc(2026, 2, 3))
T0 = datetime(2026, 2, 2)
ARTICLES = [  # (id, hour, title, summary, category)
    ("p1", 1, "Bitcoin surges to a record high", "ETF inflows climb as traders turn bullish", "crypto"),
    ("p2", 2, "Ethereum slumps after exploit", None, "crypto"),
    ("p3", 3, "Stocks flat as the fed holds rates steady", "Outlook unchanged", "general"),
    ("p4", 4, "Recession fears hit stocks", "Nasdaq and Dow tumble as yields rise", "general"),
    ("p5", 5, "Solana rallies on strong adoption", "Volumes surge", "crypto"),
]

# The synthetic labelled set: filler words plus one or two words of the label's class.
_CLASS_WORDS = (  # FinBERT's label order: 0 positive, 1 negative, 2 neutral
    "surge surges soar rally rallies jump gain gains climb climbs rise record high bullish breakout recovery "
    "rebound adoption inflows growth strong optimism profit beat approved upgraded".split(),
    "drop drops fall falls plunge crash crashes slump slumps tumble decline sink bearish selloff dump fear "
    "panic loss losses outflows weak warning downgrade bankruptcy fraud hack exploit lawsuit ban rejected".split(),
    "steady flat mixed unchanged calm sideways range consolidation holds stable expected report".split(),
)
_FILLER = ("bitcoin btc ethereum eth solana crypto market markets stocks shares token exchange fund etf the a as "
           "after on in of to and investors traders price prices week today fed rates bank").split()


def _labelled(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(3))
        words = [str(w) for w in rng.choice(_FILLER, int(rng.integers(4, 10)))]
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(_CLASS_WORDS[label])))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def _train(tokenizer, max_steps: int = 600):
    """Train until 99% of a held-out synthetic set is right (checked every 50 steps; 100-250 steps)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, id2label=dict(tiny.FINBERT_LABELS),
                        label2id={v: k for k, v in tiny.FINBERT_LABELS.items()}, cryptoetl_synthetic=True)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    texts, labels = _labelled(600, seed=0)
    enc, y = tokenizer(texts, padding=True, return_tensors="pt"), torch.tensor(labels)
    held_out, truth = _labelled(300, seed=1)
    held_enc, truth = tokenizer(held_out, padding=True, return_tensors="pt"), torch.tensor(truth)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = torch.Generator().manual_seed(0)
    accuracy = 0.0
    for n in range(1, max_steps + 1):
        model.train()
        idx = torch.randint(0, len(texts), (32,), generator=batches)
        loss = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], labels=y[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if n % 50 == 0:
            model.eval()
            with torch.inference_mode():
                accuracy = float((model(**held_enc).logits.argmax(dim=1) == truth).float().mean())
            if accuracy >= 0.99:
                break
    return model.eval(), accuracy


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A tiny BERT classifier with FinBERT's label order, trained on the synthetic labelled set."""
    import torch

    tokenizer = tiny.wordpiece_tokenizer()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is several times faster than two on a busy machine
    try:
        model, accuracy = _train(tokenizer)
    finally:
        torch.set_num_threads(threads)
    assert accuracy >= 0.95, f"the tiny classifier did not learn its labels (held-out accuracy {accuracy:.2f})"
    return tiny._save(tmp_path_factory.mktemp("trained") / "finbert", model, tokenizer,
                      "Tiny BERT trained on SYNTHETIC labels (tests)")


def _spec(path, int8: bool | None = None) -> sm.ModelSpec:
    return sm.ModelSpec("finbert", "ProsusAI/finbert", str(path), "CRYPTOETL_FINBERT_PATH", 256, int8)


def _quantized(model: sm.SentimentModel) -> bool:
    return any("quantized" in type(module).__module__ for module in model.model.modules())


# -- the gate ------------------------------------------------------------------------------------

def test_tolerance_is_the_documented_one():
    tol = precision.TOLERANCE
    assert (tol.max_mean_abs_score_diff, tol.min_label_agreement) == (0.01, 0.98)
    assert tol.holds(0.01, 59 / 60) and tol.holds(0.0, 1.0)  # 60 texts: one label may differ
    assert not tol.holds(0.0, 58 / 60) and not tol.holds(0.0101, 1.0)


def test_calibration_set_is_fixed_and_versioned():
    assert len(HEADLINES) == 60 and len(set(HEADLINES)) == 60
    digest = hashlib.sha256("\n".join(HEADLINES).encode()).hexdigest()[:16]
    # Editing a text changes every gate decision's input: bump CALIBRATION_VERSION with the new digest.
    assert (calibration.CALIBRATION_VERSION, digest) == ("2026-12-v1", "8fa44f04cc14f879")


def test_gate_uses_int8_for_a_trained_model_that_agrees(trained_model, caplog):
    base = sm.content_revision(trained_model)
    handle = sm.ModelHandle(_spec(trained_model))  # the default: auto
    assert handle.revisions == (base, base + "+int8") and not handle.loaded
    with caplog.at_level(logging.INFO, logger="cryptoetl.sentiment"):
        model = handle.model
    gate = model.gate
    assert (gate.precision, gate.reason, gate.n_texts) == ("int8", "within tolerance", 60)
    assert model.revision == handle.revision == base + "+int8" and model.precision == "int8" and _quantized(model)
    assert 0 < gate.mean_abs_score_diff <= 0.01 and gate.label_agreement >= 0.98 and gate.seconds > 0
    assert "precision gate" in caplog.text and "int8 (within tolerance" in caplog.text
    assert f"labels {round(gate.label_agreement * 60)}/60" in caplog.text
    # The measured agreement is the int8 copy's against the same weights in fp32.
    fp32 = sm.load(sm.resolve(_spec(trained_model, int8=False)))
    assert fp32.gate is None and fp32.revision == base and not _quantized(fp32)
    measured = precision.agreement(fp32.score(HEADLINES), model.score(HEADLINES))
    assert measured == pytest.approx((gate.mean_abs_score_diff, gate.max_abs_score_diff, gate.label_agreement),
                                     abs=1e-9)
    assert sm.load(sm.resolve(_spec(trained_model))).gate.mean_abs_score_diff == pytest.approx(
        gate.mean_abs_score_diff, abs=1e-9)  # deterministic for a given model


def test_gate_keeps_fp32_outside_the_tolerance(trained_model):
    fp32 = sm.load(sm.resolve(_spec(trained_model, int8=False)))
    chosen, decision = precision.choose_precision(fp32)
    assert chosen is not fp32 and chosen.revision == fp32.revision + "+int8" and _quantized(chosen)
    assert not _quantized(fp32)  # the fp32 model is left as it was
    for impossible in (precision.Tolerance(max_mean_abs_score_diff=0.0),  # the int8 copy never scores identically
                       precision.Tolerance(min_label_agreement=1.01),
                       precision.Tolerance(max_mean_abs_score_diff=decision.mean_abs_score_diff / 2)):
        kept, rejected = precision.choose_precision(fp32, impossible)
        assert kept is fp32 and kept.revision == sm.content_revision(trained_model)
        assert (rejected.precision, rejected.reason) == ("fp32", "outside tolerance")
        assert rejected.mean_abs_score_diff == pytest.approx(decision.mean_abs_score_diff, abs=1e-9)
    assert decision.mean_abs_score_diff > 0


@pytest.mark.parametrize("build", [tiny.build_finbert, tiny.build_cryptobert])
def test_random_models_whose_int8_copy_disagrees_stay_fp32(build, tmp_path, caplog):
    """The seeded random stand-ins (wide initialisation, no margins): their int8 copies flip labels,
    so the default path scores them in fp32 (and tests/test_sentiment.py sees fp32 revisions)."""
    path = build(tmp_path / "random")
    with caplog.at_level(logging.INFO, logger="cryptoetl.sentiment"):
        model = sm.load(sm.resolve(_spec(path)))
    gate = model.gate
    assert (gate.precision, gate.reason) == ("fp32", "outside tolerance")
    assert gate.mean_abs_score_diff > 0.01 or gate.label_agreement < 0.98
    assert model.revision == sm.content_revision(path) and not _quantized(model)
    assert "fp32 (outside tolerance" in caplog.text


def test_failed_quantization_falls_back_to_fp32(trained_model, monkeypatch, caplog):
    def no_int8_kernels(model):
        raise RuntimeError("no int8 engine on this CPU")

    monkeypatch.setattr(precision, "quantize_int8", no_int8_kernels)
    model = sm.load(sm.resolve(_spec(trained_model)))
    assert model.revision == sm.content_revision(trained_model) and not _quantized(model)
    assert (model.gate.precision, model.gate.reason, model.gate.label_agreement) == (
        "fp32", "int8 failed: RuntimeError", None)
    assert "no int8 engine on this CPU" in caplog.text


def test_forced_paths_skip_the_gate(trained_model):
    base = sm.content_revision(trained_model)
    for int8, revision in ((True, base + "+int8"), (False, base)):
        handle = sm.ModelHandle(_spec(trained_model, int8))
        assert handle.revisions == (revision,) and handle.revision == revision and not handle.loaded
        assert handle.model.gate is None and handle.model.revision == revision and _quantized(handle.model) is int8


def test_int8_setting_is_auto_by_default_and_can_force_either_path():
    assert SentimentSettings().int8 is None and Settings.from_env({}).sentiment.int8 is None
    assert sm.ModelSpec.from_settings(SentimentSettings(), "finbert").int8 is None
    for raw, expected in (("auto", None), ("AUTO", None), ("1", True), ("true", True), ("0", False), ("no", False)):
        assert Settings.from_env({"CRYPTOETL_SENTIMENT_INT8": raw}).sentiment.int8 is expected
    with pytest.raises(ConfigError, match="CRYPTOETL_SENTIMENT_INT8='maybe': use auto, 1 or 0"):
        Settings.from_env({"CRYPTOETL_SENTIMENT_INT8": "maybe"})


# -- the step ------------------------------------------------------------------------------------

def _ctx(engine, model_dir, **sentiment) -> StepContext:
    cfg = SentimentSettings(cryptobert_path=str(model_dir), finbert_path=str(model_dir), batch_size=2)
    return StepContext(settings=settings_for(engine, sentiment=replace(cfg, **sentiment)), engine=engine)


def _add_news(engine, articles) -> None:
    with engine.begin() as conn:
        conn.execute(insert(schema.crypto_news), [
            {"article_id": aid, "published_at": T0 + timedelta(hours=h), "source": "guardian", "title": title,
             "summary": summary, "url": f"https://example.test/{aid}", "category": cat, "is_synthetic": False}
            for aid, h, title, summary, cat in articles])


def _revisions(engine) -> dict[str, str]:
    t = schema.crypto_sentiment_data
    with engine.connect() as conn:
        return dict(conn.execute(select(t.c.article_id, t.c.model_revision)).all())


def test_default_step_stores_int8_scores_within_the_tolerance(sqlite_engine, trained_model, caplog):
    _add_news(sqlite_engine, ARTICLES)
    with caplog.at_level(logging.INFO):
        assert step.run_sentiment(_ctx(sqlite_engine, trained_model), DAY) == 5
    base = sm.content_revision(trained_model)
    assert set(_revisions(sqlite_engine).values()) == {base + "+int8"}
    assert caplog.text.count("int8 (within tolerance") == 2  # one gate per model role
    t = schema.crypto_sentiment_data
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.article_id)).all()
    texts = {a[0]: step.article_text(a[2], a[3]) for a in ARTICLES}
    fp32 = sm.load(sm.resolve(_spec(trained_model, int8=False))).score([texts[r.article_id] for r in rows])
    stored = np.array([[r.p_positive, r.p_negative, r.p_neutral] for r in rows])
    mean_diff, max_diff, labels = precision.agreement(fp32, stored)
    assert 0 < mean_diff <= 0.01 and labels == 1.0  # scored by the int8 copy, within the tolerance of fp32
    assert [r.label for r in rows] == [sm.CANONICAL_LABELS[i] for i in fp32.argmax(axis=1)]


def test_default_flip_keeps_history_and_forcing_a_path_rescores(sqlite_engine, trained_model, caplog):
    base = sm.content_revision(trained_model)
    _add_news(sqlite_engine, ARTICLES[:4])
    assert step.run_sentiment(_ctx(sqlite_engine, trained_model, int8=False), DAY) == 4  # the old default
    assert set(_revisions(sqlite_engine).values()) == {base}
    auto = _ctx(sqlite_engine, trained_model)
    assert step.run_sentiment(auto, DAY) == 0  # fp32 rows count as scored under auto: no weights, no gate
    assert set(auto.models) == {"cryptobert", "finbert"} and not any(h.loaded for h in auto.models.values())
    _add_news(sqlite_engine, ARTICLES[4:])
    with caplog.at_level(logging.INFO, logger="cryptoetl.loaders.sentiment"):
        assert step.run_sentiment(_ctx(sqlite_engine, trained_model), DAY) == 1  # only the new article
    assert _revisions(sqlite_engine) == {"p1": base, "p2": base, "p3": base, "p4": base, "p5": base + "+int8"}
    assert f"already scored: 2 under {base}" in caplog.text  # the mix is logged, per revision
    assert step.run_sentiment(_ctx(sqlite_engine, trained_model, int8=False), DAY) == 1  # forced: p5 replaced
    assert set(_revisions(sqlite_engine).values()) == {base}
    assert step.run_sentiment(_ctx(sqlite_engine, trained_model, int8=True), DAY) == 5
    assert set(_revisions(sqlite_engine).values()) == {base + "+int8"}
    assert step.run_sentiment(_ctx(sqlite_engine, trained_model), DAY) == 0


def _decisions(engine) -> list[dict]:
    t = schema.sentiment_precision_decisions
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).order_by(t.c.model_id)).mappings()]


def test_a_later_pod_reuses_the_kept_decision_without_scoring_the_calibration_set(sqlite_engine, trained_model,
                                                                                   monkeypatch, caplog):
    _add_news(sqlite_engine, ARTICLES)
    assert step.run_sentiment(_ctx(sqlite_engine, trained_model), DAY) == 5  # the first pod measures
    kept = _decisions(sqlite_engine)
    import torch
    assert [(d["model_id"], d["precision"], d["reason"], d["n_texts"]) for d in kept] == [
        ("ElKulako/cryptobert", "int8", "within tolerance", 60), ("ProsusAI/finbert", "int8", "within tolerance", 60)]
    base = sm.content_revision(trained_model)
    assert {(d["model_revision"], d["calibration"]) for d in kept} == {
        (base, f"{calibration.CALIBRATION_VERSION}/len128/b32")}  # the tiny model's 128 positions
    assert all(f"torch {torch.__version__}, transformers " in d["runtime"] for d in kept)
    assert all(0 < d["mean_abs_score_diff"] <= 0.01 and d["label_agreement"] >= 0.98 for d in kept)

    def no_second_measurement(*args, **kwargs):
        raise AssertionError("the gate measured again")

    monkeypatch.setattr(precision, "_measure", no_second_measurement)
    caplog.clear()  # the first pod's lines (captured when the logger is already at INFO)
    with caplog.at_level(logging.INFO):
        assert step.run_sentiment(_ctx(sqlite_engine, trained_model, rescore=True), DAY) == 5  # a new pod
    assert set(_revisions(sqlite_engine).values()) == {base + "+int8"}
    assert caplog.text.count("int8 (within tolerance") == 2 and caplog.text.count("recorded ") == 2
    assert _decisions(sqlite_engine) == kept  # reused, not written again


def test_another_torch_build_or_tolerance_measures_again(sqlite_engine, trained_model, monkeypatch):
    records = step.GateRecordsTable(sqlite_engine)
    first = sm.load(sm.resolve(_spec(trained_model)), records=records)
    assert first.gate.recorded_at is None and len(_decisions(sqlite_engine)) == 1
    again = sm.load(sm.resolve(_spec(trained_model)), records=records)
    assert again.gate.recorded_at is not None and again.precision == "int8"
    assert again.gate.mean_abs_score_diff == first.gate.mean_abs_score_diff
    import torch
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # an upgraded image
    assert sm.load(sm.resolve(_spec(trained_model)), records=records).gate.recorded_at is None
    strict = precision.Tolerance(max_mean_abs_score_diff=0.0, min_label_agreement=1.0)
    fp32 = sm.load(sm.resolve(_spec(trained_model, int8=False)))
    chosen, decision = precision.choose_precision(fp32, strict, records=records)
    assert (decision.precision, decision.recorded_at, chosen is fp32) == ("fp32", None, True)
    _, reused = precision.choose_precision(fp32, strict, records=records)
    assert (reused.precision, reused.reason) == ("fp32", "outside tolerance") and reused.recorded_at is not None
    assert sum("torch 9.9.9," in d["runtime"] for d in _decisions(sqlite_engine)) == 2
    assert len(_decisions(sqlite_engine)) == 3


def test_a_kept_int8_decision_falls_back_to_fp32_when_quantizing_fails_now(sqlite_engine, trained_model,
                                                                          monkeypatch, caplog):
    records = step.GateRecordsTable(sqlite_engine)
    sm.load(sm.resolve(_spec(trained_model)), records=records)

    def no_int8_kernels(model):
        raise RuntimeError("no int8 engine on this CPU")

    monkeypatch.setattr(precision, "quantize_int8", no_int8_kernels)
    model = sm.load(sm.resolve(_spec(trained_model)), records=records)
    assert (model.precision, model.gate.reason, _quantized(model)) == ("fp32", "int8 failed: RuntimeError", False)
    assert model.gate.recorded_at is not None  # applied from the kept decision, not measured again
    assert model.revision == sm.content_revision(trained_model) and "no int8 engine" in caplog.text


def test_two_pods_keeping_the_same_decision_at_once_both_go_on(sqlite_engine, trained_model, caplog):
    records = step.GateRecordsTable(sqlite_engine)
    fp32 = sm.load(sm.resolve(_spec(trained_model, int8=False)))
    key = precision.GateKey.of(fp32, precision.TOLERANCE, calibration.HEADLINES, 32)
    decision = precision.GateDecision("int8", "within tolerance", 60, precision.TOLERANCE, 0.001, 0.002, 1.0)
    records.put(key, decision)
    records.put(key, replace(decision, precision="fp32"))  # the loser of the race: no error, the first kept
    assert [d["precision"] for d in _decisions(sqlite_engine)] == ["int8"]
    assert "this load's gate chose fp32, the kept decision is int8" in caplog.text
    assert records.get(replace(key, cpu="other")) is None
    assert records.get(replace(key, calibration=key.calibration.replace("/b32", "/b8"))) is None


def test_an_unusable_decision_table_is_a_warning_and_the_gate_measures(sqlite_engine, trained_model, caplog):
    with sqlite_engine.begin() as conn:
        schema.sentiment_precision_decisions.drop(conn)
    model = sm.load(sm.resolve(_spec(trained_model)), records=step.GateRecordsTable(sqlite_engine))
    assert (model.precision, model.gate.recorded_at) == ("int8", None)  # measured, used for this load
    assert "precision decisions unreadable, measuring" in caplog.text
    assert "not kept (measured again next load)" in caplog.text
