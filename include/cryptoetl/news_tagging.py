"""What every news source shares: the item type, stable article ids, clean text, coin
mentions and the crypto/general category.

- **Stable ids.** ``article_id`` is the sha256 of the *canonical* URL: https scheme, lower-case
  host without ``www.``, no default port, no fragment, no tracking parameters (``utm_*``,
  ``fbclid``, Guardian's ``CMP`` ...), remaining parameters sorted, no trailing slash. So the
  same article delivered by the Guardian API, CryptoPanic and an RSS feed, with or without
  ``?utm_source=...``, is one row.
- **Story keys.** An item whose URL is not the publisher's (a CryptoPanic post without
  ``original_url``: its URL is CryptoPanic's own page) carries the publisher's ``domain``.
  ``story_key`` is the sha256 of that domain (else the URL's host) and the normalised title
  (``title_key``: HTML entities decoded, NFKC, case-folded, every run of non-alphanumeric
  characters one space), which is what ``loaders/news.py`` matches such an item on.
- **Mentions.** Which configured coins an article's title and summary mention, as warehouse keys
  (``Coin.symbol``). The rules below are implemented in ``news_tagging_rules``, where the lists
  and thresholds they name live.

  - *Names*: the coin's name, that name without a trailing "(...)" ("POL (ex-MATIC)"), and the
    hand-written ``ALIASES`` ("bitcoins", "Ether"). They match case-insensitively on word
    boundaries, across any whitespace ("Bitcoin", "bitcoins"). A name that is the coin's own
    ticker as written ("XRP", "BNB"; not "Render") is the ticker; names under 3 characters are
    not matched.
  - *Tickers* match only as upper-case whole words ("ETH" never matches "method") or, in any
    case, as ``$TICKER`` ("$sol"). A coin's ticker term is its warehouse key (see colliding
    tickers below).
  - *One mention, one coin.* Where matches overlap the longest wins ("Bitcoin Cash" is BCH, not
    BTC; "Ethereum Classic" is ETC), and each match credits exactly one coin. A name followed
    by its own ticker in brackets, "Harmony (ONE)", "Sonic (S)", is one strong mention of it.

- **Strong, weak, cashtag-only.** Each term's kind is decided systematically, with the English
  word list of the pinned pyspellchecker package (word frequencies from film and TV subtitles,
  so "bitcoin" or "solana" are not in it; Zipf frequency = log10 of occurrences per billion
  words), plus short hand-curated lists for what a word list cannot know:

  - A ticker is *cashtag-only*, never counted bare, when it has at most 2 characters ("S", "W",
    "OP", "ID", "IT", "AI", "ZK": initials, "U.S.", words crypto articles themselves use every
    day) or is in ``ACRONYMS``, abbreviations crypto and market news use for something else
    ("ATH", "DAO", "ETF", "NFT", "SEC", "SPX" the S&P 500). ``$S`` or the name still find it.
  - A ticker is *weak* when it is an English word with Zipf >= 2 ("ONE", "GAS", "NEAR",
    "MASK", "BAND", "FUN", "CAKE", "SUPER", "ACE", "UNI", "SOL") or is in ``WEAK_TICKERS``,
    abbreviations of something else: "ADA" (the disabilities act), "DOT" (Department of
    Transportation), "DOGE" (the US government department), "LINK", "ICP", "ATOM", "EOS",
    "NEO", "ETC". Rarer words stay strong in capitals ("ETH", "SUI", "MINA").
  - A name is *weak* when every word of it is in the English word list, however rare ("Near
    Protocol", "The Graph", "Render", "Maker", "Compound", "Internet Computer", "Quant", "Ripple",
    "Avalanche", "Ether", "Tether"), or is in ``WEAK_NAMES``, other well-known things ("Tron",
    "Arkham", "Ronin", "BitTorrent", "Pepe"). "Celestia", "Uniswap", "Bitcoin Cash" are strong.
    A weak name counts only with a capital on each word the coin's name capitalises ("Ripple",
    "Near Protocol"; not "ripple", "near"). It is moreover *common* when every word of it has
    Zipf >= 4 ("Gas", "Safe", "Sky", "Flow", "Core"): then it counts only where capitals mark a
    name, not in a Title-Case or all-caps text and, for a one-word name, not at the start of a
    sentence ("Gas fees spike on Ethereum" does not mention the coin named Gas).
  - A weak term counts only in an article that is about crypto by strong evidence: a strong
    mention of any coin of the universe, a coin found by both a name and its ticker ("Harmony
    ... ONE"), or a crypto keyword. ``$TICKER`` is always strong. Known false friends never
    count: "ETH Zurich" is not Ethereum, "Ripple effect" not XRP, and a ticker after a stock
    exchange's prefix is a share ("Seagate (NASDAQ: STX)").

- **Colliding tickers.** Several coins may share an exchange ticker (``Coin.ticker``; CoinGecko
  has many "UNI"): only one has the bare ticker as its warehouse key, the first to take it (see
  ``cryptoetl.universe``), the others a suffixed one ("UNI-3F2A"). A bare ticker or ``$TICKER``
  is credited only to the coin whose key it is, never to two coins; the others are tagged by
  their names, their own key written out ("UNI-3F2A"), or a name followed by the ticker in
  brackets ("Unicorn Inu (UNI)" is the clone, not Uniswap). A name shared by several coins
  belongs to the coin whose key is its ticker, else to the first one given.
- **Category.** ``crypto`` when the text has strong evidence (above) for any coin of the whole
  universe (the configured coins plus ``config.UNIVERSE``, not only the configured subset) or a
  crypto keyword (crypto, cryptocurrency, blockchain, stablecoin, DeFi, NFT, altcoin, memecoin, Web3);
  else ``general`` (market, business and economy news). It is a pure function of the text and the
  universe, so it does not depend on which source delivered the article; with a top-N universe a
  later run (after coins joined) may find more mentions in the same article. Downstream, crypto
  articles are scored with CryptoBERT, general ones with FinBERT. Title and summary are searched separately (no
  match spans the two) and together decide the category.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptoetl.config import UNIVERSE
from cryptoetl.news_tagging_rules import Vocabulary
from cryptoetl.universe import Coin

CRYPTO = "crypto"
GENERAL = "general"


@dataclass(frozen=True)
class NewsItem:
    """One article as a source delivered it. ``url`` is canonical, ``published_at`` aware UTC
    (whole seconds), ``summary`` plain text or None when the source gives none."""

    url: str
    published_at: datetime
    title: str
    summary: str | None
    synthetic: bool = False
    domain: str | None = None  # the publisher's domain when ``url`` is not the publisher's (an aggregator's page)

    @property
    def article_id(self) -> str:
        return article_id(self.url)

    @property
    def story_key(self) -> str:
        return story_key(self.domain or url_domain(self.url), self.title)


# -- URLs ----------------------------------------------------------------------------------

# Query parameters that only track the reader; anything else may select content and is kept.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "_gl",
    "cmp", "ref", "ref_src", "referrer", "source", "src", "ito", "taid", "guccounter",
    "__twitter_impression",
})


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name.startswith(("utm_", "utm-", "mtm_", "pk_", "hsa_")) or name in TRACKING_PARAMS


def canonical_url(url: str) -> str:
    """The normalised form of ``url`` that identifies an article (see the module docstring)."""
    raw = (url or "").strip()
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = re.sub(r"/{2,}", "/", parts.path or "")
    path = path.rstrip("/")
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k))
    return urlunsplit(("https", netloc, path, urlencode(query), ""))


def article_id(url: str) -> str:
    """sha256 hex of the canonical URL: 64 characters, stable across sources and runs."""
    return hashlib.sha256(canonical_url(url).encode()).hexdigest()


def url_domain(url: str) -> str:
    """The host of ``url`` as ``canonical_url`` writes it: lower case, without ``www.``."""
    return urlsplit(canonical_url(url)).netloc.split(":")[0]


def clean_domain(domain: str) -> str:
    """A publisher domain as an API reports it ("www.CoinDesk.com."), in ``url_domain``'s form."""
    host = domain.strip().lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


