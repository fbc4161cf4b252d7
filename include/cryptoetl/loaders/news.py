"""News steps: Guardian, CryptoPanic and RSS articles into ``crypto_news``.

How the three sources share one article table
---------------------------------------------
Every source writes its own copy of each article to ``crypto_news_sightings`` (key: source,
article_id; the id is the sha256 of the canonical URL, so the same article from two sources
or two runs has one id). ``crypto_news`` and ``crypto_news_mentions`` are then rebuilt, in the
same transaction, for exactly the articles whose sightings changed (and the stories below): each
article's stored row is its sighting from the highest-priority source (guardian, then rss:<feed>,
then cryptopanic; ties by source name).

**The story rule** (articles without the publisher's URL). Real CryptoPanic posts carry no
``original_url``: only CryptoPanic's own page, the publisher's domain and the title. Such a
sighting (its URL on an aggregator's host, ``AGGREGATOR_HOSTS``) is *floating*; every other one is
*anchored* by the publisher's URL. Each sighting stores a ``story_key``: sha256 of the publisher's
domain (a floating sighting's reported domain, else its URL's host, ``www.`` dropped) and the
normalised title (``news_tagging.title_key``: entities decoded, NFKC, case-folded, punctuation
and spacing ignored). A floating sighting is the same article as an anchored one when their
``story_key`` is equal and their ``published_at`` are at most ``STORY_WINDOW`` (6 hours) apart:
then it adds no row (the anchored article's row stands, and outranks it anyway); otherwise it is
stored as its own article, under its CryptoPanic URL. A rebuild reads every sighting sharing a
story key with a changed sighting, so whether a floating sighting is absorbed depends only on
the set of sightings, never on which source ran first.

*False-merge risk:* two different articles of the same publisher with the same headline within
6 hours (a recurring "Bitcoin price today" column, a correction republished under the old
headline) make a CryptoPanic post of one of them absorbed by the other: the post is not stored,
and the article it stood for counts once instead of twice. The risk is bounded by requiring the
same domain (two publishers sharing a wire headline never merge) and the window; it never
merges two anchored articles (their URLs differ), only drops a CryptoPanic-only copy. The
converse miss: a publisher that edits the headline after CryptoPanic listed it, or a post
whose ``domain`` is not the publisher's URL host (a syndicated copy), stays a second row.
Sightings written before revision 0005 have no story key: they match by URL only until their
interval is loaded again.

Hence:

- (a) a rerun of one source's interval replaces that source's sightings of the interval with
  the same rows: nothing changes (idempotent);
- (b) the same article delivered by two sources is stored once, and the stored row is a pure
  function of the set of sightings, so it does not depend on the order runs happened in;
- (c) a source's run only deletes its *own* sightings: another source's articles stay; if a
  source drops an article another source also delivered, the article falls back to that
  source's copy instead of vanishing;
- (d) mentions and category are computed from the stored row's title and summary whenever that
  row is rebuilt, so they always match it.

Interval semantics
------------------
- Guardian and CryptoPanic: a run for [start, end) covers the articles that source reports as
  published in [start, end); it replaces that source's sightings in that range (and nothing
  else). Any chunking of a range gives the same rows (backfill equivalence).
- RSS cannot look back: a feed only lists its latest items. Each run upserts the items the feeds
  carry *now*, whatever their publication time, and never deletes older ones, so its rows are
  not scoped to the run's interval and the DAG cannot backfill (``catchup=False``).

Failure behaviour
-----------------
Everything is fetched before anything is written. If one query, page or feed fails (HTTP
error after retries, malformed or drifted payload, missing key), the step raises and writes
nothing: the interval keeps its previous rows. An answer with no articles at all where the
warehouse already holds that source's articles for the interval raises ``SourceDataMissing``
instead of erasing them. A missing ``GUARDIAN_API_KEY`` or ``CRYPTOPANIC_API_KEY`` fails the
task when it runs, with a message naming the setting (never at DAG parse time).

Concurrency: the three news DAGs may write at the same time. SQLite serialises writers; on
MySQL/MariaDB each write holds the named lock ``cryptoetl.crypto_news`` (``GET_LOCK``) so that
two rebuilds of the same article cannot interleave and store a lower-priority copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, delete, insert, select, text

from cryptoetl.intervals import Interval
from cryptoetl.loaders import chunks
from cryptoetl.loaders.universe import coins_for
from cryptoetl.news_tagging import NewsItem, Tagger, canonical_url
from cryptoetl.sources.cryptopanic import CryptoPanicClient
from cryptoetl.sources.guardian import GuardianClient, default_queries
from cryptoetl.sources.rss import RssClient, feed_urls
from cryptoetl.step import SourceDataMissing, StepContext
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import is_mysql, to_naive_utc
from cryptoetl.warehouse.retry import retry_transient
from cryptoetl.warehouse.writes import replace_interval

log = logging.getLogger(__name__)

GUARDIAN = GuardianClient.spec.name  # the source names stored with each sighting
CRYPTOPANIC = CryptoPanicClient.spec.name
RSS_PREFIX = f"{RssClient.spec.name}:"  # + the feed's name
LOCK_NAME = "cryptoetl.crypto_news"
LOCK_TIMEOUT_SECONDS = 600
AGGREGATOR_HOSTS = frozenset({"cryptopanic.com"})  # a sighting whose URL is here is floating (story rule)
STORY_WINDOW = timedelta(hours=6)


def source_priority(source: str) -> tuple[int, str]:
    """Lower wins: the Guardian's own copy, then a publisher's RSS copy, then the aggregator."""
    if source == GUARDIAN:
        rank = 0
    elif source.startswith(RSS_PREFIX):
        rank = 1
    elif source == CRYPTOPANIC:
        rank = 2
    else:
        rank = 3
    return rank, source


# -- steps ---------------------------------------------------------------------------------------

def run_news_guardian(ctx: StepContext, interval: Interval) -> int:
    """Guardian articles published in the interval: crypto terms, and general business/market
    news. Returns the number of Guardian sightings written."""
    client = ctx.client(GuardianClient)
    items: list[NewsItem] = []
    for query in default_queries(coins_for(ctx, interval)):
        items += client.search(query, interval.start, interval.end)
    return retry_transient(lambda: _replace_source_interval(ctx, GUARDIAN, items, interval),
                           what=f"news {GUARDIAN} {interval}")


def run_news_cryptopanic(ctx: StepContext, interval: Interval) -> int:
    """CryptoPanic posts published in the interval. Without ``CRYPTOPANIC_API_KEY`` the task fails
    with a message naming it: the DAG exists, so a missing key is a configuration error."""
    client = ctx.client(CryptoPanicClient)
    items = client.posts(interval.start, interval.end)
    return retry_transient(lambda: _replace_source_interval(ctx, CRYPTOPANIC, items, interval),
                           what=f"news {CRYPTOPANIC} {interval}")


def run_news_rss(ctx: StepContext, interval: Interval) -> int:
    """The current items of every configured feed, upserted (never deleting older items). The
    interval is not used to select rows: a feed cannot serve the past."""
    client = ctx.client(RssClient)
    fetched: list[tuple[str, list[NewsItem]]] = []
    for name, url in feed_urls(ctx.settings):
        items = client.feed(name, url)
        if not items:
            log.warning("news_rss: feed %r (%s) has no items", name, url)
        fetched.append((RSS_PREFIX + name, items))
    tagger = Tagger(coins_for(ctx, interval))
    written = retry_transient(lambda: _upsert_feeds(ctx, fetched, tagger), what="news_rss")
    log.info("news_rss: %d items from %d feeds upserted (run interval %s not used: feeds only serve their "
             "latest items)", written, len(fetched), interval)
    return written


# -- writes --------------------------------------------------------------------------------------

def _upsert_feeds(ctx: StepContext, fetched: list[tuple[str, list[NewsItem]]], tagger: Tagger) -> int:
    written = 0
    keys: set[str] = set()
    with _news_transaction(ctx.engine) as conn:
        for source, items in fetched:
            count, replaced_keys = _upsert_sightings(conn, source, items)
            written += count
            keys |= replaced_keys | {i.story_key for i in items}
        _rebuild(conn, {i.article_id for _, items in fetched for i in items}, tagger, keys)
    return written


def _fit(text: str | None, limit: int) -> tuple[str | None, bool]:
    """``text`` cut to ``limit`` characters (ending in an ellipsis), and whether it was cut."""
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit - 1] + "…", True


def _sighting_rows(source: str, items: Iterable[NewsItem]) -> tuple[list[dict], list[dict]]:
    """The rows to store for ``items``, and the rows of those that go to quarantine instead: one
    oversized or unusual item never blocks the others (RSS items that are not stored are lost)."""
    rows: dict[str, dict] = {}
    quarantined: dict[str, dict] = {}
    for item in items:
        url = canonical_url(item.url)
        published = to_naive_utc(item.published_at)
        if len(url) > schema.URL_MAX_CHARS:
            reason = f"canonical URL of {len(url)} characters (the limit is {schema.URL_MAX_CHARS})"
            log.warning("news %s: article %s quarantined: %s", source, item.article_id, reason)
            quarantined.setdefault(item.article_id, {
                "source": source, "article_id": item.article_id, "published_at": published, "reason": reason,
                "title": _fit(item.title, schema.TITLE_MAX_CHARS)[0], "url": url[:16_000], "url_length": len(url),
                "is_synthetic": bool(item.synthetic)})
            continue
        title, title_cut = _fit(item.title, schema.TITLE_MAX_CHARS)
        summary, summary_cut = _fit(item.summary, schema.SUMMARY_MAX_CHARS)
        if title_cut or summary_cut:
            log.warning("news %s: article %s stored trimmed: title %d, summary %d characters (limits %d, %d)",
                        source, item.article_id, len(item.title), len(item.summary or ""),
                        schema.TITLE_MAX_CHARS, schema.SUMMARY_MAX_CHARS)
        rows.setdefault(item.article_id, {
            "source": source, "article_id": item.article_id, "published_at": published, "title": title,
            "summary": summary, "url": url, "is_synthetic": bool(item.synthetic),
            "is_trimmed": title_cut or summary_cut, "story_key": item.story_key})
    return (sorted(rows.values(), key=lambda r: r["article_id"]),
            sorted(quarantined.values(), key=lambda r: r["article_id"]))


def _day_of(interval: Interval) -> Interval:
    """The interval from the start of its first day: the coins an article is tagged with then do not
    depend on whether the hourly or the daily run stored it (a run's coins depend on its start)."""
    day = interval.start.replace(hour=0, minute=0, second=0, microsecond=0)
    return Interval(day, max(interval.end, day + timedelta(hours=1)))


def _replace_source_interval(ctx: StepContext, source: str, items: Sequence[NewsItem], interval: Interval) -> int:
    rows, quarantined = _sighting_rows(source, items)
    lo, hi = to_naive_utc(interval.start), to_naive_utc(interval.end)
    sightings = schema.crypto_news_sightings
    tagger = Tagger(coins_for(ctx, _day_of(interval)))  # before the transaction: it reads the universe
    with _news_transaction(ctx.engine) as conn:
        if not rows:  # nothing storable: never let that erase what is stored
            held = conn.execute(select(sightings.c.article_id).where(
                sightings.c.source == source, sightings.c.published_at >= lo, sightings.c.published_at < hi)
            ).first()
            if held is not None:
                raise SourceDataMissing(
                    f"news {source}: the source returned no articles for {interval}, but the warehouse holds "
                    "its articles there; refusing to erase them (rerun later)")
        keys = set(conn.execute(select(sightings.c.story_key).distinct().where(  # before they are replaced
            sightings.c.source == source, sightings.c.published_at >= lo, sightings.c.published_at < hi,
            sightings.c.story_key.is_not(None))).scalars())
        for table, table_rows in ((sightings, rows), (schema.crypto_news_quarantine, quarantined)):
            replace_interval(conn, table, table_rows, time_column="published_at", start=interval.start,
                             end=interval.end, keys={"source": [source]})
        # Articles whose stored row came from this source's replaced sightings (their
        # published_at is that sighting's), plus every article it delivered now.
        news = schema.crypto_news
        affected = set(conn.execute(select(news.c.article_id).where(
            news.c.source == source, news.c.published_at >= lo, news.c.published_at < hi)).scalars())
        affected |= {r["article_id"] for r in rows}
        _rebuild(conn, affected, tagger, keys | {r["story_key"] for r in rows})
    log.info("news %s: %d articles in %s%s", source, len(rows), interval,
             f", {len(quarantined)} quarantined (crypto_news_quarantine)" if quarantined else "")
    return len(rows)


def _upsert_sightings(conn: Connection, source: str, items: Sequence[NewsItem]) -> tuple[int, set[str]]:
    """Upsert ``source``'s sightings of ``items``: (rows written, story keys of the rows replaced)."""
    rows, quarantined = _sighting_rows(source, items)
    sightings = schema.crypto_news_sightings
    replaced: set[str] = set()
    for chunk in chunks([r["article_id"] for r in rows]):
        replaced |= set(conn.execute(select(sightings.c.story_key).where(
            sightings.c.source == source, sightings.c.article_id.in_(chunk), sightings.c.story_key.is_not(None))
        ).scalars())
    for table, table_rows in ((sightings, rows), (schema.crypto_news_quarantine, quarantined)):
        for chunk in chunks([r["article_id"] for r in table_rows]):
            conn.execute(delete(table).where(table.c.source == source, table.c.article_id.in_(chunk)))
        if table_rows:
            conn.execute(insert(table), table_rows)
    return len(rows), replaced


def _rebuild(conn: Connection, article_ids: Iterable[str], tagger: Tagger, story_keys: Iterable[str] = ()) -> None:
    """Make crypto_news and crypto_news_mentions of ``article_ids``, and of every article sharing one
    of ``story_keys`` (the story rule), match their sightings."""
    news, mentions = schema.crypto_news, schema.crypto_news_mentions
    found = _related_sightings(conn, set(article_ids), {k for k in story_keys if k})
    stored = stored_rows(found)
    ids = set(article_ids) | {row["article_id"] for row in found}
    for chunk in chunks(sorted(ids)):
        conn.execute(delete(mentions).where(mentions.c.article_id.in_(chunk)))
        conn.execute(delete(news).where(news.c.article_id.in_(chunk)))
    news_rows, mention_rows = [], []
    for aid in sorted(stored):
        row = stored[aid]
        symbols, category = tagger.analyse(row["title"], row["summary"])
        news_rows.append({"article_id": aid, "published_at": row["published_at"], "source": row["source"],
                          "title": row["title"], "summary": row["summary"], "url": row["url"],
                          "category": category, "is_synthetic": bool(row["is_synthetic"]),
                          "is_trimmed": bool(row["is_trimmed"])})
        mention_rows += [{"article_id": aid, "symbol": s} for s in symbols]
    for chunk in chunks(news_rows):
        conn.execute(insert(news), chunk)
    for chunk in chunks(mention_rows):
        conn.execute(insert(mentions), chunk)


def _related_sightings(conn: Connection, article_ids: set[str], keys: set[str]) -> list[dict]:
    """Every sighting of ``article_ids`` and of the story ``keys``, closed over: all sightings of each
    article found, and all sightings sharing a floating sighting's key (so ``stored_rows`` sees
    every anchored sighting a floating one could match)."""
    sightings = schema.crypto_news_sightings
    found: dict[tuple[str, str], dict] = {}
    done_ids: set[str] = set()
    done_keys: set[str] = set()
    while article_ids - done_ids or keys - done_keys:
        pending = ((sightings.c.story_key, keys - done_keys), (sightings.c.article_id, article_ids - done_ids))
        for column, values in pending:
            for chunk in chunks(sorted(values)):
                for row in conn.execute(select(sightings).where(column.in_(chunk))).mappings():
                    found[(row["source"], row["article_id"])] = dict(row)
        done_ids |= article_ids
        done_keys |= keys
        article_ids = done_ids | {row["article_id"] for row in found.values()}
        keys = done_keys | {row["story_key"] for row in found.values() if row["story_key"] and is_floating(row)}
    return list(found.values())


def is_floating(sighting: dict) -> bool:
    """The sighting's URL is an aggregator's page, not the publisher's (see the story rule)."""
    return urlsplit(sighting["url"]).hostname in AGGREGATOR_HOSTS


def stored_rows(sightings: Iterable[dict]) -> dict[str, dict]:
    """The crypto_news row (as its best sighting) of each article these sightings make, by article
    id: a pure function of the set of sightings (the story rule in the module docstring)."""
    anchored: dict[str, list[dict]] = {}
    floating: list[dict] = []
    for row in sightings:
        if is_floating(row):
            floating.append(row)
        else:
            anchored.setdefault(row["article_id"], []).append(row)
    by_key: dict[str, list[dict]] = {}
    for group in anchored.values():
        for row in group:
            if row["story_key"]:
                by_key.setdefault(row["story_key"], []).append(row)
    groups = dict(anchored)
    for row in floating:
        same_story = by_key.get(row["story_key"] or "", [])
        if not any(abs(row["published_at"] - other["published_at"]) <= STORY_WINDOW for other in same_story):
            groups.setdefault(row["article_id"], []).append(row)
    return {aid: min(group, key=lambda r: source_priority(r["source"])) for aid, group in groups.items()}


@contextmanager
def _news_transaction(engine: Engine):
    """One transaction for a news write; on MySQL/MariaDB serialised with the other news writers
    by a named lock (see the module docstring)."""
    with engine.connect() as conn:
        locking = is_mysql(conn.dialect)
        if locking:
            got = conn.execute(text("SELECT GET_LOCK(:name, :timeout)"),
                               {"name": LOCK_NAME, "timeout": LOCK_TIMEOUT_SECONDS}).scalar()
            conn.commit()
            if got != 1:
                raise TimeoutError(f"news: could not take the lock {LOCK_NAME!r} within "
                                   f"{LOCK_TIMEOUT_SECONDS}s (another news load is writing)")
        try:
            with conn.begin():
                yield conn
        finally:
            if locking:
                try:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
                    conn.commit()
                except Exception:  # noqa: BLE001 - the lock dies with the session anyway
                    log.warning("news: could not release %s", LOCK_NAME, exc_info=True)

