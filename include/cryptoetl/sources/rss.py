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
from datetime import UTC, datetime

import feedparser

from cryptoetl.news_tagging import NewsItem, canonical_url, clean_text, unique_items
from cryptoetl.sources.http import HttpSource, SourceError, SourcePayloadError, SourceRateLimited

# feedparser flags these as "bozo" although the document parsed fine.
_BENIGN = (feedparser.CharacterEncodingOverride,)


class RssError(SourceError):
    """A feed failed or answered something unusable."""


class RssRateLimited(RssError, SourceRateLimited):
    """HTTP 429 persisted after every retry."""


class RssPayloadError(RssError, SourcePayloadError):
    """Not well-formed XML, not a feed, or items without the fields we need."""


def feed_urls(settings) -> list[tuple[str, str]]:
    """(name, url) of every configured feed; ``{RSS_BASE_URL}/{name}.xml`` when the base is set."""
    base = settings.source("rss").base_url.rstrip("/")
    return [(name, f"{base}/{name}.xml" if base else url) for name, url in settings.rss_feeds]


class RssClient(HttpSource):
    name = "rss"
    error_class = RssError
    rate_limited_class = RssRateLimited
    payload_error_class = RssPayloadError

    def __init__(self, *, rate_per_minute: float = 60, **kwargs):
        headers = {"accept": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5",
                   **kwargs.pop("headers", {})}
        super().__init__("", rate_per_minute=rate_per_minute, headers=headers, **kwargs)

    @classmethod
    def from_settings(cls, settings) -> RssClient:
        src = settings.source("rss")
        return cls(rate_per_minute=src.rate_per_minute, timeout=settings.http_timeout_seconds)

    def feed(self, name: str, url: str) -> list[NewsItem]:
        """The feed's items, oldest first, one per article."""
        resp = self.request("", url=url)
        where = f"rss feed {name!r} ({url})"
        parsed = feedparser.parse(resp.body, response_headers={
            "content-type": resp.headers.get("Content-Type", "application/rss+xml")})
        if parsed.get("bozo") and not isinstance(parsed.get("bozo_exception"), _BENIGN):
            raise RssPayloadError(f"{where}: not a well-formed feed (feedparser bozo: "
                                  f"{type(parsed.get('bozo_exception')).__name__}: {parsed.get('bozo_exception')})")
        if not parsed.get("version"):
            raise RssPayloadError(f"{where}: the document is not an RSS/Atom feed")
        items = [self._item(entry, where, resp.synthetic) for entry in parsed.entries]
        return unique_items(items)

    @staticmethod
    def _item(entry, where: str, synthetic: bool) -> NewsItem:
        link, title = entry.get("link"), clean_text(entry.get("title"))
        stamp = entry.get("published_parsed")
        missing = [k for k, v in (("link", link), ("title", title), ("pubDate", stamp)) if not v]
        if missing:
            raise RssPayloadError(f"{where}: item {entry.get('id') or link or '?'!r} lacks {missing} "
                                  f"(has {sorted(entry)}); has the feed's schema changed?")
        try:
            url = canonical_url(link)
        except ValueError as exc:
            raise RssPayloadError(f"{where}: item link: {exc}") from exc
        published = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
        return NewsItem(url=url, published_at=published, title=title,
                        summary=clean_text(entry.get("summary")), synthetic=synthetic)
