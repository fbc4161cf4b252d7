"""The synthetic market behind the sandbox CoinGecko API: which coins exist, when, and their
hourly series. ALL DATA HERE IS SYNTHETIC.

Coins (``catalogue(now)``): the ten known ids of ``LEVELS``, by far the biggest market caps,
plus ``N_SYNTHETIC`` seeded coins ``synthetic-coin-N`` named "Synthetic Coin N", with
market-cap levels log-uniform over ``SYNTHETIC_CAPS`` and price levels over ten orders of
magnitude (so circulating supplies span as many). Roles drawn once from a fixed seed, disjoint
(``ROLES``): coins listed, and coins delisted, at seeded hours within the ``WINDOW_HOURS``
before the day (UTC) of the sandbox clock at construction; coins whose circulating supply is
unknown (market cap 0, no rank); coins with no known volume; one ticker padded with a no-break
space; coins sharing the ticker of a known coin (``KNOWN_TWINS``) or of another synthetic coin
(``TWIN_GROUPS``). Everything but the listing times is independent of the clock.

Series: every coin has about one point an hour from EPOCH over HORIZON_HOURS (``Market.hourly``),
cut to its life [listed, delisted). As in recorded real answers, the points are not on the hour:
on most days a coin's points come seconds to minutes after it, but on ``LATE_DAYS`` of days
they are stamped later in the hour, anywhere up to :59 (the minute drifts a little from hour to
hour); and ``HOLE_DAYS`` of days lose a run of 1 to ``MAX_HOLE`` hours with no point at all.
Which days, seeded per coin and day (``_quirks``), never depends on the request. The known coins keep
their historical generation, one seeded random walk over the whole horizon each (kept in
memory: ten of them). A synthetic coin's log price is a mean-reverting walk whose values every
``BLOCK`` hours are seeded per coin, with each block filled in from its own seed by a Brownian
bridge between them: any hour costs one block, never the whole series, and blocks are kept in a
bounded LRU. A value never depends on which ranges were asked before, nor on the clock.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from cryptoetl.sandbox.common import DAY, EPOCH, HORIZON_HOURS, HOUR, rng, seed

# Price level and circulating supply per known coin id.
LEVELS = {"bitcoin": (60_000.0, 19.7e6), "ethereum": (3_000.0, 120e6), "solana": (150.0, 460e6),
          "binancecoin": (550.0, 150e6), "ripple": (0.55, 55e9), "cardano": (0.45, 35e9),
          "dogecoin": (0.12, 144e9), "avalanche-2": (30.0, 400e6), "polkadot": (6.0, 1.4e9),
          "chainlink": (14.0, 600e6)}
KNOWN_COINS = frozenset(LEVELS)
# id -> (ticker, name, total supply, max supply or None)
KNOWN_META = {"bitcoin": ("btc", "Bitcoin", 19.7e6, 21e6), "ethereum": ("eth", "Ethereum", 120e6, None),
              "solana": ("sol", "Solana", 580e6, None), "binancecoin": ("bnb", "BNB", 150e6, 200e6),
              "ripple": ("xrp", "XRP", 100e9, 100e9), "cardano": ("ada", "Cardano", 45e9, 45e9),
              "dogecoin": ("doge", "Dogecoin", 144e9, None), "avalanche-2": ("avax", "Avalanche", 450e6, 720e6),
              "polkadot": ("dot", "Polkadot", 1.5e9, None), "chainlink": ("link", "Chainlink", 1e9, 1e9)}

N_SYNTHETIC = 540
SYNTHETIC_CAPS = (1e4, 3e7)  # USD market-cap levels: far below the smallest known coin's
WINDOW_HOURS = 20 * 24  # listings and delistings fall within this many hours before the clock's day
PRE_PRICE_HOURS = 6  # a new listing's first hours have no price yet (in /coins/markets)
KNOWN_TWINS = ("sol", "link", "doge")  # tickers of known coins that small synthetic coins share too
TWIN_GROUPS = (2, 2, 3, 2)  # sizes of the groups of synthetic coins sharing one ticker
NBSP = "\u00a0"
# role -> how many synthetic coins have it (drawn in this order from one seeded permutation)
ROLES = {"listed": 10, "delisted": 5, "unknown_supply": 8, "no_volume": 6, "padded": 1,
         "known_twins": len(KNOWN_TWINS), "twins": sum(TWIN_GROUPS)}

SIGMA = 0.006  # hourly log-price volatility
LATE_DAYS = 0.2  # share of a coin's days whose points are stamped late in the hour (:05 to :59)
HOLE_DAYS = 0.04  # share of a coin's days with a hole of 1 to MAX_HOLE hours
MAX_HOLE = 6
BLOCK = 240  # hours per seeded block of a synthetic coin's walk
N_BLOCKS = HORIZON_HOURS // BLOCK
PHI = 0.9726  # pull of a synthetic walk back to its level per block: stationary sd ~0.4
BLOCK_CACHE = 4096  # blocks kept (~6 KB each)


@dataclass(frozen=True)
class CoinSpec:
    id: str
    symbol: str  # lower-case as CoinGecko sends it (one carries a leading no-break space)
    name: str
    level: float  # USD price level
    supply: float  # circulating supply (drives the volume even when not published)
    total_supply: float | None
    max_supply: float | None
    supply_known: bool = True  # False: market cap 0 and no rank, as CoinGecko shows unknown supplies
    volume_known: bool = True  # False: /coins/markets sends total_volume null
    listed_at: int | None = None  # UNIX seconds, an hour start; None: before the horizon
    delisted_at: int | None = None  # UNIX seconds, an hour start; None: still listed

    def alive(self, t: float) -> bool:
        """Listed at ``t``: listed_at <= t < delisted_at."""
        return (self.listed_at is None or self.listed_at <= t) and (self.delisted_at is None or t < self.delisted_at)

    def life_hours(self) -> tuple[int, int]:
        """[first, end) hour indexes (from EPOCH) with points."""
        first = 0 if self.listed_at is None else (self.listed_at - EPOCH) // HOUR
        end = HORIZON_HOURS if self.delisted_at is None else (self.delisted_at - EPOCH) // HOUR
        return first, end


def _tickers(n: int, taken: set[str]) -> list[str]:
    """``n`` distinct seeded tickers of 3-5 letters, none in ``taken``."""
    gen, letters, out = rng("coingecko", "tickers"), np.array(list(string.ascii_lowercase)), []
    while len(out) < n:
        ticker = "".join(gen.choice(letters, int(gen.integers(3, 6))))
        if ticker not in taken:
            taken.add(ticker)
            out.append(ticker)
    return out


def roles() -> dict[str, list[int]]:
    """Synthetic coin numbers (1-based) per role of ``ROLES``, disjoint, from a fixed seed."""
    order = (rng("coingecko", "roles").permutation(N_SYNTHETIC) + 1).tolist()
    out, at = {}, 0
    for role, count in ROLES.items():
        out[role], at = order[at: at + count], at + count
    return out


def _symbols(role: dict[str, list[int]]) -> dict[int, str]:
    """Ticker per synthetic coin number, collisions and padding applied."""
    symbols = dict(enumerate(_tickers(N_SYNTHETIC, {meta[0] for meta in KNOWN_META.values()}), start=1))
    for number, ticker in zip(role["known_twins"], KNOWN_TWINS, strict=True):
        symbols[number] = ticker
    twins = iter(role["twins"])
    for size in TWIN_GROUPS:
        group = [next(twins) for _ in range(size)]
        for number in group[1:]:
            symbols[number] = symbols[group[0]]
    for number in role["padded"]:
        symbols[number] = NBSP + symbols[number]
    return symbols


@lru_cache(maxsize=1)
def _base_catalogue() -> tuple[CoinSpec, ...]:
    """Every coin, listed since before the horizon (listing times come with the clock)."""
    coins = [CoinSpec(cid, ticker, name, LEVELS[cid][0], LEVELS[cid][1], total, maximum)
             for cid, (ticker, name, total, maximum) in KNOWN_META.items()]
    role = roles()
    symbols = _symbols(role)
    gen = rng("coingecko", "synthetic-levels")
    log_cap = gen.uniform(*np.log10(SYNTHETIC_CAPS), N_SYNTHETIC)
    log_price = gen.uniform(-6.0, 4.0, N_SYNTHETIC)
    total_ratio = np.where(gen.random(N_SYNTHETIC) < 0.3, 1.0, gen.uniform(1.0, 3.0, N_SYNTHETIC))
    max_ratio = np.where(gen.random(N_SYNTHETIC) < 0.5, np.nan, gen.uniform(1.0, 2.0, N_SYNTHETIC))
    for i in range(N_SYNTHETIC):
        number = i + 1
        price, supply = 10 ** log_price[i], 10 ** (log_cap[i] - log_price[i])
        total = supply * total_ratio[i]
        coins.append(CoinSpec(f"synthetic-coin-{number}", symbols[number], f"Synthetic Coin {number}",
                              float(price), float(supply), float(total),
                              None if np.isnan(max_ratio[i]) else float(total * max_ratio[i]),
                              supply_known=number not in role["unknown_supply"],
                              volume_known=number not in role["no_volume"]))
    return tuple(coins)


def catalogue(now: float) -> dict[str, CoinSpec]:
    """Every coin by id, with the listings and delistings of ``roles()`` at seeded hours within
    the WINDOW_HOURS before the UTC day of ``now`` (so stable through that day)."""
    day = int(now // DAY * DAY)
    role = roles()
    changing = role["listed"] + role["delisted"]
    offsets = rng("coingecko", "listing-hours").integers(1, WINDOW_HOURS + 1, len(changing))
    when = {f"synthetic-coin-{n}": day - int(h) * HOUR for n, h in zip(changing, offsets, strict=True)}
    listed = {f"synthetic-coin-{n}" for n in role["listed"]}
    coins = {}
    for coin in _base_catalogue():
        if coin.id in when:
            coin = replace(coin, **{"listed_at" if coin.id in listed else "delisted_at": when[coin.id]})
        coins[coin.id] = coin
    return coins


class _Series:
    """(timestamp_s, price, market_cap, volume) at hour indexes; subclasses give the raw streams."""

    def __init__(self, coin: CoinSpec):
        self.id = coin.id
        self.supply = coin.supply
        self.cap_supply = coin.supply if coin.supply_known else 0.0

    def _raw(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def hourly(self, first_hour: int, last_hour: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(timestamp_s, price, market_cap, volume) for hour indexes [first, last]."""
        first, last = max(first_hour, 0), min(last_hour, HORIZON_HOURS - 1)
        idx = np.arange(first, last + 1)
        log_price, volume_noise, jitter = self._raw(first, last)
        late, present = _quirks(self.id, idx)
        price = np.exp(log_price)
        ts = EPOCH + idx * HOUR + np.where(late > 0, late, jitter)
        return (ts[present], price[present], (price * self.cap_supply)[present],
                (price * self.supply * 0.03 * volume_noise)[present])


