"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def settings_for(engine, sandbox=None, source_env=None, **overrides):
    """Settings pointing at ``engine`` and, when given, CoinGecko at the sandbox; no real waiting.
    ``source_env``: more per-source settings ({PREFIX}_API_KEY, _BASE_URL, ...)."""
    from dataclasses import replace

    from cryptoetl.config import UNIVERSE, Settings

    env = {"COINGECKO_RATE_PER_MINUTE": "60000"}
    if sandbox:
        env["COINGECKO_BASE_URL"] = sandbox.base_url
    base = Settings(
        warehouse_url=engine.url.render_as_string(hide_password=False),
        symbols=UNIVERSE[:3],
        source_env={**env, **(source_env or {})},
        http_timeout_seconds=2.0,
    )
    return replace(base, **overrides)


def dump(engine, table) -> list[tuple]:
    """Every row of ``table`` in primary-key order, for exact comparisons."""
    from sqlalchemy import select

    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]



def render_pod(task, interval) -> dict:
    """The pod a Kubernetes-mode task would create for ``interval``, as the API server receives it."""
    from kubernetes.client import ApiClient

    task.set_intervals([interval])
    pod = task.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)
