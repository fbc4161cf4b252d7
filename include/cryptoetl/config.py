"""Settings for every cryptoetl process: the DAG processor, the scheduler's workers and the pods.

All settings come from environment variables, read once into a frozen, validated
``Settings``. Reading the environment is cheap and safe at DAG-parse time, unlike
``Variable.get`` or connection look-ups, which would hit the metadata DB on every parse.
In Kubernetes the same variables come from the pod spec and the ``data-collection-secrets``
Secret; locally they come from the shell (the Makefile exports the demo defaults).

Secrets (API keys, the warehouse URL) are read here but never logged: ``Settings.__repr__``
hides them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from cryptoetl import __version__, universe
from cryptoetl.universe import Coin

Mode = Literal["local", "kubernetes"]


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the environment variable."""


# The default universe: the packaged universe.csv (10 coins). CRYPTOETL_UNIVERSE chooses another
# file or the top N by market cap (universe.py); CRYPTOETL_SYMBOLS=BTC,ETH selects keys of a file's coins.
UNIVERSE: tuple[Coin, ...] = universe.DEFAULT_COINS


@dataclass(frozen=True)
class ResourceProfile:
    """Kubernetes requests/limits for one step's pod. CPU limit is deliberately unset:
    CPU throttling only slows batch work down, while a memory limit protects the node."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None


# Named profiles; every step names one (steps.py, sources/*.py SPEC). Sized from measured peak RSS
# (make bench-pipeline, 320 coins, one daily interval per task): every source step and technical 143
# MiB, ml_features 190 MiB, sentiment 422 MiB with the tiny demo models (+~880 MB for the real
# ones); a full 3.5M-row technical backfill in one interval ~275 MB (make bench).
RESOURCE_PROFILES: dict[str, ResourceProfile] = {
    "io-small": ResourceProfile(cpu_request="100m", memory_request="256Mi", memory_limit="512Mi"),
    "compute-medium": ResourceProfile(cpu_request="500m", memory_request="512Mi", memory_limit="1Gi"),
    # News sentiment: two BERT-base classifiers (~440 MB fp32 each, both resident) + activations
    # of a 32-article batch; 2 CPUs requested, and the step sizes its torch threads to them.
    "sentiment": ResourceProfile(cpu_request="2", memory_request="2Gi", memory_limit="3Gi"),
}


# RSS feeds (name -> URL). Override with CRYPTOETL_RSS_FEEDS="name=url,name=url"; with
# RSS_BASE_URL set (the sandbox), each feed is read from {RSS_BASE_URL}/{name}.xml instead.
DEFAULT_RSS_FEEDS: tuple[tuple[str, str], ...] = (
    ("coindesk", "https://www.coindesk.com/arc/outboundfeeds/rss/"),
    ("cointelegraph", "https://cointelegraph.com/rss"),
)


# -- how each environment variable becomes a setting -----------------------------------------------

def _text(raw: str, name: str) -> str:
    return raw


def _integer(low: int, high: int | None = None) -> Callable[[str, str], int]:
    def parse(raw: str, name: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            raise ConfigError(f"{name}={value} is outside [{low}, {high if high is not None else '...'}]")
        return value

    return parse


def _positive_number(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{name} must be > 0 (got {raw})")
    return value


def _flag(raw: str, name: str) -> bool:
    if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}={raw!r}: use 1 or 0")
    return raw.lower() in ("1", "true", "yes")


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw

    return parse


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable: the field it sets, how it is parsed, and whether task pods get it.

    ``pod``: a non-secret setting that pods must share with the scheduler's view of the world
    (forwarded by the pod factory when set). Secrets, pod placement and local-only settings are not.
    """

    env: str
    attr: str
    parse: Callable[[str, str], Any] = _text
    pod: bool = False


@dataclass(frozen=True)
class SentimentSettings:
    """The news-sentiment step (loaders/sentiment.py, docs/SENTIMENT.md). Models are never
    downloaded at run time: a local directory (``*_path``), else the Hugging Face cache."""

    cryptobert_model_id: str = "ElKulako/cryptobert"  # stored as model_id
    cryptobert_path: str | None = None  # a save_pretrained / snapshot dir (belongs to the image)
    cryptobert_max_length: int = 128  # its trained length
    finbert_model_id: str = "ProsusAI/finbert"
    finbert_path: str | None = None
    finbert_max_length: int = 256  # model limit 512
    batch_size: int = 32
    # None (auto): the precision gate decides at load time (sentiment/precision.py); True: dynamic int8
    # Linear layers; False: fp32. Scores made in int8 are stored under revision "<rev>+int8".
    int8: bool | None = None
    rescore: bool = False  # score again articles already scored (also `run sentiment --rescore`)
    torch_threads: int | None = None  # default: the pod's CPUs

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SentimentSettings:
        return cls(**_read(SENTIMENT_ENV, env))


