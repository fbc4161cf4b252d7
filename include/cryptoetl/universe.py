"""The coin universe: which coins the pipeline tracks, and the warehouse key of each.

Two ways to choose it, one setting (``CRYPTOETL_UNIVERSE``):

- **a file** of coins, CSV with the header ``coingecko_id,symbol,name`` (``symbol`` is the exchange
  ticker). The default is the packaged ``universe.csv`` (10 coins). An empty id, a duplicate id or a
  missing column is an error naming the file and line; an id CoinGecko does not know is an error of
  the ``universe`` step, which checks the file against ``/coins/markets``.
- **the top N by market cap**, ``top:N``: the ``universe`` step takes CoinGecko's ``/coins/markets``
  (250 coins a page) once a day and stores the snapshot with the time it was known
  (``universe_snapshots``). The steps then track every coin that was in a snapshot, until it has
  been out of the universe for ``CRYPTOETL_UNIVERSE_RETAIN_DAYS`` (see ``warehouse/universe.py``).

**Warehouse keys.** Every table keys on ``symbol``, a key of at most 16 characters that is unique and
never changes. It is the coin's ticker, upper-cased, when no other coin holds that key. CoinGecko has
many coins with the same ticker: the first coin to take a ticker keeps it (in a file, the first row;
in a top-N snapshot, the best-ranked coin), and every other coin with that ticker gets the ticker
followed by ``-`` and the first four hex digits of the SHA-1 of its CoinGecko id, e.g. ``UNI-3F2A``.
Two coins are never merged: the ``coins`` table maps each key to one CoinGecko id for good, and a
file or snapshot that would move a key to another id is refused.

This module is a leaf: it imports nothing of the project, so ``config`` can read the file.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().parent / "universe.csv"
KEY_MAX = 16  # price_data_real.symbol and every other table's key: VARCHAR(16)
FILE_COLUMNS = ("coingecko_id", "symbol", "name")
TOP_PREFIX = "top:"
MAX_TOP = 5000


class UniverseError(ValueError):
    """A universe file or snapshot is unusable; the message names the file, line or coin."""


@dataclass(frozen=True)
class Coin:
    """One coin of the universe. ``symbol`` is the warehouse key (see the module docstring): the
    ticker itself unless another coin of the universe holds it."""

    symbol: str  # the warehouse key: "BTC"; a colliding ticker's key is suffixed, e.g. "UNI-3F2A"
    coingecko_id: str  # CoinGecko's id for /coins/{id}/...: "bitcoin"; joins every table to CoinGecko
    name: str  # display name, also used to tag news mentions: "Bitcoin"
    ticker: str = ""  # the exchange ticker, upper-case ("UNI" for both UNI coins); default: symbol

    def __post_init__(self) -> None:
        if not self.ticker:
            object.__setattr__(self, "ticker", self.symbol)


def normalize_ticker(raw: str | None) -> str:
    """CoinGecko's ticker as a key candidate: stripped (CoinGecko sends some padded with a
    non-breaking space), upper-cased, letters and digits only."""
    return re.sub(r"[^0-9A-Z]", "", (raw or "").strip().upper())


def suffixed_key(ticker: str, coingecko_id: str) -> str:
    """The key of a coin whose ticker another coin holds: ``TICKER-XXXX`` (SHA-1 of the id)."""
    digest = hashlib.sha1(coingecko_id.encode()).hexdigest().upper()
    return f"{ticker[:KEY_MAX - 5]}-{digest[:4]}"


def assign_keys(candidates: Iterable[tuple[str, str, str]], taken: Mapping[str, str] | None = None
                ) -> list[Coin]:
    """Coins for ``candidates`` (coingecko_id, ticker, name), in priority order, given the keys already
    ``taken`` (key -> coingecko_id, e.g. the warehouse's ``coins`` table). A coin that already has a
    key keeps it; a new one gets its ticker, or the suffixed key if the ticker is held."""
    owner = dict(taken or {})
    key_of = {cid: key for key, cid in owner.items()}
    coins = []
    for coingecko_id, raw_ticker, name in candidates:
        ticker = normalize_ticker(raw_ticker) or normalize_ticker(coingecko_id)
        key = key_of.get(coingecko_id)
        if key is None:
            key = ticker[:KEY_MAX]
            if key in owner:
                key = suffixed_key(ticker, coingecko_id)
            if key in owner:  # a SHA-1 prefix clash as well: longer digests until free
                digest = hashlib.sha1(coingecko_id.encode()).hexdigest().upper()
                key = next(k for n in range(5, KEY_MAX)
                           if (k := f"{ticker[:KEY_MAX - n - 1]}-{digest[:n]}") not in owner)
            owner[key], key_of[coingecko_id] = coingecko_id, key
        coins.append(Coin(key, coingecko_id, name or coingecko_id, ticker))
    return coins


def read_file(path: str | Path) -> tuple[Coin, ...]:
    """The coins of a universe file, keyed by the rule above; UniverseError names the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UniverseError(f"universe file {path}: cannot be read ({exc.strerror or exc})") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in FILE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UniverseError(f"universe file {path}: the header lacks {missing}; it must be "
                            f"{','.join(FILE_COLUMNS)}")
    seen: dict[str, int] = {}
    rows = []
    for line, row in enumerate(reader, start=2):
        coingecko_id = (row.get("coingecko_id") or "").strip().lower()
        if not coingecko_id:
            raise UniverseError(f"universe file {path}, line {line}: empty coingecko_id")
        if coingecko_id in seen:
            raise UniverseError(f"universe file {path}, line {line}: duplicate coingecko_id {coingecko_id!r} "
                                f"(first on line {seen[coingecko_id]})")
        seen[coingecko_id] = line
        rows.append((coingecko_id, (row.get("symbol") or "").strip(), (row.get("name") or "").strip()))
    if not rows:
        raise UniverseError(f"universe file {path} lists no coin")
    return tuple(assign_keys(rows))


def parse_top(raw: str) -> int | None:
    """N of a ``top:N`` setting; None when ``raw`` names a file instead."""
    if not raw.lower().startswith(TOP_PREFIX):
        return None
    number = raw[len(TOP_PREFIX):].strip()
    if not number.isdigit() or not 1 <= int(number) <= MAX_TOP:
        raise UniverseError(f"{raw!r}: use top:N with N from 1 to {MAX_TOP}")
    return int(number)


def select(coins: Sequence[Coin], wanted: Sequence[str]) -> tuple[Coin, ...]:
    """The coins whose key is in ``wanted`` (CRYPTOETL_SYMBOLS), in that order; unknown keys fail."""
    by_key = {c.symbol: c for c in coins}
    unknown = [s for s in wanted if s not in by_key]
    if unknown:
        known = sorted(by_key)
        shown = ", ".join(known[:20]) + (f" ... ({len(known)} in all)" if len(known) > 20 else "")
        raise UniverseError(f"unknown symbols {unknown}; the universe has: {shown}")
    return tuple(by_key[s] for s in dict.fromkeys(wanted))


DEFAULT_COINS: tuple[Coin, ...] = read_file(DEFAULT_FILE)
