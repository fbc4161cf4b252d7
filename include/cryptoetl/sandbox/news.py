"""Sandbox news APIs: Guardian Open Platform and RSS feeds (CryptoPanic: ``sandbox/cryptopanic.py``),
and the synthetic articles all three serve. ALL DATA HERE IS SYNTHETIC.

Every article is generated from templates and seeded per (outlet, hour) on the ``EPOCH`` grid,
so an article never depends on which ranges were asked before. Titles end in "(synthetic)"
and summaries say "Synthetic sandbox text ... Not real news." Outlets:

- ``coindesk``, ``cointelegraph``, ``decrypt``: crypto outlets; CoinDesk and Cointelegraph
  also serve RSS feeds;
- ``guardian-crypto`` (sections technology/business) and ``guardian-business`` (general
  market, business and economy news): what the Guardian search serves.

CryptoPanic aggregates coindesk, cointelegraph, decrypt and guardian-crypto a few minutes after
publication, with the same title and the publisher's domain but only its own URL (like the real
API: no ``original_url``), so the same article reaches the warehouse through two or three
sources under different URLs.

Endpoints (real request/response shapes):

- ``GET /guardian/search?q=&section=&from-date=&to-date=&page=&page-size=&order-by=&show-fields=
  &api-key=``: ``{"response": {"status": "ok", "total", "pages", "currentPage", "results": [...]}}``;
  ``from-date``/``to-date`` are UTC dates (to-date inclusive) or ISO timestamps; ``q`` is a
  list of terms/phrases joined by OR; no ``api-key`` -> 401 ``{"message": "No API key found in
  request"}``; a page past the last -> 400.
- ``GET /rss/{feed}.xml`` (``coindesk``, ``cointelegraph``): RSS 2.0 with the latest 20 items.

Nothing after ``server.now()`` is ever served. Faults: ``empty`` empties the results/items,
``drift`` renames ``webPublicationDate`` (Guardian) or ``pubDate`` (RSS); ``malformed`` (server
side) truncates the body, i.e. broken JSON or XML.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from xml.sax.saxutils import escape

from cryptoetl.sandbox.common import EPOCH, HORIZON_HOURS, HOUR, Route, rng, seed

GUARDIAN_PREFIX = "/guardian"
RSS_PREFIX = "/rss"
RSS_ITEMS = 20  # items a feed serves; CoinDesk's end with the real feed's empty content:encoded, dc:description
RSS_NAMESPACES = 'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
GUARDIAN_MAX_PAGE_SIZE = 200

COINS = (("BTC", "Bitcoin"), ("ETH", "Ethereum"), ("SOL", "Solana"), ("BNB", "BNB"), ("XRP", "XRP"),
         ("ADA", "Cardano"), ("DOGE", "Dogecoin"), ("AVAX", "Avalanche"), ("DOT", "Polkadot"),
         ("LINK", "Chainlink"))

# outlet -> (articles per hour on average, display title, domain)
OUTLETS = {
    "coindesk": (0.45, "CoinDesk", "coindesk.com"),
    "cointelegraph": (0.45, "Cointelegraph", "cointelegraph.com"),
    "decrypt": (0.25, "Decrypt", "decrypt.co"),
    "guardian-crypto": (0.15, "The Guardian", "theguardian.com"),
    "guardian-business": (0.35, "The Guardian", "theguardian.com"),
}
GUARDIAN_OUTLETS = ("guardian-crypto", "guardian-business")
RSS_FEEDS = {"coindesk": "coindesk", "cointelegraph": "cointelegraph"}

CRYPTO_TITLES = (
    "{name} rallies as ETF inflows climb (synthetic)",
    "{name} slips after large {ticker} transfers to exchanges (synthetic)",
    "Analysts split on where {name} heads next (synthetic)",
    "${ticker} trading volume jumps across major crypto exchanges (synthetic)",
    "{name} and {name2} lead a broad crypto market rebound (synthetic)",
    "Regulators weigh stablecoin rules as {name} steadies (synthetic)",
    "{name} developers ship a network upgrade (synthetic)",
)
CRYPTO_SUMMARIES = (
    "<p>Synthetic sandbox text: {name} ({ticker}) moved {pct}% in a session of thin liquidity. "
    "Not real news.</p>",
    "<p>Synthetic sandbox text: traders watched {name} &amp; {name2} as funding rates shifted "
    "by {pct}%. Not real news.</p>",
)
GENERAL_TITLES = (
    "FTSE 100 climbs as inflation cools (synthetic)",
    "Bank of England holds interest rates steady (synthetic)",
    "US stocks slip as Federal Reserve signals caution (synthetic)",
    "Oil prices jump on supply fears, lifting energy shares (synthetic)",
    "UK economy grows faster than expected (synthetic)",
    "An avalanche of profit warnings hits retail shares (synthetic)",
    "Markets brace for jobs data as bond yields rise (synthetic)",
)
GENERAL_SUMMARIES = (
    "<p>Synthetic sandbox text: the economy and markets moved {pct}% on the week. Not real news.</p>",
    "<p>Synthetic sandbox text: analysts expect stocks to stay volatile after a {pct}% swing. "
    "Not real news.</p>",
)


@dataclass(frozen=True)
class Article:
    outlet: str
    ts: int  # publication, UNIX seconds
    key: str  # stable unique key
    title: str
    summary_html: str
    url: str
    section: str
    coin: tuple[str, str] | None

    @property
    def published(self) -> datetime:
        return datetime.fromtimestamp(self.ts, UTC)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("(synthetic)", "")).strip("-")


@lru_cache(maxsize=100_000)
def articles_in_hour(outlet: str, hour: int) -> tuple[Article, ...]:
    """The outlet's articles published in hour ``hour`` after EPOCH, oldest first."""
    if hour < 0 or hour >= HORIZON_HOURS:
        return ()
    rate = OUTLETS[outlet][0]
    r = rng("news", outlet, str(hour))
    out = []
    for i in range(int(r.poisson(rate))):
        ts = EPOCH + hour * HOUR + int(r.integers(0, HOUR))
        key = f"{outlet}-{hour}-{i}"
        pct = f"{r.uniform(0.5, 9.5):.1f}"
        c1, c2 = (COINS[j] for j in r.choice(len(COINS), 2, replace=False))
        general = outlet == "guardian-business"
        titles, summaries = (GENERAL_TITLES, GENERAL_SUMMARIES) if general else (CRYPTO_TITLES, CRYPTO_SUMMARIES)
        values = {"name": c1[1], "ticker": c1[0], "name2": c2[1], "pct": pct}
        title = titles[int(r.integers(len(titles)))].format(**values)
        summary = summaries[int(r.integers(len(summaries)))].format(**values)
        when = datetime.fromtimestamp(ts, UTC)
        slug = f"{_slug(title)}-{seed(key) % 100_000:05d}"
        if outlet.startswith("guardian"):
            section = "business" if general or r.random() < 0.3 else "technology"
            url = f"https://www.theguardian.com/{section}/{when:%Y}/{when:%b}/{when:%d}/{slug}".lower()
        else:
            section = "markets"
            url = {"coindesk": f"https://www.coindesk.com/markets/{when:%Y/%m/%d}/{slug}/",
                   "cointelegraph": f"https://cointelegraph.com/news/{slug}",
                   "decrypt": f"https://decrypt.co/{seed(key) % 900_000 + 100_000}/{slug}"}[outlet]
        out.append(Article(outlet, ts, key, title, summary, url, section, None if general else c1))
    return tuple(sorted(out, key=lambda a: (a.ts, a.key)))