def _flag_or_auto(raw: str, name: str) -> bool | None:
    if raw.lower() == "auto":
        return None
    if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}={raw!r}: use auto, 1 or 0")
    return _flag(raw, name)


SENTIMENT_ENV: tuple[EnvSetting, ...] = (
    EnvSetting("CRYPTOETL_CRYPTOBERT_MODEL_ID", "cryptobert_model_id", pod=True),
    EnvSetting("CRYPTOETL_CRYPTOBERT_PATH", "cryptobert_path"),
    EnvSetting("CRYPTOETL_CRYPTOBERT_MAX_LENGTH", "cryptobert_max_length", _integer(8, 512), pod=True),
    EnvSetting("CRYPTOETL_FINBERT_MODEL_ID", "finbert_model_id", pod=True),
    EnvSetting("CRYPTOETL_FINBERT_PATH", "finbert_path"),
    EnvSetting("CRYPTOETL_FINBERT_MAX_LENGTH", "finbert_max_length", _integer(8, 512), pod=True),
    EnvSetting("CRYPTOETL_SENTIMENT_BATCH_SIZE", "batch_size", _integer(1, 1024), pod=True),
    EnvSetting("CRYPTOETL_SENTIMENT_INT8", "int8", _flag_or_auto, pod=True),  # auto (default), 1 or 0
    EnvSetting("CRYPTOETL_SENTIMENT_RESCORE", "rescore", _flag),
    EnvSetting("CRYPTOETL_TORCH_THREADS", "torch_threads", _integer(1, 256), pod=True),
)

# A source's own settings: {PREFIX}_API_PLAN, _BASE_URL, _RATE_PER_MINUTE, _MONTHLY_CALLS, _API_KEY (see
# sources/spec.py). Settings keeps them raw; each source's spec resolves and validates its own.
SOURCE_ENV = re.compile(r"^[A-Z][A-Z0-9_]*_(API_PLAN|BASE_URL|RATE_PER_MINUTE|MONTHLY_CALLS|API_KEY)$")


def is_secret_setting(name: str) -> bool:
    """A source's API key: kept out of logs and pod arguments (pods get it from the Secret)."""
    return name.endswith("_API_KEY")


# The project image's repository; its default tag is the release version (cryptoetl.__version__).
IMAGE_REPOSITORY = "ghcr.io/cryptoetl/cryptoetl"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"