_NOT_ALNUM = re.compile(r"[\W_]+")


def title_key(title: str) -> str:
    """The title as compared across sources: "SEC Drops Uniswap Case&mdash;UNI Soars!" and
    "sec drops uniswap case - uni soars" are the same key."""
    text = unicodedata.normalize("NFKC", html.unescape(title)).casefold()
    return _NOT_ALNUM.sub(" ", text).strip()


def story_key(domain: str, title: str) -> str:
    """sha256 hex of the publisher's domain and the normalised title (see the module docstring)."""
    return hashlib.sha256(f"{clean_domain(domain)}\n{title_key(title)}".encode()).hexdigest()


# -- text ------------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def clean_text(value: object) -> str | None:
    """Plain text from an HTML fragment (tags dropped, entities decoded, whitespace collapsed);
    None for missing or blank input: an absent summary stays NULL, never ''."""
    if value is None:
        return None
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", str(value)))).strip()
    return text or None


def utc_seconds(value: datetime) -> datetime:
    """Aware UTC, truncated to whole seconds (MySQL DATETIME keeps no fractions)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


# -- mentions and category -------------------------------------------------------------------

CRYPTO_KEYWORDS = re.compile(
    r"(?<![\w$])(?:crypto|cryptos|cryptocurrenc(?:y|ies)|cryptoasset|crypto-assets?|blockchains?|"
    r"stablecoins?|altcoins?|memecoins?|defi|nfts?|web3|crypto\s+exchanges?)(?!\w)",
    re.IGNORECASE,
)


class Tagger:
    """Finds mentions of ``symbols`` (the configured coins) and the category of an article.

    The category looks at the whole universe, so an article about a coin outside the
    configured subset is still ``crypto``. One ``Tagger`` compiles the patterns of all coins
    once; ``analyse`` then costs a few regex passes per text, however many coins there are."""

    def __init__(self, symbols: Sequence[Coin]):
        self.symbols = tuple(c.symbol for c in symbols)
        given = {c.symbol: c for c in symbols}
        ids = {c.coingecko_id for c in symbols}  # a default coin under another key is the same coin
        self._vocabulary = Vocabulary([*given.values(), *(c for c in UNIVERSE
                                                          if c.symbol not in given and c.coingecko_id not in ids)])
        self._wanted = frozenset(self.symbols)

    def analyse(self, *texts: str | None) -> tuple[list[str], str]:
        """(sorted mentioned symbols among the configured ones, category)."""
        texts = tuple(t for t in texts if t)
        found = [m for t in texts for m in self._vocabulary.scan(t)]
        strong = {m.key for m in found if m.strong}
        by_name = {m.key for m in found if m.by_name}
        strong |= by_name & {m.key for m in found if not m.by_name}  # "Harmony ... ONE": weak name + weak ticker
        crypto = bool(strong) or any(CRYPTO_KEYWORDS.search(t) for t in texts)
        keys = {m.key for m in found} if crypto else strong
        return sorted(keys & self._wanted), (CRYPTO if crypto else GENERAL)

    def mentions(self, *texts: str | None) -> list[str]:
        return self.analyse(*texts)[0]

    def category(self, *texts: str | None) -> str:
        return self.analyse(*texts)[1]


def unique_items(items: Iterable[NewsItem]) -> list[NewsItem]:
    """One item per article id (first wins), in a deterministic order."""
    seen: dict[str, NewsItem] = {}
    for item in items:
        seen.setdefault(item.article_id, item)
    return sorted(seen.values(), key=lambda i: (i.published_at, i.article_id))
