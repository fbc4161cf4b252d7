"""News tables: articles, their sightings, mentions, quarantine and sentiment scores."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from cryptoetl.warehouse.schema.core import UTF8MB4, Double, _symbol, metadata

# flagged; a longer canonical URL, the item's identity, sends it to crypto_news_quarantine).
TITLE_MAX_CHARS = 1_000  # real feeds' titles stay under ~300
SUMMARY_MAX_CHARS = 8_000  # TEXT holds 65,535 bytes: 4-byte UTF-8 fits 16k characters
URL_MAX_CHARS = 2_048  # browsers and CDNs cap URLs around 2k


def _is_trimmed() -> Column:
    return Column("is_trimmed", Boolean, nullable=False, default=False, server_default=false(),
                  comment="title or summary cut to the stored limit (the source's was longer)")


crypto_news = Table(
    "crypto_news",
    metadata,
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by `source`"),
    Column("source", String(64), nullable=False,
           comment="the sighting stored: guardian > rss:<feed> > cryptopanic (fixed priority)"),
    Column("title", Text, nullable=False),
    Column("summary", Text, comment="plain text; NULL when the source gives none"),
    Column("url", String(URL_MAX_CHARS), nullable=False, comment="canonical URL (no tracking parameters)"),
    Column("category", String(16), nullable=False, comment="crypto | general (from the text)"),
    Column("is_synthetic", Boolean, nullable=False, comment="true when served by the offline sandbox"),
    _is_trimmed(),
    Index("ix_crypto_news_published_at", "published_at"),
    comment="News articles, stored once whatever source or run delivered them; "
    "rebuilt from crypto_news_sightings",
    **UTF8MB4,
)

crypto_news_mentions = Table(
    "crypto_news_mentions",
    metadata,
    Column("article_id", String(64), primary_key=True),
    _symbol(),
    Index("ix_crypto_news_mentions_symbol", "symbol"),
    comment="Which configured symbols each crypto_news article mentions (title and summary)",
    **UTF8MB4,
)

crypto_news_sightings = Table(
    "crypto_news_sightings",
    metadata,
    Column("source", String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by this source"),
    Column("title", Text, nullable=False),
    Column("summary", Text),
    Column("url", String(URL_MAX_CHARS), nullable=False, comment="canonical URL"),
    Column("is_synthetic", Boolean, nullable=False),
    _is_trimmed(),
    Column("story_key", String(64),
           comment="sha256 of the publisher's domain and the normalised title (story rule, loaders/news.py); "
                   "NULL in rows written before revision 0005"),
    Index("ix_crypto_news_sightings_published_at", "published_at"),
    Index("ix_crypto_news_sightings_article_id", "article_id"),
    Index("ix_crypto_news_sightings_story_key", "story_key"),
    comment="Each source's copy of each article; a source's run replaces its own rows for its interval",
    **UTF8MB4,
)

crypto_news_quarantine = Table(
    "crypto_news_quarantine",
    metadata,
    Column("source", String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
    Column("article_id", String(64), primary_key=True, comment="sha256 of the canonical URL"),
    Column("published_at", DateTime(), nullable=False, comment="UTC, as reported by this source"),
    Column("reason", String(255), nullable=False, comment="why the item could not be stored"),
    Column("title", Text, nullable=False, comment="trimmed to the title limit"),
    Column("url", Text, nullable=False, comment="the canonical URL, trimmed to 16,000 characters"),
    Column("url_length", Integer, nullable=False, comment="characters of the full canonical URL"),
    Column("is_synthetic", Boolean, nullable=False),
    Index("ix_crypto_news_quarantine_published_at", "published_at"),
    comment="News items a source delivered that could not be stored as articles, with the reason",
    **UTF8MB4,
)

crypto_sentiment_data = Table(
    "crypto_sentiment_data",
    metadata,
    Column("article_id", String(64), primary_key=True),
    Column("model_id", String(128), primary_key=True),
    Column("model_revision", String(64), primary_key=True),
    Column("model_key", String(16), nullable=False,
           comment="cryptobert | finbert: the model's role, whatever model_id is configured for it"),
    Column("published_at", DateTime(), nullable=False, comment="copied from crypto_news for window joins"),
    Column("label", String(16), nullable=False, comment="argmax, normalised: positive | negative | neutral"),
    Column("score", Double, nullable=False, comment="P(positive|bullish) - P(negative|bearish), in [-1, 1]"),
    Column("p_positive", Double, nullable=False),
    Column("p_negative", Double, nullable=False),
    Column("p_neutral", Double, nullable=False),
    Column("text_sha256", String(64), nullable=False,
           comment="sha256 of the scored text (title + '. ' + summary): a changed text is scored again"),
    Column("is_synthetic", Boolean, nullable=False,
           comment="true when the article (sandbox) or the model (tiny demo model) is synthetic"),
    Index("ix_crypto_sentiment_published_at", "published_at"),
    comment="One score per article per model revision (loaders/sentiment.py, docs/SENTIMENT.md)",
    **UTF8MB4,
)

sentiment_precision_decisions = Table(
    "sentiment_precision_decisions",
    metadata,
    Column("model_id", String(128), primary_key=True),
    Column("model_revision", String(64), primary_key=True, comment="the fp32 revision (weights)"),
    Column("calibration", String(64), primary_key=True, comment="set version / truncation length / batch size"),
    Column("tolerance", String(48), primary_key=True),
    Column("runtime", String(96), primary_key=True, comment="torch, transformers and tokenizers versions"),
    Column("cpu", String(96), primary_key=True,
           comment="torch's CPU capability / quantized engine / int8 dot-product flags"),
    Column("precision", String(8), nullable=False, comment="int8 | fp32: what the gate chose"),
    Column("reason", String(64), nullable=False),
    Column("n_texts", Integer, nullable=False),
    Column("mean_abs_score_diff", Double),
    Column("max_abs_score_diff", Double),
    Column("label_agreement", Double),
    Column("fp32_seconds", Double),
    Column("int8_seconds", Double),
    Column("gate_seconds", Double),
    Column("decided_at", DateTime(), nullable=False, comment="UTC"),
    comment="The sentiment precision gate's decisions, reused by later loads of the same key "
            "(sentiment/precision.py)",
    **UTF8MB4,
)
