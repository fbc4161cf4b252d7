"""One oversized or unusual news item never blocks the rest of its run (SQLite and MariaDB).

Seen on MariaDB before: a 126k-character title or a 1,500-character URL failed the whole write
(error 1406), and an emoji failed it on a database whose default charset is not utf8mb4 (1366).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from alembic import command
from conftest import MYSQL_URL
from helpers import dump, settings_for, utc
from sqlalchemy import create_engine, make_url, select, text

from cryptoetl.intervals import Interval
from cryptoetl.loaders import news as loader
from cryptoetl.news_tagging import NewsItem
from cryptoetl.step import StepContext
from cryptoetl.warehouse import migrate, schema
from cryptoetl.warehouse.engine import get_engine

DAY = Interval(utc(2026, 3, 1), utc(2026, 3, 2))
EMOJI_TITLE = "Bitcoin 🚀 to the moon? Ethereum 🌕 and a snowman ☃ disagree"


def _items() -> list[NewsItem]:
    base = "https://news.example.com/"
    at = [DAY.start + timedelta(hours=h) for h in range(1, 7)]
    return [
        NewsItem(base + "plain", at[0], "Bitcoin steady as markets wait", "A plain summary."),
        NewsItem(base + "huge-title", at[1], "Bitcoin " + "x" * 126_000, "s" * 20_000),
        NewsItem(base + "a" * 1_500, at[2], "Ethereum URL of 1,500 characters", None),
        NewsItem(base + "b" * 3_000, at[3], "A URL too long to be anyone's identity", None),
        NewsItem(base + "emoji", at[4], EMOJI_TITLE, "Summary with emoji 😀"),
        NewsItem(base + "after", at[5], "Solana news after the odd ones", None),
    ]


def _load(engine):
    ctx = StepContext(settings=settings_for(engine), engine=engine)
    return loader._replace_source_interval(ctx, "guardian", _items(), DAY)


def test_oversized_items_are_trimmed_or_quarantined_and_the_rest_is_written(engine):
    assert _load(engine) == 5
    with engine.connect() as conn:
        news = {r.url.rsplit("/", 1)[1][:10]: r for r in conn.execute(select(schema.crypto_news))}
        quarantine = conn.execute(select(schema.crypto_news_quarantine)).all()
    assert set(news) == {"plain", "huge-title", "a" * 10, "emoji", "after"}
    huge = news["huge-title"]
    assert huge.is_trimmed and len(huge.title) == schema.TITLE_MAX_CHARS and huge.title.endswith("…")
    assert len(huge.summary) == schema.SUMMARY_MAX_CHARS
    assert not news["plain"].is_trimmed and len(news["a" * 10].url) > 1_500
    assert news["emoji"].title == EMOJI_TITLE and news["emoji"].summary == "Summary with emoji 😀"
    (q,) = quarantine
    assert q.source == "guardian" and q.url_length > schema.URL_MAX_CHARS and "characters" in q.reason
    # a rerun changes nothing, quarantine included
    tables = (schema.crypto_news, schema.crypto_news_sightings, schema.crypto_news_quarantine)
    before = [dump(engine, t) for t in tables]
    _load(engine)
    assert [dump(engine, t) for t in tables] == before


def test_rss_upserts_trim_and_quarantine_too(engine):
    ctx = StepContext(settings=settings_for(engine), engine=engine)
    assert loader._upsert_feeds(ctx, [("rss:coindesk", _items())], loader.Tagger(ctx.settings.symbols)) == 5
    with engine.connect() as conn:
        assert conn.execute(select(schema.crypto_news_quarantine.c.source)).scalars().all() == ["rss:coindesk"]
        trimmed = conn.execute(select(schema.crypto_news.c.article_id).where(schema.crypto_news.c.is_trimmed)).all()
    assert len(trimmed) == 1


@pytest.mark.mysql
def test_emoji_survive_a_database_whose_default_charset_is_latin1(mysql_server_url):
    admin = create_engine(make_url(MYSQL_URL))
    name = f"cryptoetl_latin1_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET latin1"))
    try:
        url = make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)  # no charset given
        engine = get_engine(url)
        schema.create_all(engine)
        # as a warehouse adopted from 0.1.0 on this server would be (0.1.0 set no charset): migration
        # 0002 converts its text tables
        with engine.connect() as conn:  # back to the baseline with the revisions' own downgrades
            migrate._run(command.downgrade, migrate.alembic_config(), conn, migrate.BASELINE)
            conn.commit()
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE crypto_news CONVERT TO CHARACTER SET latin1"))
            conn.execute(text("ALTER TABLE crypto_news_sightings CONVERT TO CHARACTER SET latin1"))
        schema.create_all(engine)  # = migrate: 0001 -> head
        assert _load(engine) == 5
        with engine.connect() as conn:
            titles = conn.execute(select(schema.crypto_news.c.title)).scalars().all()
        assert EMOJI_TITLE in titles
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()