def _mix(key: str, x: np.ndarray) -> np.ndarray:
    """A seeded hash of each integer of ``x`` (splitmix64), uniform over uint64: vectorised, so that
    any range of hours costs no generator per day."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(seed(key))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _quirks(coin_id: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For hour indexes ``idx``: the seconds past the hour of a late point (0: on time), and whether
    the hour has a point at all (False inside a hole)."""
    day = idx // 24
    late_day = _mix(f"{coin_id}/late", day) % np.uint64(1000) < np.uint64(int(LATE_DAYS * 1000))
    minute = 5 + (_mix(f"{coin_id}/late-minute", day) % np.uint64(50)).astype(np.int64)
    drift = (_mix(f"{coin_id}/drift", idx) % np.uint64(540)).astype(np.int64)  # up to 9 more minutes
    late = np.where(late_day, np.minimum(minute * 60 + drift, HOUR - 1), 0)
    present = np.ones(len(idx), dtype=bool)
    for back in (0, 1):  # a hole starting late on the day before can run into this one
        d = day - back
        holed = _mix(f"{coin_id}/hole", d) % np.uint64(1000) < np.uint64(int(HOLE_DAYS * 1000))
        start = d * 24 + (_mix(f"{coin_id}/hole-start", d) % np.uint64(24)).astype(np.int64)
        length = 1 + (_mix(f"{coin_id}/hole-length", d) % np.uint64(MAX_HOLE)).astype(np.int64)
        present &= ~(holed & (idx >= start) & (idx < start + length))
    return late, present


