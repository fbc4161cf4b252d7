"""The universe in the warehouse: the coin registry (``coins``) and the daily snapshots.

- ``register`` gives each new coin its permanent key (``universe.assign_keys``) and refuses a key
  that would move to another CoinGecko id: two coins are never merged.
- ``write_snapshot`` stores a snapshot once per daily interval. A snapshot is what was known when it
  was taken, so it is never replaced: a rerun of the interval keeps the first one.
- ``tracked_coins`` is what a top-N step loads for an interval: the latest snapshot's coins, and
  every coin whose last snapshot is at most ``retain_days`` before the interval. So a coin that
  leaves keeps its history (and a little more), a coin that joins is loaded for any interval a
  backfill reaches, and the members stay loaded if the snapshots stop for a while.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from cryptoetl.universe import Coin, UniverseError, assign_keys
from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc

log = logging.getLogger(__name__)


def registered(conn: Connection | Engine) -> dict[str, Coin]:
    """Every registered coin by key."""
    c = schema.coins.c
    with _connection(conn) as db:
        rows = db.execute(select(c.symbol, c.coingecko_id, c.name, c.ticker)).all()
    return {row.symbol: Coin(row.symbol, row.coingecko_id, row.name, row.ticker) for row in rows}


def keys_for(conn: Connection, candidates: Iterable[tuple[str, str, str]]) -> list[Coin]:
    """Coins for (coingecko_id, ticker, name) candidates in priority order, keyed against the registry."""
    taken = {key: coin.coingecko_id for key, coin in registered(conn).items()}
    return assign_keys(candidates, taken)


def check_keys(conn: Connection | Engine, coins: Sequence[Coin]) -> list[Coin]:
    """The coins the registry lacks. UniverseError when a coin's key belongs to another id, or its id
    already has another key (a universe file edited so that keys would move): every step checks a
    file universe so, before it writes anything."""
    have = registered(conn)
    key_of = {coin.coingecko_id: key for key, coin in have.items()}
    new, problems = [], []
    for coin in coins:
        if coin.symbol in have and have[coin.symbol].coingecko_id != coin.coingecko_id:
            owner = have[coin.symbol].coingecko_id
            problems.append(f"key {coin.symbol} belongs to {owner!r}, not {coin.coingecko_id!r}")
        elif coin.coingecko_id in key_of and key_of[coin.coingecko_id] != coin.symbol:
            problems.append(f"{coin.coingecko_id!r} has the key {key_of[coin.coingecko_id]}, not {coin.symbol}")
        elif coin.symbol not in have:
            new.append(coin)
    if problems:
        raise UniverseError("warehouse keys never move to another coin: " + "; ".join(problems)
                            + ". Keep the universe file's rows in their first order, or remove the coin.")
    return new


def register(conn: Connection, coins: Sequence[Coin], now: datetime) -> list[Coin]:
    """Add the coins the registry lacks (``check_keys`` first); the ones added."""
    new = check_keys(conn, coins)
    if new:
        conn.execute(schema.coins.insert(), [
            {"symbol": c.symbol, "coingecko_id": c.coingecko_id, "ticker": c.ticker[:64], "name": c.name[:255],
             "first_seen_at": to_naive_utc(now)} for c in new])
    return new


def snapshot_taken(conn: Connection | Engine, day: date) -> datetime | None:
    """When the snapshot of ``day`` was taken, if it was."""
    s = schema.universe_snapshots.c
    with _connection(conn) as db:
        return db.execute(select(func.min(s.known_at)).where(s.snapshot_date == day)).scalar()


def members_before(conn: Connection | Engine, day: date) -> set[str]:
    """The keys of the latest snapshot taken for a day before ``day`` (empty before the first)."""
    s = schema.universe_snapshots.c
    with _connection(conn) as db:
        last = db.execute(select(func.max(s.known_at)).where(s.snapshot_date < day)).scalar()
        return set() if last is None else set(db.execute(select(s.symbol).where(s.known_at == last)).scalars())


def write_snapshot(conn: Connection, day: date, known_at: datetime, rows: Sequence[Mapping]) -> int:
    """Store the snapshot of ``day`` (rows: symbol, coingecko_id, market_cap_rank, market_cap, price,
    total_volume, source) unless one is stored already; the rows written. A concurrent run of the
    same day fails on the unique (snapshot_date, symbol) index instead of adding a second one."""
    if snapshot_taken(conn, day) is not None:
        return 0
    known = to_naive_utc(known_at)
    if known.microsecond:  # up to the next second: never earlier than the call
        known = known.replace(microsecond=0) + timedelta(seconds=1)
    conn.execute(schema.universe_snapshots.insert(),
                 [{**row, "known_at": known, "snapshot_date": day} for row in rows])
    return len(rows)


def tracked_coins(engine: Engine, start: datetime, retain_days: int) -> tuple[Coin, ...]:
    """The coins a top-N universe loads for an interval starting at ``start`` (see the module
    docstring): the latest snapshot's, and every coin whose last snapshot is at most ``retain_days``
    before ``start``; by key. UniverseError when no snapshot was ever taken."""
    s = schema.universe_snapshots.c
    c = schema.coins.c
    cutoff = to_naive_utc(start) - timedelta(days=retain_days)
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(s.known_at))).scalar()
        if latest is None:
            raise UniverseError("no universe snapshot yet: the universe_coingecko DAG takes one "
                                "(CRYPTOETL_UNIVERSE=top:N needs it before any coin is loaded)")
        recent = select(s.symbol).where(s.known_at >= min(cutoff, latest)).distinct().subquery()
        now = select(s.symbol, s.market_cap_rank).where(s.known_at == latest).subquery()
        rows = conn.execute(select(c.symbol, c.coingecko_id, c.name, c.ticker, now.c.market_cap_rank)
                            .outerjoin(now, now.c.symbol == c.symbol)
                            .where(c.symbol.in_(select(recent.c.symbol)))).all()
    # best-ranked first (the latest snapshot's rank; coins that left after them, by key)
    rows = sorted(rows, key=lambda r: (r.market_cap_rank is None, r.market_cap_rank or 0, r.symbol))
    return tuple(Coin(r.symbol, r.coingecko_id, r.name, r.ticker) for r in rows)


@contextmanager
def _connection(target: Connection | Engine) -> Iterator[Connection]:
    """A Connection as is; a new one on an Engine."""
    if isinstance(target, Connection):
        yield target
    else:
        with target.connect() as conn:
            yield conn
