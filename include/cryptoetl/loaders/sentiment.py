"""The news-sentiment step: score the interval's ``crypto_news`` articles into ``crypto_sentiment_data``.

Routing: ``category = 'crypto'`` articles are scored by CryptoBERT (model_key ``cryptobert``),
``category = 'general'`` by FinBERT (``finbert``). The text is ``title + ". " + summary`` (the title
alone when there is no summary).

Once per model revision
-----------------------
An article is scored once per (model_id, model_revision). A rerun or backfill of an interval scores
only the articles that have no row for the current (model_id, model_revision), or whose text changed
since (``text_sha256`` differs: the news step stored another source's copy). Rows already there are
not rewritten: only their ``published_at`` / ``is_synthetic`` copies are corrected if crypto_news
changed them. An article holds one score per model role: scoring it with a new revision (a model
upgrade, int8, another model id) replaces the old revision's row, so features never count an article
twice. Switching back to an earlier revision scores again.
``CRYPTOETL_SENTIMENT_RESCORE=1`` (or ``python -m cryptoetl run sentiment --rescore``) scores every
article of the interval again with the current revision and replaces those rows.

Precision (``sentiment/precision.py``): by default (``CRYPTOETL_SENTIMENT_INT8=auto``) the precision
gate chooses int8 or fp32 when the weights load, and new rows get ``<rev>+int8`` or ``<rev>``. A row
under either of the two counts as scored (``ModelHandle.revisions``): the gate holds int8 to within
its tolerance of fp32, so turning the default on (or the gate changing its mind) does not rescore
the history, and the step still knows what to score without loading weights. The gate's decision is
kept in ``sentiment_precision_decisions`` (``GateRecordsTable``): a pod that loads the same weights
with the same torch on the same kind of CPU reuses it instead of measuring again. The log line of each
model role counts the interval's rows by revision, so a mix is visible. Forcing a path
(``CRYPTOETL_SENTIMENT_INT8=0`` or ``1``) accepts only that path's revision: its rows replace the
other path's as the intervals are run again.

Deletions: rows of articles that vanished from the interval (published_at in [start, end) but no
such article in crypto_news there any more) are deleted, every model and revision; rows of an
article under the other model role (its category changed) are deleted.

Failure: everything is read and scored before the one write transaction; any error (missing model,
unknown labels, unknown category) raises before it, and a failing write rolls back: nothing partial.

Empty interval: no article and nothing to delete -> returns 0 without resolving or loading a model.
When every article is already scored, the revision is computed (a content hash, or the snapshot
commit) but no weights are loaded and nothing is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cryptoetl.intervals import Interval
from cryptoetl.loaders import chunks
from cryptoetl.sentiment.model import CANONICAL_LABELS, ModelHandle, ModelSpec, warn_synthetic
from cryptoetl.sentiment.precision import GateDecision, GateKey
from cryptoetl.step import StepContext
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.retry import retry_transient

log = logging.getLogger(__name__)

# crypto_news.category -> model role
ROUTES = {"crypto": "cryptobert", "general": "finbert"}


class UnknownCategory(ValueError):
    """crypto_news holds a category this step has no model for."""


@dataclass(frozen=True)
class Article:
    article_id: str
    published_at: datetime
    text: str
    text_sha256: str
    category: str
    is_synthetic: bool


def article_text(title: str, summary: str | None) -> str:
    """The scored text: ``title + ". " + summary``, or the title when there is no summary."""
    title = (title or "").strip()
    summary = (summary or "").strip()
    return f"{title}. {summary}" if summary else title


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class GateRecordsTable:
    """The precision gate's decisions in ``sentiment_precision_decisions`` (``precision.GateRecords``).
    A cache: a database error reading or keeping one is logged, and the gate then measures (or its
    decision is used for this load only), never failing the step."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, key: GateKey) -> dict | None:
        table = schema.sentiment_precision_decisions
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(table).where(*(table.c[name] == value for name, value in
                                                         key.record().items()))).mappings().first()
        except SQLAlchemyError as exc:
            log.warning("sentiment: precision decisions unreadable, measuring: %s", exc)
            return None
        return dict(row) if row is not None else None

    def put(self, key: GateKey, decision: GateDecision) -> None:
        row = {**key.record(), **decision.record(), "decided_at": to_naive_utc(datetime.now(UTC))}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(schema.sentiment_precision_decisions), row)
        except IntegrityError:  # another pod kept its decision for this key first
            kept = self.get(key)
            if kept is None or kept["precision"] != decision.precision:
                log.warning("sentiment: %s %s: this load's gate chose %s, the kept decision is %s", key.model_id,
                            key.model_revision, decision.precision, kept and kept["precision"])
        except SQLAlchemyError as exc:
            log.warning("sentiment: precision decision for %s not kept (measured again next load): %s",
                        key.model_id, exc)


