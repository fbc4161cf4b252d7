"""The registry of sources: every module of this package that defines ``SPEC``.

Nothing lists the sources by hand. Adding ``sources/<name>.py`` with a ``SPEC`` registers it, and
every list derived from the specs picks it up: the step registry, pod environment, Secret keys,
pools, sandbox routes and the demo's DAGs. ``registered(spec)`` adds one for a test.

Source modules keep their heavy imports (pandas, fredapi) inside the functions that use them, so
that reading the registry at DAG parse time stays cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from cryptoetl.config import ConfigError, Settings
from cryptoetl.sources.spec import SourceSettings, SourceSpec

_EXTRA: list[SourceSpec] = []


@cache
def _discovered() -> tuple[SourceSpec, ...]:
    import cryptoetl.sources as package

    specs = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        spec = getattr(importlib.import_module(f"{package.__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, SourceSpec):
            specs.append(spec)
    return tuple(specs)


def sources() -> tuple[SourceSpec, ...]:
    """Every registered source, in a stable order."""
    specs = (*_discovered(), *_EXTRA)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"two sources share a name: {sorted(n for n in names if names.count(n) > 1)}")
    return specs


def get(name: str) -> SourceSpec:
    for spec in sources():
        if spec.name == name:
            return spec
    raise ConfigError(f"unknown source {name!r}; known: {', '.join(s.name for s in sources())}")


def source_settings(settings: Settings, name: str) -> SourceSettings:
    return get(name).resolve(settings)


def check_settings(settings: Settings) -> None:
    """Resolve every source's settings once, so a bad one fails early with its name."""
    for spec in sources():
        spec.resolve(settings)


def pools() -> dict[str, dict]:
    """The Airflow pools, as ``airflow pools import`` reads them (include/pools.json is this)."""
    return {spec.name: {"slots": spec.pool.slots, "description": spec.pool.description, "include_deferred": False}
            for spec in sources() if spec.pool is not None}


def sandbox_env() -> dict[str, str]:
    """The keys (and plans) the offline sandbox accepts, from each source's spec. SYNTHETIC only."""
    return {name: value for spec in sources() for name, value in spec.sandbox_env.items()}


def sandbox_urls(root: str) -> dict[str, str]:
    """Each source's base URL on a sandbox served at ``root`` (what its ``*_BASE_URL`` points at)."""
    return {spec.name: root.rstrip("/") + spec.sandbox_path for spec in sources()}


@contextmanager
def registered(spec: SourceSpec) -> Iterator[SourceSpec]:
    """Register ``spec`` for the duration of the block (tests, plugins)."""
    _EXTRA.append(spec)
    try:
        yield spec
    finally:
        _EXTRA.remove(spec)
