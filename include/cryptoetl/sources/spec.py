"""What a source *is*, as typed data: ``SourceSpec``, declared once next to its client.

Every external API has one ``SPEC = SourceSpec(...)`` in its module ``sources/<name>.py``. It says
where the API lives and how fast it may be called (per plan), whether it needs a key, the steps
that call it (``SourceStep``: loader, table, DAG; usually one, CoinGecko has two), its Airflow
pool, and its stand-in in the offline sandbox. Everything else
is derived from the registry of specs (``sources/registry.py``), never kept by hand: the settings
each source reads, the environment forwarded to pods, the keys of the Kubernetes Secret, the pools,
the sandbox's routes and the demo's DAG lists. docs/CONTRIBUTING.md shows how to add a source.

A source's settings come from four environment variables named after it (PREFIX = the name,
upper-cased): ``{PREFIX}_API_PLAN`` (one of ``plans``; default the first), ``{PREFIX}_BASE_URL``
(default the plan's host), ``{PREFIX}_RATE_PER_MINUTE`` (default the plan's documented limit) and
``{PREFIX}_API_KEY`` (a secret: from the Kubernetes Secret, never a pod argument). The key is
checked once, when the client is built (``SourceSettings.key``), never at DAG parse time.

This module is a leaf: it imports only ``config``, so DAG parsing can read every spec cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cryptoetl.config import ConfigError, Settings

SETTING_SUFFIXES = ("API_PLAN", "BASE_URL", "RATE_PER_MINUTE", "MONTHLY_CALLS")  # forwarded to pods; the key is not
KEY_SUFFIX = "API_KEY"
DEFAULT_PLAN = "default"  # the plan name of a source that has only one
NEWS_INTRADAY = "The hour that just ended, for fresh sentiment windows: the same rows the daily run writes for it"


@dataclass(frozen=True)
class Plan:
    """One API plan: its host, its documented per-minute call limit, whether it needs a key, its
    monthly call allowance (None: none documented) and how many days back it serves (None: all)."""

    host: str
    rate_per_minute: float
    needs_key: bool = False
    monthly_calls: int | None = None
    history_days: int | None = None


@dataclass(frozen=True)
class Pool:
    """The source's Airflow pool (named after the source). Caps concurrent tasks, not call rate."""

    slots: int
    description: str


@dataclass(frozen=True)
class SourceSettings:
    """A source's settings, resolved from the environment for one process."""

    name: str
    plan: str
    base_url: str
    rate_per_minute: float
    api_key: str | None
    needs_key: bool
    key_use: str = ""
    monthly_calls: int | None = None  # the monthly budget: {PREFIX}_MONTHLY_CALLS, default the plan's

    def __repr__(self) -> str:  # never print the key
        key = "***" if self.api_key else None
        return (f"SourceSettings(name={self.name!r}, plan={self.plan!r}, base_url={self.base_url!r}, "
                f"rate_per_minute={self.rate_per_minute!r}, api_key={key!r})")

    @property
    def key(self) -> str | None:
        """The API key; a ConfigError naming the setting when the plan needs one and none is set."""
        if self.needs_key and not self.api_key:
            why = f" ({self.key_use})" if self.key_use else ""
            plan = f" for {self.name.upper()}_API_PLAN={self.plan}" if self.plan != DEFAULT_PLAN else ""
            raise ConfigError(f"{self.name.upper()}_{KEY_SUFFIX} is not set{plan}{why}: put it in the "
                              "data-collection-secrets Secret, or export it locally")
        return self.api_key



@dataclass(frozen=True)
class SourceStep:
    """A step that calls the source: its name, the loader function ("module:function", imported only
    when the step runs), the table it writes (also its Airflow asset), its DAG and task. A source has
    one or more (``SourceSpec.steps``): they share its API, key, rate and pool; e.g. CoinGecko's
    prices and its universe snapshot."""

    step: str
    run: str
    writes: str
    dag_id: str
    task_id: str
    description: str
    # False for steps that only see the source's current state (RSS items, the universe ranking):
    # their DAG does not catch up and cannot be backfilled; each run stores what the source has now.
    backfillable: bool = True
    profile: str = "io-small"  # key of config.RESOURCE_PROFILES
    options: tuple[tuple[str, str], ...] = ()  # (flag, help) of `python -m cryptoetl run STEP --flag`

    def intraday(self, description: str) -> SourceStep:
        """Its freshness twin: the same loader and table in a DAG ``<dag_id>_hourly`` that runs for the
        hours that just ended, with no catch-up and no backfill (history stays this step's)."""
        return replace(self, step=f"{self.step}_hourly", dag_id=f"{self.dag_id}_hourly",
                       task_id=f"{self.task_id}_hourly", description=description, backfillable=False, options=())


