"""Guardian Open Platform client: ``/search`` over a date range, every page, as ``NewsItem``s.

The real production client; it reaches the offline sandbox only through ``GUARDIAN_BASE_URL``.

- Auth: ``api-key`` query parameter (``GUARDIAN_API_KEY``, required; checked when the step
  runs). The key is masked in every error and log line (cryptoetl/redaction.py).
- Rate: a developer key allows 1 call/s and 500 calls/day; calls are spaced to
  ``GUARDIAN_RATE_PER_MINUTE`` (default 60), HTTP 429 honours ``Retry-After``, 5xx and timeouts
  back off exponentially (``HttpSource``).
- Dates: ``from-date``/``to-date`` take whole dates (to-date inclusive) whose time zone the API
  does not document, so the client asks for one extra day on each side and keeps exactly the
  results whose ``webPublicationDate`` lies in [start, end). ``order-by=oldest`` keeps the
  pages stable while new articles are published.
- Pages: ``page-size`` 200 (the maximum) and every page up to ``response.pages``. A page
  that is missing, empty before the last page, or lacks ``webUrl``/``webTitle``/
  ``webPublicationDate`` (schema drift) is an error: the step then writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptoetl.news_tagging import NewsItem, canonical_url, clean_text, unique_items, utc_seconds
from cryptoetl.sources.http import HttpSource, SourcePayloadError
from cryptoetl.sources.spec import DEFAULT_PLAN, NEWS_INTRADAY, Plan, Pool, SourceSpec, SourceStep
from cryptoetl.universe import Coin

MAX_PAGE_SIZE = 200

CRYPTO_KEYWORDS = ("crypto", "cryptocurrency", "cryptocurrencies", "blockchain", "stablecoin")
# General market/business/economy news, so that FinBERT has general-market articles to score.
GENERAL_TERMS = ("stocks", "shares", "markets", "economy", "inflation", "interest rates", "central bank",
                 "Federal Reserve", "Bank of England", "recession", "bond yields", "oil prices")


GUARDIAN_ARTICLES = SourceStep(
    step="news_guardian",
    run="cryptoetl.loaders.news:run_news_guardian",
    writes="crypto_news",
    dag_id="news_guardian",
    task_id="load_news_guardian",
    description="Guardian Open Platform articles published in the interval",
)

SPEC = SourceSpec(
    name="guardian",
    title="The Guardian Open Platform",
    plans={DEFAULT_PLAN: Plan("https://content.guardianapis.com", 60, needs_key=True)},  # developer key: 1 call/s
    steps=(
        GUARDIAN_ARTICLES,
        GUARDIAN_ARTICLES.intraday(NEWS_INTRADAY),
    ),
    sandbox="cryptoetl.sandbox.news:GuardianApi",
    sandbox_path="/guardian",
    sandbox_env={"GUARDIAN_API_KEY": "sandbox-demo-key"},
    pool=Pool(1, "Concurrent Guardian Open Platform tasks (developer key: 1 call/s, 500/day)."),
    key_use="the news_guardian step reads the Guardian Open Platform search API",
)


@dataclass(frozen=True)
class GuardianQuery:
    name: str  # for messages: "crypto" / "general"
    q: str
    section: str | None = None


def _or(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' if " " in t else t for t in terms)


# Coin names in the crypto query: the first coins of the universe (a 300-coin OR would be a URL of
# kilobytes). Tagging still looks for every coin in every article found.
QUERY_COINS = 25


def default_queries(symbols: Sequence[Coin]) -> tuple[GuardianQuery, ...]:
    """Crypto news (names of the universe's first ``QUERY_COINS`` coins plus crypto keywords, any
    section) and general market news (business section)."""
    names = [c.name.lower() for c in symbols[:QUERY_COINS]]
    crypto_terms = list(dict.fromkeys([*names, *CRYPTO_KEYWORDS]))
    return (GuardianQuery("crypto", _or(crypto_terms)),
            GuardianQuery("general", _or(GENERAL_TERMS), section="business"))


class GuardianClient(HttpSource):
    spec = SPEC

    def __init__(self, base_url: str, *, api_key: str, rate_per_minute: float = 60,
                 page_size: int = MAX_PAGE_SIZE, **kwargs):
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be in 1..{MAX_PAGE_SIZE}")
        super().__init__(base_url, api_key=api_key, rate_per_minute=rate_per_minute, **kwargs)
        self.page_size = page_size

    def search(self, query: GuardianQuery, start: datetime, end: datetime) -> list[NewsItem]:
        """Every result of ``query`` published in [start, end), oldest first, one per article."""
        if start >= end:
            raise ValueError(f"empty range [{start}, {end})")
        lo, hi = utc_seconds(start), utc_seconds(end)
        params = {
            "q": query.q,
            "from-date": (lo - timedelta(days=1)).date().isoformat(),
            "to-date": (hi + timedelta(days=1)).date().isoformat(),
            "order-by": "oldest",
            "show-fields": "trailText",
            "page-size": self.page_size,
            "api-key": self.api_key,
        }
        if query.section:
            params["section"] = query.section
        items: list[NewsItem] = []
        page, pages = 1, 1
        while page <= pages:
            body, synthetic = self.get_json("/search", {**params, "page": page})
            where = f"guardian search {query.name!r} [{lo:%Y-%m-%dT%H:%MZ}, {hi:%Y-%m-%dT%H:%MZ}) page {page}"
            results, pages = self._page(body, where, page)
            items += [it for it in (self._item(r, where, synthetic) for r in results) if lo <= it.published_at < hi]
            page += 1
        return unique_items(items)

    @staticmethod
    def _page(body: object, where: str, page: int) -> tuple[list, int]:
        resp = body.get("response") if isinstance(body, dict) else None
        if not isinstance(resp, dict) or resp.get("status") != "ok":
            raise SourcePayloadError(f"{where}: no 'response' with status 'ok' (got {str(body)[:120]!r})")
        results, pages = resp.get("results"), resp.get("pages")
        if not isinstance(results, list) or not isinstance(pages, int):
            raise SourcePayloadError(f"{where}: 'response' lacks 'results' or 'pages' "
                                       f"(keys {sorted(resp)}); has the API schema changed?")
        if not results and page < pages:
            raise SourcePayloadError(f"{where}: empty page before the last one ({pages} pages)")
        return results, pages

    @staticmethod
    def _item(result: object, where: str, synthetic: bool) -> NewsItem:
        if not isinstance(result, dict):
            raise SourcePayloadError(f"{where}: a result is not an object")
        missing = [k for k in ("webUrl", "webTitle", "webPublicationDate") if not result.get(k)]
        if missing:
            raise SourcePayloadError(f"{where}: result {result.get('id', '?')!r} lacks {missing} "
                                       f"(has {sorted(result)}); has the API schema changed?")
        try:
            published = datetime.fromisoformat(str(result["webPublicationDate"]).replace("Z", "+00:00"))
            url = canonical_url(result["webUrl"])
        except ValueError as exc:
            raise SourcePayloadError(f"{where}: result {result.get('id', '?')!r}: {exc}") from exc
        fields = result.get("fields") if isinstance(result.get("fields"), dict) else {}
        title = clean_text(result["webTitle"])
        if title is None:
            raise SourcePayloadError(f"{where}: result {result.get('id', '?')!r} has a blank title")
        return NewsItem(url=url, published_at=utc_seconds(published), title=title,
                        summary=clean_text(fields.get("trailText")), synthetic=synthetic)