def model_handle(ctx: StepContext, key: str) -> ModelHandle:
    """The model of role ``key``, loaded once per step context (tests and the bench put their own
    in ``ctx.models``)."""
    if key not in ctx.models:
        settings = ctx.settings.sentiment
        ctx.models[key] = ModelHandle(ModelSpec.from_settings(settings, key), threads=settings.torch_threads,
                                      records=GateRecordsTable(ctx.engine))
    return ctx.models[key]


@dataclass
class _Plan:
    key: str
    handle: ModelHandle
    n_articles: int
    held: dict[str, int]  # rows of the current model_id among them that count as scored, by revision
    to_score: list[Article]
    to_fix: list[Article]  # scored, but published_at / is_synthetic changed in crypto_news
    misrouted: list[str]  # articles with rows under the other model role


def _plan(ctx: StepContext, key: str, group: list[Article], rescore: bool) -> _Plan:
    sent = schema.crypto_sentiment_data
    handle = model_handle(ctx, key)
    model_id, revisions = handle.spec.model_id, handle.revisions  # resolves the model: may raise ModelNotAvailable
    existing: dict[str, tuple] = {}
    misrouted: set[str] = set()
    with ctx.engine.connect() as conn:
        for chunk in chunks([a.article_id for a in group]):
            for r in conn.execute(select(sent.c.article_id, sent.c.model_id, sent.c.model_revision, sent.c.model_key,
                                         sent.c.published_at, sent.c.text_sha256, sent.c.is_synthetic)
                                  .where(sent.c.article_id.in_(chunk))):
                if r.model_key != key:
                    misrouted.add(r.article_id)
                elif r.model_id == model_id and r.model_revision in revisions:
                    existing[r.article_id] = (r.published_at, r.text_sha256, bool(r.is_synthetic), r.model_revision)
    to_score, to_fix = [], []
    for a in group:
        held = existing.get(a.article_id)
        if rescore or held is None or held[1] != a.text_sha256:
            to_score.append(a)
        elif (held[0], held[2]) != (a.published_at, a.is_synthetic or handle.synthetic):
            to_fix.append(a)
    held = Counter(row[3] for row in existing.values())
    return _Plan(key, handle, len(group), dict(sorted(held.items())), to_score, to_fix, sorted(misrouted))


def run_sentiment(ctx: StepContext, interval: Interval, *, rescore: bool | None = None) -> int:
    """Score the interval's articles not yet scored by the current model revisions; returns the number of
    score rows written. ``rescore``: score them again (default: the ``rescore`` option or setting)."""
    if rescore is None:
        rescore = ctx.settings.sentiment.rescore or "rescore" in ctx.options
    articles, vanished = _read_articles(ctx, interval)
    if not articles and not vanished:
        log.info("sentiment: no articles in %s: nothing to score, no model loaded", interval)
        return 0
    # What each model role has to do, from the rows already stored for these articles.
    plans: list[_Plan] = []
    for key in ROUTES.values():
        group = [a for a in articles if ROUTES[a.category] == key]
        if group:
            plans.append(_plan(ctx, key, group, rescore))
    new_rows = [row for plan in plans for row in _score(ctx, plan, interval, rescore)]
    if not (new_rows or vanished or any(plan.misrouted or plan.to_fix for plan in plans)):
        log.info("sentiment %s: every article already scored by the current revisions: nothing written", interval)
        return 0
    retry_transient(lambda: _write(ctx, interval, plans, new_rows, vanished), what=f"sentiment {interval}")
    fixed = sum(len(plan.to_fix) for plan in plans)
    log.info("sentiment %s: %d rows scored, %d vanished articles' rows deleted, %d rows' published_at/is_synthetic "
             "corrected", interval, len(new_rows), len(vanished), fixed)
    return len(new_rows)


