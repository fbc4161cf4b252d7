"""How ``news_tagging.Tagger`` finds coin mentions: which of a coin's terms are strong, weak,
common or cashtag-only, and one compiled pattern per kind of term for the whole universe.

The rules are documented in ``cryptoetl.news_tagging``'s docstring; this module implements them.
The English word list is pyspellchecker's (word frequencies from film and TV subtitles, filtered
by a spelling dictionary, so crypto names such as "bitcoin" or "solana" are not in it); it ships
inside the package, nothing is downloaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptoetl.universe import Coin

# -- the hand-written part -------------------------------------------------------------------

# Extra names per warehouse key: (strong names, weak names). Strong names are strong by
# declaration; weak names follow the weak-name rules (capitals, crypto evidence).
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
# Tickers that are abbreviations of something else, or words the word list misses: weak.
WEAK_TICKERS = frozenset({
    "SOL", "ADA", "DOT", "LINK", "DOGE", "ONE", "NEAR", "GAS", "ICP", "ATOM",
    "EOS",  # Canon's cameras, NASA's Earth Observing System
    "NEO",  # near-Earth objects
    "ETC",  # et cetera, in capitals
})
# Abbreviations that crypto and market news use every day for something else: a coin with one of
# these tickers is never found by the bare ticker (weak would not help: they fill crypto articles).
ACRONYMS = frozenset({
    "AI", "AML", "AMM", "API", "APR", "APY", "ATH", "ATL", "CEO", "CEX", "CPI", "DAO", "DCA", "DEX",
    "DXY", "ETF", "ETP", "EUR", "FBI", "FED", "GDP", "GPU", "IPO", "KYC", "MAGA", "MEV", "NASA", "NFT",
    "OTC", "RWA", "SEC", "SPX", "TVL", "USA", "USD", "VIX",
})
# Names that are other well-known things (films, people, software): weak although not English words.
WEAK_NAMES = frozenset({"arkham", "avalanche", "bittorrent", "kaia", "nano", "pepe", "ronin", "tron"})  # lower-case
# Known false friends: a term followed by this is something else.
FALSE_FRIENDS: dict[str, str] = {
    "ETH": r"\s+Z(?:u|ü|ue)rich",  # ETH Zurich, the university
    "ripple": r"\s+effects?\b",  # names lower-case
}
# A bare ticker right after a stock exchange's prefix is a share: "Seagate (NASDAQ: STX)".
STOCK_EXCHANGE_PREFIX = re.compile(r"\b(?:NYSE|NYSEARCA|NASDAQ|Nasdaq|AMEX|LSE|TSX|ASX|OTC)\s*:\s*$")

# -- the systematic part ---------------------------------------------------------------------

TICKER_WORD_ZIPF = 2.0  # a ticker is weak when it is an English word at least this frequent
COMMON_ZIPF = 4.0  # a weak name whose every word is at least this frequent is common
MIN_NAME_LENGTH = 3  # shorter names are not matched (tickers' rules apply)
MAX_CASHTAG_ONLY_LENGTH = 2  # tickers this short are found only as $TICKER

STRONG, WEAK, COMMON, CASHTAG_ONLY = "strong", "weak", "common", "cashtag-only"

_ZIPF: dict[str, float | None] = {}  # word -> Zipf frequency (None: not an English word)


def word_zipfs(words: Iterable[str]) -> dict[str, float | None]:
    """Zipf frequency (log10 of occurrences per billion words) of each lower-cased word in the
    English word list, None for a word not in it. The list (~40 MB in memory) is loaded only for
    words not seen before in this process, and dropped again; the answers are kept."""
    wanted = {w.lower() for w in words}
    missing = wanted - _ZIPF.keys()
    if missing:
        from spellchecker import SpellChecker

        counts = SpellChecker(language="en").word_frequency
        total = counts.total_words
        for word in missing:
            n = counts[word]
            _ZIPF[word] = math.log10(n * 1e9 / total) if n else None
    return {w: _ZIPF[w] for w in wanted}


def ticker_kind(key: str, ticker: str, zipfs: dict[str, float | None]) -> str:
    """STRONG, WEAK or CASHTAG_ONLY for the bare ticker term of a coin (its warehouse key)."""
    if key != ticker:  # a suffixed key of a colliding ticker, "UNI-3F2A": one coin only
        return STRONG
    if len(key) <= MAX_CASHTAG_ONLY_LENGTH or key in ACRONYMS:
        return CASHTAG_ONLY
    zipf = zipfs.get(key.lower())
    if key in WEAK_TICKERS or (zipf is not None and zipf >= TICKER_WORD_ZIPF):
        return WEAK
    return STRONG


def name_kind(name: str, zipfs: dict[str, float | None], weak: bool = False) -> str:
    """STRONG, WEAK or COMMON for a name (``weak``: declared weak by hand)."""
    found = [zipfs.get(w.lower()) for w in name.split()]
    if any(z is None for z in found):
        return WEAK if weak or name.lower() in WEAK_NAMES else STRONG
    return COMMON if min(found) >= COMMON_ZIPF else WEAK


# -- one pattern for many terms --------------------------------------------------------------

def trie_pattern(terms: Iterable[str]) -> str:
    """A regex matching exactly ``terms``, as a trie ("bitcoin(?:\\s+cash)?"), so one search costs
    about the same for 10 or 1,000 terms, and the longest term wins at a position. A space in a
    term matches any run of whitespace."""
    trie: dict = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _node_pattern(trie) if trie else "(?!)"


def _node_pattern(node: dict) -> str:
    alternatives = [(r"\s+" if ch == " " else re.escape(ch)) + _node_pattern(child)
                    for ch, child in sorted(node.items()) if ch]
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"(?:{body})?" if "" in node else body


# -- the vocabulary of a universe ------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    key: str  # the coin's warehouse key
    ticker: str  # the coin's exchange ticker
    kind: str  # STRONG, WEAK, COMMON (names) or CASHTAG_ONLY (tickers)
    capitals: tuple[bool, ...] = ()  # names: which words must be written with a capital
    false_friend: re.Pattern | None = None


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    key: str
    strong: bool
    by_name: bool  # found by a name (else by a ticker)


_B = r"(?<![\w$])"  # word start, and not already part of a $TICKER
_E = r"(?!\w)"
_BRACKETED = re.compile(r"\s*\(\s*(\$?)([\w.-]+)\s*\)")
_LONG_WORD = re.compile(r"[^\W\d_]{4,}")
_SENTENCE_END = ".!?:;|\u2013\u2014"


def _names(coin: Coin) -> list[tuple[str, bool]]:
    """(name as written, declared weak) for a coin: its name, that name without a trailing
    "(...)", and its ALIASES; not a name written as its ticker ("XRP"), nor a too short one."""
    strong, weak = ALIASES.get(coin.symbol, ((), ()))
    base = re.sub(r"\s*\([^)]*\)\s*$", "", coin.name)
    out = [(" ".join(n.split()), False) for n in (coin.name, base, *strong)]
    out += [(" ".join(n.split()), True) for n in weak]
    return [(n, w) for n, w in out if len(n) >= MIN_NAME_LENGTH and n not in (coin.symbol, coin.ticker)]


class Vocabulary:
    """Every term of ``coins`` (in priority order: a term shared by several coins belongs to the
    first coin whose key is its ticker, else to the first coin given) and their patterns."""

    def __init__(self, coins: Sequence[Coin]):
        ordered = sorted(coins, key=lambda c: c.symbol != c.ticker)  # stable: bare-key holders first
        names = {c.symbol: _names(c) for c in ordered}
        zipfs = word_zipfs([*(c.symbol for c in coins), *(w for ns in names.values() for n, _ in ns
                                                          for w in n.split())])
        self.tickers: dict[str, Term] = {}  # key -> term
        self.names: dict[str, Term] = {}  # lower-case name, single spaces -> term
        for coin in ordered:
            kind = ticker_kind(coin.symbol, coin.ticker, zipfs)
            self.tickers[coin.symbol] = Term(coin.symbol, coin.ticker, kind, (), _false_friend(coin.symbol))
            for name, weak in names[coin.symbol]:
                self.names.setdefault(name.lower(), Term(
                    coin.symbol, coin.ticker, name_kind(name, zipfs, weak),
                    tuple(w[0].isupper() for w in name.split()), _false_friend(name.lower())))
        bare = [k for k, t in self.tickers.items() if t.kind != CASHTAG_ONLY]
        self._cashtags = {k.upper(): t for k, t in self.tickers.items()}
        self._bare = re.compile(f"{_B}(?:{trie_pattern(bare)}){_E}")
        self._cashtag = re.compile(rf"\$({trie_pattern(self.tickers)}){_E}", re.IGNORECASE)
        self._name = re.compile(f"{_B}(?:{trie_pattern(self.names)}){_E}", re.IGNORECASE)

    def scan(self, text: str) -> list[Mention]:
        """The mentions in ``text``: leftmost-longest, none overlapping, each crediting one coin.
        Weak ones are returned with strong=False: the caller keeps them only in crypto articles."""
        found: list[tuple[int, int, int, str, bool]] = []  # start, -end, priority (2: name), key, strong
        for m in self._cashtag.finditer(text):
            if term := self._cashtags.get(m.group(1).upper()):
                found.append((m.start(), -m.end(), 0, term.key, True))
        for m in self._bare.finditer(text):
            term = self.tickers[m.group()]
            if not (_is_false_friend(term, text, m.end())
                    or STOCK_EXCHANGE_PREFIX.search(text, max(0, m.start() - 12), m.start())):
                found.append((m.start(), -m.end(), 1, term.key, term.kind == STRONG))
        capitals_mean_names: list[bool] = []  # computed once, when first needed
        for m in self._name.finditer(text):
            if not (term := self.names.get(" ".join(m.group().lower().split()))):
                continue
            end, strong = self._name_mention(text, m, term, capitals_mean_names)
            if end:
                found.append((m.start(), -end, 2, term.key, strong))
        mentions, last = [], -1
        for start, neg_end, priority, key, strong in sorted(found):
            if start >= last:
                mentions.append(Mention(start, -neg_end, key, strong, priority == 2))
                last = -neg_end
        return mentions

    def _name_mention(self, text: str, m: re.Match, term: Term, cache: list[bool]) -> tuple[int, bool]:
        """(end, strong) of a name match, (0, False) when it does not count."""
        if _is_false_friend(term, text, m.end()):
            return 0, False
        bracket = _BRACKETED.match(text, m.end())
        if bracket and (bracket.group(2).upper() if bracket.group(1) else bracket.group(2)) in (term.ticker, term.key):
            return bracket.end(), True  # "Harmony (ONE)": the name and its own ticker, one strong mention
        if term.kind == STRONG:
            return m.end(), True
        words = m.group().split()
        if any(need and not w[0].isupper() for need, w in zip(term.capitals, words, strict=False)):
            return 0, False
        if term.kind == COMMON:
            if not cache:
                cache.append(capitals_mean_names(text))
            if not cache[0] or (len(words) == 1 and starts_sentence(text, m.start())):
                return 0, False
        return m.end(), False


def _false_friend(term: str) -> re.Pattern | None:
    pattern = FALSE_FRIENDS.get(term)
    return re.compile(pattern) if pattern else None


def _is_false_friend(term: Term, text: str, end: int) -> bool:
    return term.false_friend is not None and term.false_friend.match(text, end) is not None


def capitals_mean_names(text: str) -> bool:
    """False for a Title-Case or all-caps text, where a capital marks no name: at least three
    words of 4+ letters after the first, and at least three quarters of them capitalised."""
    words = _LONG_WORD.findall(text)[1:]
    return len(words) < 3 or sum(w[0].isupper() for w in words) * 4 < len(words) * 3


def starts_sentence(text: str, start: int) -> bool:
    """Whether ``start`` begins the text, a line or a sentence (after . ! ? : ; | or a dash),
    opening quotes and brackets skipped."""
    head = text[:start]
    before = head.rstrip(" \t\r\n\"'\u201c\u2018\u00ab([")
    return not before or "\n" in head[len(before):] or before[-1] in _SENTENCE_END