def articles_between(outlets, lo: float, hi: float) -> list[Article]:
    """Articles of ``outlets`` with lo <= ts < hi, oldest first."""
    if hi <= lo:
        return []
    first, last = int((lo - EPOCH) // HOUR), int((hi - EPOCH) // HOUR)
    found = [a for h in range(max(first, 0), min(last, HORIZON_HOURS - 1) + 1)
             for o in outlets for a in articles_in_hour(o, h) if lo <= a.ts < hi]
    return sorted(found, key=lambda a: (a.ts, a.key))


def _plain(html_text: str) -> str:
    return re.sub(r"<[^>]+>", "", html_text).replace("&amp;", "&")


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Guardian ---------------------------------------------------------------------------------

def _guardian_error(status: int, message: str):
    return status, {"response": {"status": "error", "message": message}}


def _parse_guardian_date(raw: str, *, end: bool) -> float:
    raw = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        day = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        return (day + timedelta(days=1 if end else 0)).timestamp()
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.timestamp() + (1 if end else 0)


def _query_terms(q: str) -> list[str]:
    terms = [t.strip().strip("()").strip().strip('"').lower() for t in re.split(r"\s+OR\s+", q)]
    return [t for t in terms if t]


def _matches(terms: list[str], text: str) -> bool:
    text = text.lower()
    return any(re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text) for t in terms)