class _WholeSeries(_Series):
    """A known coin: each stream seeded and generated once over the whole horizon (as ever)."""

    def __init__(self, coin: CoinSpec):
        super().__init__(coin)
        self.log_price = np.log(coin.level) + np.cumsum(rng(coin.id, "steps").normal(0.0, SIGMA, HORIZON_HOURS))
        self.volume_noise = rng(coin.id, "volume").lognormal(0.0, 0.3, HORIZON_HOURS)
        self.jitter = rng(coin.id, "jitter").integers(0, 300, HORIZON_HOURS)

    def _raw(self, first: int, last: int):
        return self.log_price[first: last + 1], self.volume_noise[first: last + 1], self.jitter[first: last + 1]


@lru_cache(maxsize=BLOCK_CACHE)
def _block(coin_id: str, k: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block ``k`` (hours k*BLOCK ...): a Brownian bridge from ``start`` towards ``end``, its volume noise
    and jitter, all from the block's own seed."""
    gen = rng(coin_id, "block", str(k))
    steps = gen.normal(0.0, SIGMA, BLOCK)
    walk = np.concatenate(([0.0], np.cumsum(steps[:-1])))
    frac = np.arange(BLOCK) / BLOCK
    arrays = (start + walk + frac * (end - start - steps.sum()), gen.lognormal(0.0, 0.3, BLOCK),
              gen.integers(0, 300, BLOCK))
    for array in arrays:
        array.setflags(write=False)
    return arrays


class _BlockSeries(_Series):
    """A synthetic coin: log price pulled back to its level, seeded every BLOCK hours; blocks on demand."""

    def __init__(self, coin: CoinSpec):
        super().__init__(coin)
        self.id = coin.id
        shocks = rng(coin.id, "knots").normal(0.0, SIGMA * np.sqrt(BLOCK), N_BLOCKS)
        # AR(1) from 0: x[k] = sum_{j<k} PHI**(k-1-j) shocks[j], without a Python loop
        scaled = np.cumsum(shocks * PHI ** -np.arange(N_BLOCKS))
        self.knots = np.log(coin.level) + np.concatenate(([0.0], PHI ** np.arange(N_BLOCKS) * scaled))

    def _raw(self, first: int, last: int):
        if last < first:
            return np.empty(0), np.empty(0), np.empty(0, dtype=np.int64)
        blocks = [_block(self.id, k, float(self.knots[k]), float(self.knots[k + 1]))
                  for k in range(first // BLOCK, last // BLOCK + 1)]
        lo = first - first // BLOCK * BLOCK
        return tuple(np.concatenate([b[i] for b in blocks])[lo: lo + last - first + 1] for i in range(3))


class Market:
    """The coins (``coins``, by id) and their series, built lazily."""

    def __init__(self, now: float):
        self.coins = catalogue(now)
        self._series: dict[str, _Series] = {}

    def series(self, coin_id: str) -> _Series:
        series = self._series.get(coin_id)
        if series is None:
            coin = self.coins[coin_id]
            series = (_WholeSeries if coin_id in KNOWN_COINS else _BlockSeries)(coin)
            self._series[coin_id] = series
        return series

    def hourly(self, coin_id: str, first_hour: int, last_hour: int):
        """(timestamp_s, price, market_cap, volume) for hour indexes [first, last] within the coin's life."""
        life_first, life_end = self.coins[coin_id].life_hours()
        return self.series(coin_id).hourly(max(first_hour, life_first), min(last_hour, life_end - 1))
