"""The raw landing store of CoinGecko ``market_chart/range``: points by aligned 90-day block.

A history load asks CoinGecko for whole aligned 90-day blocks (``sources/coingecko.block_starts``)
and lands every point here, each block in its own transaction as soon as it arrives. The runs of
the prices step then read their interval's points from here: a block is paid for once, whichever
run (of a backfill, a catch-up, a retry) needs it first. ``coingecko_chart_blocks.fetched_to`` says
up to when a block's points are complete; a block fetched up to ``now`` is fetched again only by a
run whose interval reaches past that.

Concurrent runs share blocks through ``claim``: an atomic UPDATE (or INSERT) marks a block as being
fetched until ``claimed_until``; another run that needs it waits for that fetch instead of paying
for the same block again. A claim that outlives its holder (a killed pod) expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.retry import retry_transient
from cryptoetl.warehouse.writes import insert_if_absent

points_t, blocks_t = schema.coingecko_chart_points, schema.coingecko_chart_blocks


@dataclass(frozen=True)
class Fetch:
    """One block of one coin to fetch: the call covers [lo, hi]; the run needs it landed up to ``need``."""

    coingecko_id: str
    block_start: datetime
    lo: datetime
    hi: datetime
    need: datetime | None = None  # None: hi


def fetched_to(engine: Engine, coin_ids: Sequence[str], block_starts: Sequence[datetime]) -> dict:
    """{(coingecko_id, block_start): fetched_to} of these blocks (naive UTC; missing: never fetched)."""
    if not coin_ids or not block_starts:
        return {}
    stmt = select(blocks_t.c.coingecko_id, blocks_t.c.block_start, blocks_t.c.fetched_to).where(
        blocks_t.c.coingecko_id.in_(list(coin_ids)),
        blocks_t.c.block_start.in_([to_naive_utc(b) for b in block_starts]))
    with engine.connect() as conn:
        return {(cid, start): to for cid, start, to in conn.execute(stmt) if to is not None}


def missing(engine: Engine, coin_ids: Sequence[str], blocks: Sequence[datetime], span: timedelta,
            need_to: datetime, fetch_to: datetime, *, refetch: bool = False) -> list[Fetch]:
    """The block fetches that points up to ``need_to`` need: every block not landed up to
    min(its end, need_to) (all of them with ``refetch``), each to be fetched up to min(its end,
    fetch_to), usually now, so that the later runs of the block find it landed."""
    done = {} if refetch else fetched_to(engine, coin_ids, blocks)
    todo = []
    for coin_id in coin_ids:
        for start in blocks:
            have = done.get((coin_id, to_naive_utc(start)))
            if have is None or have < to_naive_utc(min(start + span, need_to)):
                todo.append(Fetch(coin_id, start, start, min(start + span, fetch_to), min(start + span, need_to)))
    return todo


def claim(engine: Engine, fetch: Fetch, now: datetime, ttl: timedelta, *, refetch: bool = False) -> str:
    """Try to take ``fetch``: "claimed" (fetch it, then ``land``), "done" (another run landed it
    meanwhile) or "busy" (another run is fetching it: wait and ask again)."""
    key = and_(blocks_t.c.coingecko_id == fetch.coingecko_id,
               blocks_t.c.block_start == to_naive_utc(fetch.block_start))
    naive_now, until, need = to_naive_utc(now), to_naive_utc(now + ttl), to_naive_utc(fetch.need or fetch.hi)

    def attempt() -> str:
        with engine.begin() as conn:
            free = or_(blocks_t.c.claimed_until.is_(None), blocks_t.c.claimed_until <= naive_now)
            undone = True if refetch else or_(blocks_t.c.fetched_to.is_(None), blocks_t.c.fetched_to < need)
            if conn.execute(update(blocks_t).where(key, free, undone).values(claimed_until=until)).rowcount:
                return "claimed"
            row = conn.execute(select(blocks_t.c.fetched_to).where(key)).first()
        if row is None:  # never seen: insert it unclaimed (in its own transaction), then claim it
            insert_if_absent(engine, blocks_t, {"coingecko_id": fetch.coingecko_id,
                                  "block_start": to_naive_utc(fetch.block_start)})
            return attempt()
        if not refetch and row.fetched_to is not None and row.fetched_to >= need:
            return "done"
        return "busy"

    return retry_transient(attempt, what=f"claim {fetch.coingecko_id} block {fetch.block_start:%Y-%m-%d}")


def land(engine: Engine, fetch: Fetch, points: pd.DataFrame, *, synthetic: bool, fetched_at: datetime,
         covered: tuple[datetime, datetime]) -> int:
    """Store one fetched block in one transaction: its points in ``covered`` (the call's range) are
    replaced by ``points``; the block is marked landed up to ``fetch.hi`` and released."""
    lo, hi = (to_naive_utc(t) for t in covered)
    rows = [{"coingecko_id": fetch.coingecko_id, "ts": to_naive_utc(ts), "price": float(price),
             "market_cap": _number(cap), "total_volume": _number(volume), "is_synthetic": synthetic}
            for ts, price, cap, volume in points[["ts", "price", "market_cap", "total_volume"]].itertuples(
                index=False)]

    def write() -> int:
        with engine.begin() as conn:
            conn.execute(delete(points_t).where(points_t.c.coingecko_id == fetch.coingecko_id,
                                                points_t.c.ts >= lo, points_t.c.ts <= hi))
            if rows:
                conn.execute(insert(points_t), rows)
            conn.execute(update(blocks_t).where(
                blocks_t.c.coingecko_id == fetch.coingecko_id,
                blocks_t.c.block_start == to_naive_utc(fetch.block_start)).values(
                fetched_to=to_naive_utc(fetch.hi), fetched_at=to_naive_utc(fetched_at), claimed_until=None))
        return len(rows)

    return retry_transient(write, what=f"land {fetch.coingecko_id} block {fetch.block_start:%Y-%m-%d}")


def release(engine: Engine, fetches: Iterable[Fetch]) -> None:
    """Give up claims (a failed fetch), so that another run need not wait for them to expire."""
    for fetch in fetches:
        with engine.begin() as conn:
            conn.execute(update(blocks_t).where(
                blocks_t.c.coingecko_id == fetch.coingecko_id,
                blocks_t.c.block_start == to_naive_utc(fetch.block_start)).values(claimed_until=None))


def count_points(engine: Engine, coin_id: str, lo: datetime, hi: datetime) -> int:
    """How many points of a coin are landed with lo <= ts <= hi."""
    c = points_t.c
    stmt = select(func.count()).where(c.coingecko_id == coin_id, c.ts >= to_naive_utc(lo), c.ts <= to_naive_utc(hi))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def read_points(engine: Engine, coin_id: str, lo: datetime, hi: datetime) -> tuple[pd.DataFrame, bool]:
    """The landed points of a coin with lo <= ts < hi (columns ts (UTC), price, market_cap,
    total_volume), and whether any was synthetic."""
    c = points_t.c
    stmt = select(c.ts, c.price, c.market_cap, c.total_volume, c.is_synthetic).where(
        c.coingecko_id == coin_id, c.ts >= to_naive_utc(lo), c.ts < to_naive_utc(hi)).order_by(c.ts)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).fetchall(),
                             columns=["ts", "price", "market_cap", "total_volume", "is_synthetic"])
    synthetic = bool(frame["is_synthetic"].astype(bool).any()) if len(frame) else False
    frame["ts"] = pd.to_datetime(frame["ts"]).dt.tz_localize("UTC") if len(frame) else \
        pd.Series(dtype="datetime64[ns, UTC]")
    for column in ("price", "market_cap", "total_volume"):
        frame[column] = frame[column].astype("float64")
    return frame.drop(columns="is_synthetic"), synthetic


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