@dataclass(frozen=True)
class Settings:
    mode: Mode = "local"
    # Warehouse: an Airflow connection id, or an explicit SQLAlchemy URL that overrides it.
    warehouse_conn_id: str = "cryptoetl_warehouse"
    warehouse_url: str | None = None
    # The coins of a universe file (CRYPTOETL_UNIVERSE, default the packaged one), after
    # CRYPTOETL_SYMBOLS; empty with top:N, whose coins the steps read from the warehouse.
    symbols: tuple[Coin, ...] = UNIVERSE
    universe_top: int | None = None  # CRYPTOETL_UNIVERSE=top:N
    universe_retain_days: int = 30  # a coin out of the top N this long is no longer loaded
    start_date: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    http_timeout_seconds: float = 30.0
    # Technical indicators: hourly bars read before each interval so that recursive
    # indicators (EMA, RSI, MACD) converge to the same value whatever the chunking.
    warmup_hours: int = 720
    # Kubernetes pods
    image: str = DEFAULT_IMAGE
    # The sentiment step's image: the base image + torch models baked in (Dockerfile target
    # `sentiment`). Default: "<image repository>-sentiment:<same tag>".
    sentiment_image: str | None = None
    namespace: str = "cryptoetl"
    service_account: str = "cryptoetl-pods"
    secret_name: str = "data-collection-secrets"
    node_selector: Mapping[str, str] = field(default_factory=lambda: {"node-type": "data-collection"})
    startup_timeout_seconds: int = 600
    retry_delay_seconds: float = 120.0  # first retry delay of every task (exponential backoff after it)
    # Local mode: the interpreter that runs `python -m cryptoetl`; default: the worker's own.
    python: str | None = None
    # Per-source settings, raw ({PREFIX}_API_KEY etc.); resolved by each source's spec.
    source_env: Mapping[str, str] = field(default_factory=dict)
    rss_feeds: tuple[tuple[str, str], ...] = DEFAULT_RSS_FEEDS
    macro_series_file: str | None = None  # JSON file of FRED series
    # Data health (quality/): the thresholds file (default the packaged quality.json), how many days
    # the data_health DAG scans, how many daily intervals one of its runs may backfill (0: report
    # only), and Airflow's REST API with the credentials of the account it creates backfills as.
    quality_file: str | None = None
    health_days: int = 7
    heal_max_intervals: int = 7
    heal_backoff_minutes: int = 60  # the wait before a hole's second backfill; it doubles after each
    airflow_api_url: str | None = None  # http://user:password@host:port: a secret (the Secret's key)
    sentiment: SentimentSettings = field(default_factory=SentimentSettings)

    def __repr__(self) -> str:  # never print secrets, e.g. in task logs
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("warehouse_url", "airflow_api_url") and value:
                value = "***"
            elif f.name == "source_env":
                value = {k: ("***" if is_secret_setting(k) else v) for k, v in value.items()}
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    @property
    def api_keys(self) -> tuple[str, ...]:
        """The API keys among the source settings (secrets: never logged, never a pod argument)."""
        return tuple(value for name, value in self.source_env.items() if is_secret_setting(name))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        kwargs = _read(SETTINGS_ENV, env)
        kwargs.update(_universe(kwargs.pop("universe", ""), kwargs.pop("symbols", ())))
        kwargs["source_env"] = {k: v.strip() for k, v in env.items() if SOURCE_ENV.match(k) and v.strip()}
        kwargs["sentiment"] = SentimentSettings.from_env(env)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def image_for(self, kind: str) -> str:
        """The pod image of a step: ``base`` (every step) or ``sentiment`` (torch + models)."""
        if kind == "base":
            return self.image
        if kind == "sentiment":
            if self.sentiment_image:
                return self.sentiment_image
            repository, _, tag = self.image.rpartition(":")
            return f"{repository}-sentiment:{tag}"
        raise ConfigError(f"unknown image kind {kind!r}")

    def validate(self) -> None:
        # API-key presence is checked when a client is built, never here: a missing key must not
        # break DAG parsing.
        for name, image in (("CRYPTOETL_IMAGE", self.image), ("CRYPTOETL_SENTIMENT_IMAGE", self.sentiment_image)):
            if image is not None and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                raise ConfigError(
                    f"{name}={image!r} must carry a pinned tag (not ':latest'): "
                    "a backfill must run the same code as the scheduled run did"
                )
        if self.warmup_hours < 0:
            raise ConfigError("CRYPTOETL_WARMUP_HOURS must be >= 0")
        if not self.symbols and self.universe_top is None:
            raise ConfigError("CRYPTOETL_SYMBOLS selects no symbol")


def _read(table: tuple[EnvSetting, ...], env: Mapping[str, str]) -> dict[str, Any]:
    """The fields set in ``env``, parsed; an empty variable counts as unset."""
    kwargs: dict[str, Any] = {}
    for setting in table:
        raw = (env.get(setting.env) or "").strip()
        if raw:
            kwargs[setting.attr] = setting.parse(raw, setting.env)
    return kwargs


# The local stack's ports (make run / make ui / the sandbox command), as offsets from one setting,
# CRYPTOETL_PORT_BASE, so that two checkouts run side by side.
PORT_OFFSETS = {"api": 0, "sandbox": 1, "worker_log": 2, "trigger_log": 3, "scheduler_health": 4}


def local_ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every local port, from ``CRYPTOETL_PORT_BASE`` (default 8080)."""
    env = os.environ if env is None else env
    raw = (env.get("CRYPTOETL_PORT_BASE") or "8080").strip()
    highest = 65535 - max(PORT_OFFSETS.values())
    if not raw.isdigit() or not 1024 <= int(raw) <= highest:
        raise ConfigError(f"CRYPTOETL_PORT_BASE={raw!r}: use a port number from 1024 to {highest}")
    return {name: int(raw) + offset for name, offset in PORT_OFFSETS.items()}


def pod_env_names() -> tuple[str, ...]:
    """Generic (non-source) settings forwarded to task pods; the pod factory adds each source's."""
    return tuple(s.env for s in (*SETTINGS_ENV, *SENTIMENT_ENV) if s.pod)


