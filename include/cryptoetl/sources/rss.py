"""RSS feed client (CoinDesk, Cointelegraph): the feed's current items as ``NewsItem``s.

Fetched through ``HttpSource`` (rate limit, retries, ``Retry-After``, faults behave as for every
other source), parsed with ``feedparser``. Feeds come from ``settings.rss_feeds``; when
``RSS_BASE_URL`` is set (the sandbox), each feed is read from ``{RSS_BASE_URL}/{name}.xml``.

An RSS feed only carries its latest items, so this client cannot fetch a past interval.

Failures are explicit: feedparser is lenient and returns whatever it could read from broken
XML, flagging it with ``bozo``; a ``bozo`` document (truncated or not well-formed XML) is an
error here, as is a document that is not a feed, or an item without ``link``, ``title`` or a
parseable ``pubDate`` (schema drift). A feed with no items is returned as an empty list.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

from cryptoetl.news_tagging import NewsItem, canonical_url, clean_text, unique_items
from cryptoetl.sources.http import HttpSource, SourcePayloadError
from cryptoetl.sources.spec import DEFAULT_PLAN, Plan, SourceSpec, SourceStep

SPEC = SourceSpec(
    name="rss",
    title="RSS feeds",
    # No host of its own: feeds come from CRYPTOETL_RSS_FEEDS. Feeds are polled, not rate-limited.
    plans={DEFAULT_PLAN: Plan("", 60)},
    steps=(
        SourceStep(
            step="news_rss",
            run="cryptoetl.loaders.news:run_news_rss",
            writes="crypto_news",
            dag_id="news_rss",
            task_id="load_news_rss",
            description="Latest items of the RSS feeds (CoinDesk, Cointelegraph); cannot backfill",
            backfillable=False,
        ),
    ),
    sandbox="cryptoetl.sandbox.news:RssApi",
    sandbox_path="/rss",
)


# CoinDesk's current feed follows a filled <description> with an empty <content:encoded/> and an
# empty <dc:description/>; feedparser keeps the last one it sees, so the summary came out empty.
# Empty text elements carry nothing: they are dropped before parsing, and the description stands.
EMPTY_TEXT_ELEMENTS = re.compile(
    rb"<(content:encoded|dc:description)\s*/>|<(content:encoded|dc:description)(?:\s[^>]*)?>\s*"
    rb"(?:<!\[CDATA\[\s*\]\]>)?\s*</\2\s*>")


def feed_urls(settings) -> list[tuple[str, str]]:
    """(name, url) of every configured feed; ``{RSS_BASE_URL}/{name}.xml`` when the base is set."""
    base = SPEC.resolve(settings).base_url.rstrip("/")
    return [(name, f"{base}/{name}.xml" if base else url) for name, url in settings.rss_feeds]


class RssClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str = "", *, rate_per_minute: float = 60, **kwargs):
        headers = {"accept": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5",
                   **kwargs.pop("headers", {})}
        super().__init__(base_url, rate_per_minute=rate_per_minute, headers=headers, **kwargs)

    def feed(self, name: str, url: str) -> list[NewsItem]:
        """The feed's items, oldest first, one per article."""
        import feedparser  # here, not at import: the registry reads SPEC at DAG parse time

        resp = self.request("", url=url)
        where = f"rss feed {name!r} ({url})"
        parsed = feedparser.parse(EMPTY_TEXT_ELEMENTS.sub(b"", resp.body), response_headers={
            "content-type": resp.headers.get("Content-Type", "application/rss+xml")})
        # feedparser flags a CharacterEncodingOverride as "bozo" although the document parsed fine
        benign = feedparser.CharacterEncodingOverride
        if parsed.get("bozo") and not isinstance(parsed.get("bozo_exception"), benign):
            raise SourcePayloadError(f"{where}: not a well-formed feed (feedparser bozo: "
                                     f"{type(parsed.get('bozo_exception')).__name__}: {parsed.get('bozo_exception')})")
        if not parsed.get("version"):
            raise SourcePayloadError(f"{where}: the document is not an RSS/Atom feed")
        items = [self._item(entry, where, resp.synthetic) for entry in parsed.entries]
        return unique_items(items)

    @staticmethod
    def _item(entry, where: str, synthetic: bool) -> NewsItem:
        link, title = entry.get("link"), clean_text(entry.get("title"))
        stamp = entry.get("published_parsed")
        missing = [k for k, v in (("link", link), ("title", title), ("pubDate", stamp)) if not v]
        if missing:
            raise SourcePayloadError(f"{where}: item {entry.get('id') or link or '?'!r} lacks {missing} "
                                  f"(has {sorted(entry)}); has the feed's schema changed?")
        try:
            url = canonical_url(link)
        except ValueError as exc:
            raise SourcePayloadError(f"{where}: item link: {exc}") from exc
        published = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
        return NewsItem(url=url, published_at=published, title=title,
                        summary=clean_text(entry.get("summary")), synthetic=synthetic)