@dataclass(frozen=True)
class SourceSpec:
    """One external API and the steps that call it. See the module docstring."""

    name: str  # also the settings prefix (COINGECKO_*), the pool name and the sandbox's API name
    title: str  # for people: "CoinGecko"
    plans: Mapping[str, Plan]  # the first one is the default
    # The steps that call this source, its main one first (``SourceStep``).
    steps: tuple[SourceStep, ...]
    # The offline sandbox's stand-in: "module:Class" (cryptoetl.sandbox.<module>), the API's base path
    # there, and the settings (a key, a plan) the sandbox accepts. SYNTHETIC data only.
    sandbox: str
    sandbox_path: str
    sandbox_env: Mapping[str, str] = field(default_factory=dict)
    pool: Pool | None = None
    key_use: str = ""  # what the key is for, in the message when it is missing
    # Whether its steps check {PREFIX}_MONTHLY_CALLS before calling (CoinGecko's prices step does);
    # elsewhere the setting is refused rather than silently ignored.
    monthly_budget: bool = False

    def __post_init__(self) -> None:
        if not self.plans:
            raise ValueError(f"source {self.name!r} declares no plan")
        if not self.steps:
            raise ValueError(f"source {self.name!r} declares no step")
        if any(":" not in step.run for step in self.steps) or ":" not in self.sandbox:
            raise ValueError(f"source {self.name!r}: run and sandbox are 'module:attribute' references")

    @property
    def main_step(self) -> str:
        """The name of the source's main step (its first), the default of ``source_dag``."""
        return self.steps[0].step

    @property
    def prefix(self) -> str:
        return self.name.upper()

    def env_name(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"

    @property
    def needs_key(self) -> bool:
        """Whether any plan takes a key (then the key belongs in the Secret)."""
        return any(plan.needs_key for plan in self.plans.values())

    @property
    def pod_env(self) -> tuple[str, ...]:
        """The non-secret settings of this source that pods must share with the scheduler."""
        return tuple(self.env_name(suffix) for suffix in SETTING_SUFFIXES)

    def resolve(self, settings: Settings) -> SourceSettings:
        """This source's settings from ``settings.source_env``; a ConfigError names a bad one."""
        env = settings.source_env

        def get(suffix: str) -> str | None:
            return (env.get(self.env_name(suffix)) or "").strip() or None

        plan_name = (get("API_PLAN") or next(iter(self.plans))).lower()
        if plan_name not in self.plans:
            raise ConfigError(f"{self.env_name('API_PLAN')}={plan_name!r}: use one of {', '.join(self.plans)}")
        plan = self.plans[plan_name]
        raw_rate = get("RATE_PER_MINUTE")
        try:
            rate = float(raw_rate) if raw_rate is not None else plan.rate_per_minute
        except ValueError:
            raise ConfigError(f"{self.env_name('RATE_PER_MINUTE')}={raw_rate!r} is not a number") from None
        if not rate > 0:
            raise ConfigError(f"{self.env_name('RATE_PER_MINUTE')} must be > 0 (got {raw_rate})")
        raw_budget = get("MONTHLY_CALLS")
        if raw_budget is not None and not self.monthly_budget:
            raise ConfigError(f"{self.env_name('MONTHLY_CALLS')} is set, but no {self.title} step checks a monthly "
                              "budget (only COINGECKO_MONTHLY_CALLS is checked): unset it")
        if raw_budget is not None and not (raw_budget.isdigit() and int(raw_budget) > 0):
            raise ConfigError(f"{self.env_name('MONTHLY_CALLS')}={raw_budget!r}: give a whole number of calls > 0")
        return SourceSettings(name=self.name, plan=plan_name, base_url=(get("BASE_URL") or plan.host).rstrip("/"),
                              rate_per_minute=rate, api_key=get(KEY_SUFFIX), needs_key=plan.needs_key,
                              key_use=self.key_use,
                              monthly_calls=int(raw_budget) if raw_budget is not None else plan.monthly_calls)