def _parse_feeds(raw: str) -> tuple[tuple[str, str], ...]:
    feeds = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConfigError(f"CRYPTOETL_RSS_FEEDS: {item!r} is not name=http(s)://url")
        feeds.append((name.strip(), url.strip()))
    if not feeds:
        raise ConfigError("CRYPTOETL_RSS_FEEDS names no feed")
    return tuple(feeds)


def _universe(raw: str, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The universe fields from CRYPTOETL_UNIVERSE (a file, or top:N) and CRYPTOETL_SYMBOLS (keys of
    the file's coins to keep)."""
    try:
        top = universe.parse_top(raw)
        coins = UNIVERSE if top is not None or not raw else universe.read_file(raw)
    except universe.UniverseError as exc:
        raise ConfigError(f"CRYPTOETL_UNIVERSE: {exc}") from None
    if top is not None:
        if wanted:
            raise ConfigError("CRYPTOETL_SYMBOLS selects coins of a universe file; with "
                              f"CRYPTOETL_UNIVERSE={raw} the top {top} coins are loaded")
        return {"universe_top": top, "symbols": ()}
    try:
        return {"symbols": universe.select(coins, wanted) if wanted else coins}
    except universe.UniverseError as exc:
        raise ConfigError(f"CRYPTOETL_SYMBOLS: {exc}") from None


def _key_list(raw: str, _name: str) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in raw.split(",") if s.strip())


def parse_utc(value: str, what: str = "timestamp") -> datetime:
    """Parse an ISO-8601 date or timestamp as an aware UTC datetime; naive input means UTC.

    Rejects anything else with a message that names ``what`` (a CLI flag or setting).
    """
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigError(f"{what}: {value!r} is not an ISO-8601 date or timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# Every generic setting, in one place: README's configuration table documents these.
SETTINGS_ENV: tuple[EnvSetting, ...] = (
    EnvSetting("CRYPTOETL_MODE", "mode", _choice("local", "kubernetes")),
    EnvSetting("CRYPTOETL_WAREHOUSE_CONN_ID", "warehouse_conn_id", pod=True),
    EnvSetting("CRYPTOETL_WAREHOUSE_URL", "warehouse_url"),  # a secret: pods get it from the Secret
    EnvSetting("CRYPTOETL_UNIVERSE", "universe", pod=True),
    EnvSetting("CRYPTOETL_SYMBOLS", "symbols", _key_list, pod=True),
    EnvSetting("CRYPTOETL_UNIVERSE_RETAIN_DAYS", "universe_retain_days", _integer(0, 3650), pod=True),
    EnvSetting("CRYPTOETL_START_DATE", "start_date", parse_utc),
    EnvSetting("CRYPTOETL_HTTP_TIMEOUT", "http_timeout_seconds", _positive_number, pod=True),
    EnvSetting("CRYPTOETL_WARMUP_HOURS", "warmup_hours", _integer(0), pod=True),
    EnvSetting("CRYPTOETL_IMAGE", "image"),
    EnvSetting("CRYPTOETL_SENTIMENT_IMAGE", "sentiment_image"),
    EnvSetting("CRYPTOETL_NAMESPACE", "namespace"),
    EnvSetting("CRYPTOETL_SERVICE_ACCOUNT", "service_account"),
    EnvSetting("CRYPTOETL_SECRET_NAME", "secret_name"),
    EnvSetting("CRYPTOETL_STARTUP_TIMEOUT", "startup_timeout_seconds", _integer(1)),
    EnvSetting("CRYPTOETL_RETRY_DELAY", "retry_delay_seconds", _positive_number),
    EnvSetting("CRYPTOETL_PYTHON", "python"),
    EnvSetting("CRYPTOETL_MACRO_SERIES", "macro_series_file", pod=True),
    EnvSetting("CRYPTOETL_RSS_FEEDS", "rss_feeds", lambda raw, _name: _parse_feeds(raw), pod=True),
    EnvSetting("CRYPTOETL_QUALITY_FILE", "quality_file", pod=True),
    EnvSetting("CRYPTOETL_HEALTH_DAYS", "health_days", _integer(1, 366), pod=True),
    EnvSetting("CRYPTOETL_HEAL_MAX_INTERVALS", "heal_max_intervals", _integer(0, 1000), pod=True),
    EnvSetting("CRYPTOETL_HEAL_BACKOFF_MINUTES", "heal_backoff_minutes", _integer(1, 10080), pod=True),
    EnvSetting("CRYPTOETL_AIRFLOW_API_URL", "airflow_api_url"),  # a secret: pods get it from the Secret
)
