"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def settings_for(engine, sandbox=None, **overrides):
    """Settings pointing at ``engine`` and, when given, the sandbox; no real waiting."""
    from dataclasses import replace

    from cryptoetl.config import UNIVERSE, Settings

    base = Settings(
        warehouse_url=engine.url.render_as_string(hide_password=False),
        symbols=UNIVERSE[:3],
        coingecko_base_url_override=sandbox.base_url if sandbox else None,
        coingecko_rate_per_minute_override=60_000,
        http_timeout_seconds=2.0,
    )
    return replace(base, **overrides)


def dump(engine, table) -> list[tuple]:
    """Every row of ``table`` in primary-key order, for exact comparisons."""
    from sqlalchemy import select

    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]

