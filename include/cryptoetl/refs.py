"""``"module:attribute"`` references: how specs name code that is imported only when it is used.

Steps name their function this way, sources their sandbox class, so that reading the registries at
DAG parse time imports no loader, client library or sandbox.
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(ref: str) -> Any:
    """The object ``ref`` names, imported now."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{ref!r} is not a 'module:attribute' reference")
    return getattr(importlib.import_module(module), attr)
