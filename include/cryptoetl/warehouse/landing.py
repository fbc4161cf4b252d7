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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.engine import to_naive_utc
from cryptoetl.warehouse.retry import retry_transient
from cryptoetl.warehouse.writes import insert_if_absent

points_t, blocks_t = schema.coingecko_chart_points, schema.coingecko_chart_blocks
# a block landed up to T is extended by a call from T - 1 h (widened to CoinGecko's 2-day minimum when
# T is recent: the hourly runs' case)
TAIL_OVERLAP = timedelta(hours=1)


@dataclass(frozen=True)
class Fetch:
    """One block of one coin to fetch: the call asks for [lo, hi] (whole seconds); the run needs the
    block landed over [need_lo, need_hi]."""

    coingecko_id: str
    block_start: datetime
    lo: datetime
    hi: datetime
    need_lo: datetime
    need_hi: datetime


def coverage(engine: Engine, coin_ids: Sequence[str], block_starts: Sequence[datetime]) -> dict:
    """{(coingecko_id, block_start): (fetched_from, fetched_to)} of the landed blocks (naive UTC)."""
    if not coin_ids or not block_starts:
        return {}
    c = blocks_t.c
    stmt = select(c.coingecko_id, c.block_start, c.fetched_from, c.fetched_to).where(
        c.coingecko_id.in_(list(coin_ids)), c.block_start.in_([to_naive_utc(b) for b in block_starts]))
    with engine.connect() as conn:
        return {(cid, start): (lo, hi) for cid, start, lo, hi in conn.execute(stmt) if hi is not None}


def _key(fetch: Fetch):
    """The WHERE clause of a fetch's row in ``coingecko_chart_blocks``."""
    c = blocks_t.c
    return and_(c.coingecko_id == fetch.coingecko_id, c.block_start == to_naive_utc(fetch.block_start))


def _seconds(ts: datetime) -> datetime:
    return ts.replace(microsecond=0)


def missing(engine: Engine, coin_ids: Sequence[str], blocks: Sequence[datetime], span: timedelta, *,
            need: tuple[datetime, datetime], fetch: tuple[datetime, datetime], refetch: bool = False) -> list[Fetch]:
    """The block fetches that the points in ``need`` (lo, hi) need: every block not landed over its
    part of it (all of them with ``refetch``), each to be fetched over its part of ``fetch`` (the
    plan's oldest reachable time, and usually now: so that later runs of the block find it landed)."""
    done = {} if refetch else coverage(engine, coin_ids, blocks)
    todo = []
    for coin_id in coin_ids:
        for start in blocks:
            end = start + span
            need_lo, need_hi = max(start, need[0]), min(end, need[1])
            have = done.get((coin_id, to_naive_utc(start)))
            if have is not None and have[0] <= to_naive_utc(need_lo) and have[1] >= to_naive_utc(need_hi):
                continue
            lo = max(start, fetch[0])
            if have is not None and have[0] <= to_naive_utc(need_lo):  # only its end is missing: ask for that
                lo = max(lo, have[1].replace(tzinfo=start.tzinfo) - TAIL_OVERLAP)
            todo.append(Fetch(coin_id, start, _seconds(lo), _seconds(min(end, fetch[1])), need_lo, need_hi))
    return todo


def claim(engine: Engine, fetch: Fetch, now: datetime, ttl: timedelta, *, refetch: bool = False) -> str:
    """Try to take ``fetch``: "claimed" (fetch it, then ``land``), "done" (another run landed what
    this one needs meanwhile) or "busy" (another run is fetching it: wait and ask again)."""
    c, key = blocks_t.c, _key(fetch)
    naive_now, until = to_naive_utc(now), to_naive_utc(now + ttl)
    need_lo, need_hi = to_naive_utc(fetch.need_lo), to_naive_utc(fetch.need_hi)

    def attempt() -> str:
        with engine.begin() as conn:
            free = or_(c.claimed_until.is_(None), c.claimed_until <= naive_now)
            undone = True if refetch else or_(c.fetched_to.is_(None), c.fetched_to < need_hi, c.fetched_from > need_lo)
            if conn.execute(update(blocks_t).where(key, free, undone).values(claimed_until=until)).rowcount:
                return "claimed"
            row = conn.execute(select(c.fetched_from, c.fetched_to).where(key)).first()
        if row is None:  # never seen: insert it unclaimed (in its own transaction), then claim it
            insert_if_absent(engine, blocks_t, {"coingecko_id": fetch.coingecko_id,
                                                "block_start": to_naive_utc(fetch.block_start)})
            return attempt()
        if not refetch and row.fetched_to is not None and row.fetched_to >= need_hi and row.fetched_from <= need_lo:
            return "done"
        return "busy"

    return retry_transient(attempt, what=f"claim {fetch.coingecko_id} block {fetch.block_start:%Y-%m-%d}")


def land(engine: Engine, fetch: Fetch, points: pd.DataFrame, *, synthetic: bool, fetched_at: datetime,
         covered: tuple[datetime, datetime]) -> int:
    """Store one fetched block in one transaction and release it. The answer's points (those in
    ``covered``, the range the call asked for) replace the landed points with the same timestamps;
    landed points the answer lacks are kept (a later answer missing a span never erases it). The
    block is then landed over ``covered``, joined to what was landed before when the two touch."""
    lo, hi = (to_naive_utc(t) for t in covered)
    points = points[(points["ts"] >= pd.Timestamp(covered[0])) & (points["ts"] <= pd.Timestamp(covered[1]))]
    rows = [{"coingecko_id": fetch.coingecko_id, "ts": to_naive_utc(ts), "price": float(price),
             "market_cap": _number(cap), "total_volume": _number(volume), "is_synthetic": synthetic}
            for ts, price, cap, volume in points[["ts", "price", "market_cap", "total_volume"]].itertuples(
                index=False)]
    c, key = blocks_t.c, _key(fetch)

    def write() -> int:
        with engine.begin() as conn:
            for i in range(0, len(rows), 500):
                conn.execute(delete(points_t).where(points_t.c.coingecko_id == fetch.coingecko_id,
                                                    points_t.c.ts.in_([r["ts"] for r in rows[i:i + 500]])))
            if rows:
                conn.execute(insert(points_t), rows)
            before = conn.execute(select(c.fetched_from, c.fetched_to).where(key)).first()
            joined = before is not None and before.fetched_to is not None and before.fetched_to >= lo \
                and before.fetched_from <= hi
            conn.execute(update(blocks_t).where(key).values(
                fetched_from=min(before.fetched_from, lo) if joined else lo,
                fetched_to=max(before.fetched_to, hi) if joined else hi,
                fetched_at=to_naive_utc(fetched_at), claimed_until=None))
        return len(rows)

    return retry_transient(write, what=f"land {fetch.coingecko_id} block {fetch.block_start:%Y-%m-%d}")


def release(engine: Engine, fetch: Fetch) -> None:
    """Give up a claim (a failed fetch), so that another run need not wait for it to expire."""
    def write() -> None:
        with engine.begin() as conn:
            conn.execute(update(blocks_t).where(_key(fetch)).values(claimed_until=None))

    retry_transient(write, what=f"release {fetch.coingecko_id} block {fetch.block_start:%Y-%m-%d}")


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