class GuardianApi:
    def __init__(self, server):
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("GET", rf"^{GUARDIAN_PREFIX}/search$", self.search, auth=self.auth,
                      key_param="api-key", empty=self._empty, drift=self._drift)]

    def auth(self, query, headers):
        if not query.get("api-key"):
            return 401, {"message": "No API key found in request"}
        return None

    @staticmethod
    def _empty(body):
        resp = dict(body["response"])
        return {"response": {**resp, "total": 0, "pages": 0, "results": []}}

    @staticmethod
    def _drift(body):
        resp = dict(body["response"])
        results = [{("webPublicationDateTime" if k == "webPublicationDate" else k): v for k, v in r.items()}
                   for r in resp.get("results", [])]
        return {"response": {**resp, "results": results}}

    def search(self, query):
        try:
            page = int(query.get("page", 1))
            size = int(query.get("page-size", 10))
        except ValueError:
            return _guardian_error(400, "page and page-size must be integers")
        if not 1 <= size <= GUARDIAN_MAX_PAGE_SIZE:
            return _guardian_error(400, f"page-size must be between 1 and {GUARDIAN_MAX_PAGE_SIZE}")
        try:
            lo = _parse_guardian_date(query["from-date"], end=False) if "from-date" in query else EPOCH
            hi = _parse_guardian_date(query["to-date"], end=True) if "to-date" in query else float("inf")
        except ValueError:
            return _guardian_error(400, "Invalid date format, expected yyyy-MM-dd or an ISO date-time")
        hi = min(hi, self.server.now() + 1)
        found = articles_between(GUARDIAN_OUTLETS, lo, hi)
        if section := query.get("section"):
            allowed = set(section.split("|"))
            found = [a for a in found if a.section in allowed]
        if terms := _query_terms(query.get("q", "")):
            found = [a for a in found if _matches(terms, f"{a.title} {_plain(a.summary_html)}")]
        order = query.get("order-by", "newest")
        if order != "oldest":
            found.reverse()
        total = len(found)
        pages = -(-total // size)
        if page < 1 or (page > pages and not (page == 1 and total == 0)):
            return _guardian_error(400, "requested page is beyond the number of available pages")
        fields = set(query.get("show-fields", "").split(","))
        results = []
        for a in found[(page - 1) * size: page * size]:
            when = a.published
            item_id = f"{a.section}/{when:%Y}/{when:%b}/{when:%d}/{a.url.rsplit('/', 1)[-1]}".lower()
            item = {"id": item_id, "type": "article", "sectionId": a.section, "sectionName": a.section.title(),
                    "webPublicationDate": _iso(a.ts), "webTitle": a.title, "webUrl": a.url,
                    "apiUrl": f"https://content.guardianapis.com/{item_id}", "isHosted": False,
                    "pillarId": "pillar/news", "pillarName": "News"}
            if fields & {"trailText", "all"}:
                item["fields"] = {"trailText": a.summary_html}
            results.append(item)
        return 200, {"response": {"status": "ok", "userTier": "developer", "total": total,
                                  "startIndex": (page - 1) * size + 1, "pageSize": size, "currentPage": page,
                                  "pages": pages, "orderBy": order, "results": results}}


# -- RSS ---------------------------------------------------------------------------------------

def _latest(outlet: str, now: float, count: int) -> list[Article]:
    hour = min(int((now - EPOCH) // HOUR), HORIZON_HOURS - 1)
    found: list[Article] = []
    while hour >= 0 and len(found) < count:
        found += [a for a in articles_in_hour(outlet, hour) if a.ts <= now]
        hour -= 1
    return sorted(found, key=lambda a: (a.ts, a.key), reverse=True)[:count]


class RssApi:
    def __init__(self, server):
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("GET", rf"^{RSS_PREFIX}/(?P<feed>[A-Za-z0-9_-]+)\.xml$", self.feed,
                      empty=lambda body: re.sub(r"\s*<item>.*?</item>", "", body, flags=re.DOTALL),
                      drift=lambda body: body.replace("<pubDate>", "<pubTime>").replace("</pubDate>", "</pubTime>"))]

    def feed(self, query, feed: str):
        outlet = RSS_FEEDS.get(feed)
        if outlet is None:
            return 404, "<html><body><h1>404 Not Found</h1></body></html>", "text/html; charset=utf-8"
        now = self.server.now()
        _, title, domain = OUTLETS[outlet]
        items = []
        for a in _latest(outlet, now, RSS_ITEMS):
            link = a.url + ("?utm_source=rss_feed&utm_medium=rss" if outlet == "cointelegraph" else "")
            categories = "".join(f"<category>{escape(c)}</category>" for c in (a.coin or ())[1:])
            items.append(
                f"<item><title>{escape(a.title)}</title><link>{escape(link)}</link>"
                f'<guid isPermaLink="false">{escape(a.key)}</guid>'
                f"<pubDate>{email.utils.format_datetime(a.published)}</pubDate>"
                f"<description><![CDATA[{a.summary_html}]]></description>{categories}"
                + ("<content:encoded/><dc:description/>" if outlet == "coindesk" else "") + "</item>")
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {RSS_NAMESPACES}><channel>'
                f"<title>{escape(title)} (synthetic sandbox)</title><link>https://{domain}/</link>"
                "<description>SYNTHETIC sandbox feed, not real news</description><language>en</language>"
                f"<lastBuildDate>{email.utils.format_datetime(datetime.fromtimestamp(now, UTC))}</lastBuildDate>\n"
                + "\n".join(items) + "\n</channel></rss>\n")
        return 200, body, "application/rss+xml; charset=utf-8"
