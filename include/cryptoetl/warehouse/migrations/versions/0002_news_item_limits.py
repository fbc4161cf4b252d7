"""News items of any size: longer URLs, a trimmed flag, and a quarantine for what cannot be stored.

On MariaDB one oversized or unusual item failed the whole news write: a 126k-character title or a
1,500-character URL (error 1406). RSS cannot backfill, so every item of that run was lost. Titles
and summaries longer than the limits (``loaders/news.py``) are now stored trimmed and flagged; an
item whose canonical URL (its identity) is too long goes to ``crypto_news_quarantine`` with the
reason, and the rest of the run is written. On MySQL, text tables adopted from 0.1.0 on a latin1
server become utf8mb4 (emoji failed there with error 1366).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4"}
NEWS_TABLES = ("crypto_news", "crypto_news_sightings")


URL_COMMENTS = {"crypto_news": "canonical URL (no tracking parameters)", "crypto_news_sightings": "canonical URL"}


def _tables_at_0001() -> dict[str, sa.Table]:
    """The two news tables as revision 0001 left them (frozen copies): SQLite rebuilds a table to
    change a column's type, and ``migrate --sql`` cannot reflect them from a live database."""
    meta = sa.MetaData()
    news = sa.Table(
        "crypto_news", meta,
        sa.Column("article_id", sa.String(64), primary_key=True, comment="sha256 of the canonical URL"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="UTC, as reported by `source`"),
        sa.Column("source", sa.String(64), nullable=False,
                  comment="the sighting stored: guardian > rss:<feed> > cryptopanic (fixed priority)"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, comment="plain text; NULL when the source gives none"),
        sa.Column("url", sa.String(1024), nullable=False, comment=URL_COMMENTS["crypto_news"]),
        sa.Column("category", sa.String(16), nullable=False, comment="crypto | general (from the text)"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False, comment="true when served by the offline sandbox"),
        sa.Index("ix_crypto_news_published_at", "published_at"), **UTF8MB4)
    sightings = sa.Table(
        "crypto_news_sightings", meta,
        sa.Column("source", sa.String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
        sa.Column("article_id", sa.String(64), primary_key=True, comment="sha256 of the canonical URL"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="UTC, as reported by this source"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("url", sa.String(1024), nullable=False, comment=URL_COMMENTS["crypto_news_sightings"]),
        sa.Column("is_synthetic", sa.Boolean, nullable=False),
        sa.Index("ix_crypto_news_sightings_published_at", "published_at"),
        sa.Index("ix_crypto_news_sightings_article_id", "article_id"), **UTF8MB4)
    return {"crypto_news": news, "crypto_news_sightings": sightings}


def _to_utf8mb4() -> None:
    """MySQL: the text tables in 4-byte UTF-8. A warehouse adopted from 0.1.0 on a server whose default
    is latin1 has latin1 tables (0.1.0 set no charset) and fails on any emoji (error 1366). Only
    tables not already utf8mb4 are converted: a conversion rewrites the table."""
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    for table in ("crypto_news", "crypto_news_sightings", "crypto_news_mentions", "crypto_sentiment_data"):
        if op.get_context().as_sql:  # `migrate --sql`: no database to ask; converting twice is harmless
            op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4")
            continue
        collation = bind.execute(sa.text(
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :t"), {"t": table}).scalar()
        if collation is not None and not collation.startswith("utf8mb4"):
            op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4")


def upgrade() -> None:
    _to_utf8mb4()
    frozen = _tables_at_0001()
    for table in NEWS_TABLES:
        # batch: an ALTER on MySQL, a table copy on SQLite (which cannot alter a column's type)
        with op.batch_alter_table(table, copy_from=frozen[table]) as batch:
            batch.alter_column("url", type_=sa.String(2048), existing_type=sa.String(1024), existing_nullable=False,
                               existing_comment=URL_COMMENTS[table])
            batch.add_column(sa.Column("is_trimmed", sa.Boolean, nullable=False, server_default=sa.false(),
                                       comment="title or summary cut to the stored limit (the source's was longer)"))
    op.create_table(
        "crypto_news_quarantine",
        sa.Column("source", sa.String(64), primary_key=True, comment="guardian | cryptopanic | rss:<feed>"),
        sa.Column("article_id", sa.String(64), primary_key=True, comment="sha256 of the canonical URL"),
        sa.Column("published_at", sa.DateTime(), nullable=False, comment="UTC, as reported by this source"),
        sa.Column("reason", sa.String(255), nullable=False, comment="why the item could not be stored"),
        sa.Column("title", sa.Text, nullable=False, comment="trimmed to the title limit"),
        sa.Column("url", sa.Text, nullable=False, comment="the canonical URL, trimmed to 16,000 characters"),
        sa.Column("url_length", sa.Integer, nullable=False, comment="characters of the full canonical URL"),
        sa.Column("is_synthetic", sa.Boolean, nullable=False),
        sa.Index("ix_crypto_news_quarantine_published_at", "published_at"),
        comment="News items a source delivered that could not be stored as articles, with the reason",
        **UTF8MB4)


def downgrade() -> None:
    op.drop_table("crypto_news_quarantine")
    for table in NEWS_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("is_trimmed")
            batch.alter_column("url", type_=sa.String(1024), existing_type=sa.String(2048), existing_nullable=False,
                               existing_comment=URL_COMMENTS[table])
