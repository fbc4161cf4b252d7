"""What every news source shares: the item type, stable article ids, clean text, symbol
mentions and the crypto/general category.

- **Stable ids.** ``article_id`` is the sha256 of the *canonical* URL: https scheme, lower-case
  host without ``www.``, no default port, no fragment, no tracking parameters (``utm_*``,
  ``fbclid``, Guardian's ``CMP`` ...), remaining parameters sorted, no trailing slash. So the
  same article delivered by the Guardian API, CryptoPanic and an RSS feed, with or without
  ``?utm_source=...``, is one row.
- **Mentions.** Which configured symbols an article's title and summary mention. Names match
  case-insensitively on word boundaries ("Bitcoin", "bitcoins"); tickers only as upper-case
  whole words or as ``$TICKER`` ("ETH" never matches "method"). Tickers and names that are also
  ordinary words or other organisations are *weak*: "SOL", "ADA" (the disabilities act),
  "DOT" (Department of Transportation), "LINK", "DOGE" (the US government department),
  "Ether", "Ripple", "Avalanche". A weak term only counts in an article that is about crypto by
  some strong evidence (another strong mention or a crypto keyword), and ``$TICKER`` is always
  strong. "ETH Zurich" is not Ethereum.
- **Category.** ``crypto`` when the text mentions any coin of the whole universe (not only the
  configured subset) or a crypto keyword (crypto, cryptocurrency, blockchain, stablecoin, DeFi,
  NFT, altcoin, memecoin, Web3); else ``general`` (market, business and economy news). It is a
  pure function of the text, so it does not depend on which source delivered the article.
  Downstream, crypto articles are scored with CryptoBERT, general ones with FinBERT.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptoetl.config import UNIVERSE
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

    @property
    def article_id(self) -> str:
        return article_id(self.url)


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

# Extra names per ticker: (strong names, weak names). Names match case-insensitively, except
# weak names, which must be capitalised ("Ripple", not "ripple effect").
ALIASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "BTC": (("bitcoin", "bitcoins", "xbt"), ()),
    "ETH": (("ethereum",), ("Ether",)),
    "SOL": (("solana",), ()),
    "BNB": (("binance coin", "bnb chain"), ()),
    "XRP": ((), ("Ripple",)),
    "ADA": (("cardano",), ()),
    "DOGE": (("dogecoin", "dogecoins"), ()),
    "AVAX": ((), ("Avalanche",)),
    "DOT": (("polkadot",), ()),
    "LINK": (("chainlink",), ()),
}
# Tickers that are also common words, acronyms or organisations: weak unless written $TICKER.
WEAK_TICKERS = frozenset({"SOL", "ADA", "DOT", "LINK", "DOGE", "ONE", "NEAR", "GAS", "OP", "ICP", "ATOM"})
# Names (display names) that are ordinary words: weak and case-sensitive.
WEAK_NAMES = frozenset({"Avalanche"})
# Negative look-aheads for known false friends of a strong term.
NOT_FOLLOWED_BY: dict[str, str] = {
    "ETH": r"(?!\s+Z(?:u|ü|ue)rich)",  # ETH Zurich, the university
    "Ripple": r"(?!\s+effects?\b)",
}

CRYPTO_KEYWORDS = re.compile(
    r"(?<![\w$])(?:crypto|cryptos|cryptocurrenc(?:y|ies)|cryptoasset|crypto-assets?|blockchains?|"
    r"stablecoins?|altcoins?|memecoins?|defi|nfts?|web3|crypto\s+exchanges?)(?!\w)",
    re.IGNORECASE,
)

_B = r"(?<![\w$])"  # word start, and not already part of a $TICKER
_E = r"(?!\w)"


def _words(term: str) -> str:
    return r"\s+".join(re.escape(w) for w in term.split())


@dataclass(frozen=True)
class _CoinPatterns:
    symbol: str
    strong: re.Pattern
    weak: re.Pattern | None


def _patterns(coin: Coin) -> _CoinPatterns:
    strong_names, weak_names = ALIASES.get(coin.symbol, ((), ()))
    names = {n.lower() for n in strong_names}
    weak = set(weak_names)
    if coin.name in WEAK_NAMES:
        weak.add(coin.name)
    elif coin.name.upper() != coin.symbol:  # "XRP", "BNB": the name is the ticker
        names.add(coin.name.lower())
    ticker = coin.symbol
    strong_parts = [rf"(?i:\${re.escape(ticker)}){_E}"]  # $BTC, $sol: always a ticker
    if names:
        strong_parts.append("(?i:" + "|".join(rf"{_B}{_words(n)}{_E}" for n in sorted(names)) + ")")
    ticker_re = rf"{_B}{re.escape(ticker)}{_E}{NOT_FOLLOWED_BY.get(ticker, '')}"
    weak_parts = [rf"{_B}{_words(n)}{_E}{NOT_FOLLOWED_BY.get(n, '')}" for n in sorted(weak)]
    if ticker in WEAK_TICKERS:
        weak_parts.append(ticker_re)
    else:
        strong_parts.append(ticker_re)
    return _CoinPatterns(
        symbol=ticker,
        strong=re.compile("|".join(strong_parts)),
        weak=re.compile("|".join(weak_parts)) if weak_parts else None,
    )


class Tagger:
    """Finds mentions of ``symbols`` (the configured coins) and the category of an article.

    The category looks at the whole universe, so an article about a coin outside the
    configured subset is still ``crypto``."""

    def __init__(self, symbols: Sequence[Coin]):
        self.symbols = tuple(c.symbol for c in symbols)
        by_symbol = {c.symbol: c for c in (*UNIVERSE, *symbols)}
        self._patterns = [_patterns(c) for c in by_symbol.values()]

    def analyse(self, *texts: str | None) -> tuple[list[str], str]:
        """(sorted mentioned symbols among the configured ones, category)."""
        text = " \n ".join(t for t in texts if t)
        strong = {p.symbol for p in self._patterns if p.strong.search(text)}
        crypto = bool(strong) or bool(CRYPTO_KEYWORDS.search(text))
        found = set(strong)
        if crypto:
            found |= {p.symbol for p in self._patterns if p.weak is not None and p.weak.search(text)}
        return sorted(s for s in found if s in self.symbols), (CRYPTO if crypto else GENERAL)

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
