"""The step API: what a step is, what it is given, and the errors it raises. A leaf module.

A step is extract -> transform -> load for one data interval: a plain function
``run(ctx: StepContext, interval: Interval) -> int`` (rows written) in ``loaders/``. The CLI, a
Kubernetes pod, a local subprocess and the tests all call the same function; only the launcher
differs. Every step writes through ``replace_interval``: rerunning an interval replaces exactly
its rows in one transaction, and a failure leaves the previous rows in place.

``steps.py`` is the registry of ``Step`` records. This module imports no loader, no source client
and no heavy library, so loaders, the registry and DAG parsing can all import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from cryptoetl import refs
from cryptoetl.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cryptoetl.intervals import Interval
    from cryptoetl.sentiment.model import ModelHandle

C = TypeVar("C")


class SourceDataMissing(RuntimeError):
    """The source returned nothing where the warehouse already holds data: refusing to erase it."""


@dataclass
class StepContext:
    """What a step needs from the outside world. The CLI builds the real one; tests pass fakes.

    ``clients`` holds clients by their class: ``ctx.client(GuardianClient)`` returns the one a test
    injected, else builds it once from the settings (``from_settings``, which checks the key).
    ``models`` holds the sentiment models by role (``cryptobert``, ``finbert``), loaded on first use.
    ``clock`` is the wall clock in seconds since the epoch (a test passes a fixed one).
    ``options`` are the step options given on the command line (``Step.options``).
    ``limiter`` shares each source's call slots with every other process (the CLI gives the
    warehouse's, warehouse/quota.py); clients built here get it.
    """

    settings: Settings
    engine: Engine
    clients: dict[type, Any] = field(default_factory=dict)
    models: dict[str, ModelHandle] = field(default_factory=dict)  # sentiment models by role
    clock: Callable[[], float] = time.time
    options: frozenset[str] = frozenset()
    limiter: Any = None  # a sources.http.CallLimiter (step.py imports no source code)

    def client(self, cls: type[C]) -> C:
        if cls not in self.clients:
            kwargs = {} if self.limiter is None else {"limiter": self.limiter}
            self.clients[cls] = cls.from_settings(self.settings, **kwargs)  # type: ignore[attr-defined]
        return self.clients[cls]


@dataclass(frozen=True)
class StepOption:
    """A command-line flag of one step (``python -m cryptoetl run STEP --NAME``)."""

    name: str
    help: str


@dataclass(frozen=True)
class Step:
    name: str
    run: str  # "module:function", imported when the step runs (keeps loaders out of DAG parsing)
    writes: str  # the table it owns; also the name of the Airflow asset it emits
    profile: str  # key of config.RESOURCE_PROFILES
    task_id: str  # verb first; the pod name is this with hyphens
    dag_id: str
    description: str = ""
    source: str | None = None  # the source spec it loads (sources/<name>.py), None for derived steps
    # Assets (tables) whose events trigger a rebuild (derived steps).
    triggered_by: tuple[str, ...] = ()
    # How far past a changed input interval this step's output changes, in hours: an int, or a
    # "module:attribute" reference to a {input table: hours} mapping defined next to the code
    # that causes it. Downstream runs extend event intervals by this much.
    lookahead: int | str = 0
    pool: str | None = None
    # False for sources that only serve their latest items (RSS): their DAG does not catch up.
    backfillable: bool = True
    # The pod image: "base", or "sentiment" (torch and the models baked in; see the Dockerfile).
    image: str = "base"
    options: tuple[StepOption, ...] = ()

    def lookahead_for(self, table: str | None) -> int:
        """Hours past a changed interval of ``table`` that this step's output changes; per input
        when the lookahead is a mapping (the longest one for an unknown input)."""
        hours: int | Mapping[str, int] = refs.resolve(self.lookahead) if isinstance(self.lookahead, str) \
            else self.lookahead
        if isinstance(hours, int):
            return hours
        if table in hours:
            return hours[table]
        return max(hours.values())

    def execute(self, ctx: StepContext, interval: Interval) -> int:
        """Run the step over one interval; the rows written."""
        return refs.resolve(self.run)(ctx, interval)
