"""The thresholds of the quality gate and the health check, per table.

The packaged ``quality.json`` holds every default, with the README's table explaining each.
``CRYPTOETL_QUALITY_FILE`` names a JSON file of the same shape: each table's keys it gives replace the
packaged ones, the rest stay. An unknown table or key is refused, so a typo cannot switch a check off.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from cryptoetl.config import ConfigError

PACKAGED = Path(__file__).resolve().parents[1] / "quality.json"


def _read(path: str | Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CRYPTOETL_QUALITY_FILE: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"CRYPTOETL_QUALITY_FILE: {path} must hold a JSON object of tables")
    return {table: limits for table, limits in data.items() if not table.startswith("_")}


@cache
def _limits(path: str | None) -> dict[str, dict[str, Any]]:
    limits = _read(PACKAGED)
    if path is None:
        return limits
    for table, given in _read(path).items():
        if table not in limits:
            raise ConfigError(f"CRYPTOETL_QUALITY_FILE: unknown table {table!r}; known: {', '.join(limits)}")
        if not isinstance(given, dict) or (unknown := set(given) - set(limits[table])):
            raise ConfigError(f"CRYPTOETL_QUALITY_FILE: {table}: unknown keys {sorted(unknown or given)}; "
                              f"known: {', '.join(limits[table])}")
        limits[table] = {**limits[table], **given}
    return limits


def limits_for(table: str, quality_file: str | None = None) -> dict[str, Any]:
    """The thresholds of ``table`` (an empty dict for a table without any)."""
    return dict(_limits(quality_file).get(table, {}))


def tables(quality_file: str | None = None) -> dict[str, dict[str, Any]]:
    """Every table's thresholds."""
    return {table: dict(limits) for table, limits in _limits(quality_file).items()}