def _read_articles(ctx: StepContext, interval: Interval) -> tuple[list[Article], list[str]]:
    """The interval's articles, and the ids of articles scored in the interval that are gone from it."""
    lo, hi = to_naive_utc(interval.start), to_naive_utc(interval.end)
    news, sent = schema.crypto_news, schema.crypto_sentiment_data
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(news.c.article_id, news.c.published_at, news.c.title, news.c.summary,
                                   news.c.category, news.c.is_synthetic)
                            .where(news.c.published_at >= lo, news.c.published_at < hi)
                            .order_by(news.c.article_id)).all()
        held_in_interval = set(conn.execute(select(sent.c.article_id).distinct().where(
            sent.c.published_at >= lo, sent.c.published_at < hi)).scalars())
    articles = []
    for r in rows:
        text = article_text(r.title, r.summary)
        articles.append(Article(r.article_id, r.published_at, text, text_hash(text), r.category, bool(r.is_synthetic)))
    unknown = sorted({a.category for a in articles} - set(ROUTES))
    if unknown:
        raise UnknownCategory(f"sentiment: crypto_news has articles of category {unknown} in {interval}; this step "
                              f"routes only {sorted(ROUTES)} ({ROUTES})")
    return articles, sorted(held_in_interval - {a.article_id for a in articles})


def _score(ctx: StepContext, plan: _Plan, interval: Interval, rescore: bool) -> list[dict]:
    """Score rows for the plan's articles (outside any transaction; weights load only when needed)."""
    handle = plan.handle
    held = ", ".join(f"{n} under {rev}" for rev, n in plan.held.items()) or "none"
    log.info("sentiment %s: %s revisions %s: %d articles in %s, %d to score (already scored: %s%s)", plan.key,
             handle.spec.model_id, "|".join(handle.revisions), plan.n_articles, interval, len(plan.to_score), held,
             ", rescore" if rescore else "")
    if not plan.to_score:
        return []
    if handle.synthetic:
        warn_synthetic(handle.resolved)
    probs = handle.model.score([a.text for a in plan.to_score], batch_size=ctx.settings.sentiment.batch_size)
    log.info("sentiment %s: scored %d articles with revision %s (%s)", plan.key, len(plan.to_score), handle.revision,
             handle.model.precision)
    rows = []
    for a, (p_pos, p_neg, p_neu) in zip(plan.to_score, probs.tolist(), strict=True):
        best = max(range(3), key=(p_pos, p_neg, p_neu).__getitem__)
        rows.append({
            "article_id": a.article_id, "model_id": handle.spec.model_id, "model_revision": handle.revision,
            "model_key": plan.key, "published_at": a.published_at, "label": CANONICAL_LABELS[best],
            "score": p_pos - p_neg, "p_positive": p_pos, "p_negative": p_neg, "p_neutral": p_neu,
            "text_sha256": a.text_sha256, "is_synthetic": a.is_synthetic or handle.synthetic})
    return rows


def _write(ctx: StepContext, interval: Interval, plans: list[_Plan], new_rows: list[dict],
           vanished: list[str]) -> None:
    """One transaction: deletions, replaced rows, new rows, corrected copies."""
    lo, hi = to_naive_utc(interval.start), to_naive_utc(interval.end)
    sent = schema.crypto_sentiment_data
    with ctx.engine.begin() as conn:
        for chunk in chunks(vanished):
            conn.execute(delete(sent).where(sent.c.article_id.in_(chunk), sent.c.published_at >= lo,
                                            sent.c.published_at < hi))
        for plan in plans:
            model_id, revisions = plan.handle.spec.model_id, plan.handle.revisions
            for chunk in chunks(plan.misrouted):
                conn.execute(delete(sent).where(sent.c.article_id.in_(chunk), sent.c.model_key != plan.key))
            for chunk in chunks([a.article_id for a in plan.to_score]):
                # one score per (article, model role): a new revision (or model) replaces the old one
                conn.execute(delete(sent).where(sent.c.model_key == plan.key, sent.c.article_id.in_(chunk)))
            for a in plan.to_fix:
                conn.execute(update(sent).where(sent.c.article_id == a.article_id, sent.c.model_id == model_id,
                                                sent.c.model_revision.in_(revisions))
                             .values(published_at=a.published_at,
                                     is_synthetic=a.is_synthetic or plan.handle.synthetic))
        if new_rows:
            conn.execute(insert(sent), new_rows)
