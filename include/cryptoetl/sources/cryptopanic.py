"""CryptoPanic developer API v2 client: ``/posts/`` newest first, following ``next``.

The real production client; it reaches the offline sandbox only through ``CRYPTOPANIC_BASE_URL``.

- Auth: ``auth_token`` query parameter (``CRYPTOPANIC_API_KEY``, required; checked when the
  step runs). The API puts the token into its ``next`` links, so the client never requests a
  ``next`` URL as given: it takes that link's query, swaps in its own token and asks its own
  base URL, so the host always comes from the settings. The token is masked in every error and
  log line by the shared redactor (cryptoetl/redaction.py), also where the API echoes it (a 403
  body, the ``next`` link of a truncated page).
- Rate: calls are spaced to ``CRYPTOPANIC_RATE_PER_MINUTE``; HTTP 429 honours ``Retry-After``.
- There is no date filter: the client pages back from the newest post until a page reaches
  past ``start``, and keeps the posts published in [start, end), deduplicated by post id
  (new posts shift older ones onto the next page while paging). If the feed ends (``next`` is
  null) before reaching ``start``, the plan's history does not cover the interval and the
  client raises ``CryptoPanicHistoryError`` rather than return a partial interval.
- The real posts (developer plan, API v2) carry no ``original_url`` and no ``description``;
  ``currencies`` is often absent. They do carry ``domain`` and ``source`` (``{"title", "region",
  "domain", "path", "type"}``), the publisher's, and the page carries ``count``. So a post's URL
  is CryptoPanic's own page (``url``, its ``mtm_campaign`` tracking parameter dropped), its
  summary is NULL, and the item carries the publisher's domain (``source.domain``, else
  ``domain``): ``loaders/news.py`` matches it on that domain and its title to the same article
  delivered by the Guardian or an RSS feed (the story rule, documented there). When a plan does
  send ``original_url`` (and ``description``), they are used: the article is then identified by
  the publisher's URL like any other source's.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from cryptoetl.news_tagging import NewsItem, canonical_url, clean_domain, clean_text, unique_items, utc_seconds
from cryptoetl.sources.http import HttpSource, SourceError, SourcePayloadError
from cryptoetl.sources.spec import DEFAULT_PLAN, NEWS_INTRADAY, Plan, Pool, SourceSpec, SourceStep

MAX_PAGES = 1000


CRYPTOPANIC_POSTS = SourceStep(
    step="news_cryptopanic",
    run="cryptoetl.loaders.news:run_news_cryptopanic",
    writes="crypto_news",
    dag_id="news_cryptopanic",
    task_id="load_news_cryptopanic",
    description="CryptoPanic posts published in the interval",
)

SPEC = SourceSpec(
    name="cryptopanic",
    title="CryptoPanic",
    plans={DEFAULT_PLAN: Plan("https://cryptopanic.com/api/developer/v2", 60, needs_key=True)},  # developer: ~2/s
    steps=(
        CRYPTOPANIC_POSTS,
        CRYPTOPANIC_POSTS.intraday(NEWS_INTRADAY),
    ),
    sandbox="cryptoetl.sandbox.cryptopanic:CryptoPanicApi",
    sandbox_path="/cryptopanic/api/developer/v2",
    sandbox_env={"CRYPTOPANIC_API_KEY": "sandbox-demo-key"},
    pool=Pool(1, "Concurrent CryptoPanic tasks (the client spaces calls to the plan's limit)."),
    key_use="the news_cryptopanic step reads the CryptoPanic posts API; pause the news_cryptopanic DAG "
            "if you have no token",
)


class CryptoPanicHistoryError(SourceError):
    """The API's history (the plan's page limit) ends after the start of the interval."""


class CryptoPanicClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str, *, api_key: str, rate_per_minute: float = 60, kind: str = "news",
                 max_pages: int = MAX_PAGES, **kwargs):
        super().__init__(base_url, api_key=api_key, rate_per_minute=rate_per_minute, **kwargs)
        self.kind = kind
        self.max_pages = max_pages

    def posts(self, start: datetime, end: datetime) -> list[NewsItem]:
        """Every post published in [start, end), oldest first, one per article."""
        if start >= end:
            raise ValueError(f"empty range [{start}, {end})")
        lo, hi = utc_seconds(start), utc_seconds(end)
        params: dict = {"auth_token": self.api_key, "public": "true", "kind": self.kind}
        items: dict[int, NewsItem] = {}
        seen_pages: set[str] = set()
        for number in range(1, self.max_pages + 1):
            body, synthetic = self.get_json("/posts/", params)
            where = f"cryptopanic posts [{lo:%Y-%m-%dT%H:%MZ}, {hi:%Y-%m-%dT%H:%MZ}) page {number}"
            results, nxt = self._page(body, where)
            oldest = None  # oldest post on this page
            for post in results:
                post_id, item = self._item(post, where, synthetic)
                oldest = item.published_at if oldest is None else min(oldest, item.published_at)
                if lo <= item.published_at < hi:
                    items.setdefault(post_id, item)
            if oldest is not None and oldest < lo:
                return unique_items(items.values())
            if nxt is None:
                if number == 1 and not results:
                    return []  # nothing at all: the step decides whether that may erase rows
                ends = f"{oldest:%Y-%m-%dT%H:%M:%SZ}" if oldest else "an empty page"
                raise CryptoPanicHistoryError(
                    f"{where}: the feed ends at {ends}, after the interval start; "
                    "the API plan's history does not reach back that far (this interval cannot be loaded "
                    "from CryptoPanic)")
            params = self._next_params(nxt, where)
            marker = repr(sorted(params.items()))
            if marker in seen_pages:
                raise SourcePayloadError(f"{where}: 'next' points back to a page already read")
            seen_pages.add(marker)
        raise SourceError(f"cryptopanic posts: more than {self.max_pages} pages before reaching {lo}")

    def _next_params(self, nxt: str, where: str) -> dict:
        parts = urlsplit(nxt)
        if not parts.path.rstrip("/").endswith("/posts"):
            raise SourcePayloadError(f"{where}: 'next' is not a posts URL (path {parts.path!r})")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        params["auth_token"] = self.api_key
        return params

    @staticmethod
    def _page(body: object, where: str) -> tuple[list, str | None]:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list) or "next" not in body:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise SourcePayloadError(f"{where}: payload lacks 'results'/'next' (got {keys}); "
                                          "has the API schema changed?")
        nxt = body["next"]
        if nxt is not None and not isinstance(nxt, str):
            raise SourcePayloadError(f"{where}: 'next' is not a URL")
        return body["results"], nxt

    @staticmethod
    def _item(post: object, where: str, synthetic: bool) -> tuple[int, NewsItem]:
        if not isinstance(post, dict):
            raise SourcePayloadError(f"{where}: a result is not an object")
        missing = [k for k in ("id", "title", "published_at") if not post.get(k)]
        if missing or not (post.get("original_url") or post.get("url")):
            raise SourcePayloadError(f"{where}: post {post.get('id', '?')!r} lacks {missing or ['url']} "
                                          f"(has {sorted(post)}); has the API schema changed?")
        try:
            published = datetime.fromisoformat(str(post["published_at"]).replace("Z", "+00:00"))
            url = canonical_url(post.get("original_url") or post["url"])
        except ValueError as exc:
            raise SourcePayloadError(f"{where}: post {post.get('id')!r}: {exc}") from exc
        title = clean_text(post["title"])
        if title is None:
            raise SourcePayloadError(f"{where}: post {post.get('id')!r} has a blank title")
        domain = None if post.get("original_url") else _publisher_domain(post)
        return post["id"], NewsItem(url=url, published_at=utc_seconds(published), title=title,
                                    summary=clean_text(post.get("description")), synthetic=synthetic, domain=domain)


def _publisher_domain(post: dict) -> str | None:
    """The publisher's domain of a post: ``source.domain``, else the post's ``domain``; None when
    neither is a domain (old posts of Reddit or Twitter sources name "r/..." or "@...")."""
    source = post.get("source")
    for value in ((source or {}).get("domain") if isinstance(source, dict) else None, post.get("domain")):
        if isinstance(value, str) and "." in value and "/" not in value and not value.startswith("@"):
            return clean_domain(value)
    return None
