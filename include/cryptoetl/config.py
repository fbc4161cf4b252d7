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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Literal

from cryptoetl import __version__

Mode = Literal["local", "kubernetes"]
CoinGeckoPlan = Literal["public", "demo", "pro"]


class ConfigError(ValueError):
    """A setting is missing or malformed. The message names the environment variable."""


@dataclass(frozen=True)
class Coin:
    symbol: str  # ticker, the warehouse key: "BTC"
    coingecko_id: str  # CoinGecko's id for /coins/{id}/...: "bitcoin"
    name: str  # display name, also used to tag news mentions later: "Bitcoin"


# The symbol universe. Order is irrelevant; symbol is the primary key everywhere.
# Select a subset with CRYPTOETL_SYMBOLS=BTC,ETH (unknown tickers are an error, not ignored).
UNIVERSE: tuple[Coin, ...] = (
    Coin("BTC", "bitcoin", "Bitcoin"),
    Coin("ETH", "ethereum", "Ethereum"),
    Coin("SOL", "solana", "Solana"),
    Coin("BNB", "binancecoin", "BNB"),
    Coin("XRP", "ripple", "XRP"),
    Coin("ADA", "cardano", "Cardano"),
    Coin("DOGE", "dogecoin", "Dogecoin"),
    Coin("AVAX", "avalanche-2", "Avalanche"),
    Coin("DOT", "polkadot", "Polkadot"),
    Coin("LINK", "chainlink", "Chainlink"),
)


@dataclass(frozen=True)
class ResourceProfile:
    """Kubernetes requests/limits for one step's pod. CPU limit is deliberately unset:
    CPU throttling only slows batch work down, while a memory limit protects the node."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None


# Named profiles; every step names one (see steps.STEPS). Sized from measured peak RSS
# of a 90-day single-interval run of each step with 10 symbols, with 2x headroom.
RESOURCE_PROFILES: dict[str, ResourceProfile] = {
    "io-small": ResourceProfile(cpu_request="100m", memory_request="256Mi", memory_limit="512Mi"),
    "compute-medium": ResourceProfile(cpu_request="500m", memory_request="512Mi", memory_limit="1Gi"),
    "compute-large": ResourceProfile(cpu_request="1", memory_request="1Gi", memory_limit="2Gi"),
    # News sentiment: two BERT-base classifiers (~440 MB fp32 each, both resident) + activations
    # of a 32-article batch; 2 CPUs requested, and the step sizes its torch threads to them.
    "sentiment": ResourceProfile(cpu_request="2", memory_request="2Gi", memory_limit="3Gi"),
}

COINGECKO_HOSTS: dict[str, str] = {
    "public": "https://api.coingecko.com/api/v3",
    "demo": "https://api.coingecko.com/api/v3",
    "pro": "https://pro-api.coingecko.com/api/v3",
}
# Documented per-minute limits by plan; the client spaces requests to stay under them.
COINGECKO_RATE_PER_MINUTE: dict[str, int] = {"public": 5, "demo": 30, "pro": 500}

_SECRET_FIELDS = {"coingecko_api_key", "warehouse_url"}


@dataclass(frozen=True)
class SourceSettings:
    """Connection settings of one external API, from ``{PREFIX}_API_KEY``, ``{PREFIX}_BASE_URL``,
    ``{PREFIX}_RATE_PER_MINUTE`` and ``{PREFIX}_API_PLAN`` (PREFIX = the name, upper-cased)."""

    name: str
    base_url: str
    rate_per_minute: float
    api_key: str | None = None
    plan: str | None = None

    def __repr__(self) -> str:  # never print the key
        key = "***" if self.api_key else None
        return (f"SourceSettings(name={self.name!r}, base_url={self.base_url!r}, "
                f"rate_per_minute={self.rate_per_minute!r}, api_key={key!r}, plan={self.plan!r})")

    @property
    def env_prefix(self) -> str:
        return self.name.upper()

    def require_key(self, why: str = "") -> str:
        """The API key, or a ConfigError that names the setting. Called when a step runs,
        never at parse time."""
        if not self.api_key:
            raise ConfigError(f"{self.env_prefix}_API_KEY is not set{': ' + why if why else ''} "
                              f"(put it in the data-collection-secrets Secret, or export it locally)")
        return self.api_key


# Every non-CoinGecko source: production host, documented rate limit (calls per minute) and
# default plan. Documented limits: FRED 120/min; blockchain.info asks for no more than one
# call per 10 s on charts; Etherscan free tier 3/s (180/min); Guardian developer key 1/s
# (and 500/day); CryptoPanic developer plan ~2/s. RSS feeds are polled, not rate-limited.
SOURCE_DEFAULTS: dict[str, tuple[str, float, str | None]] = {
    "fred": ("https://api.stlouisfed.org/fred", 120, None),
    "blockchain_info": ("https://api.blockchain.info", 6, None),
    "etherscan": ("https://api.etherscan.io/v2/api", 180, "free"),
    "guardian": ("https://content.guardianapis.com", 60, None),
    "cryptopanic": ("https://cryptopanic.com/api/developer/v2", 60, None),
    "rss": ("", 60, None),
}

# RSS feeds (name -> URL). Override with CRYPTOETL_RSS_FEEDS="name=url,name=url"; with
# RSS_BASE_URL set (the sandbox), each feed is read from {RSS_BASE_URL}/{name}.xml instead.
DEFAULT_RSS_FEEDS: tuple[tuple[str, str], ...] = (
    ("coindesk", "https://www.coindesk.com/arc/outboundfeeds/rss/"),
    ("cointelegraph", "https://cointelegraph.com/rss"),
)


@dataclass(frozen=True)
class SentimentSettings:
    """The news-sentiment step (loaders/sentiment.py, docs/SENTIMENT.md). Models are never
    downloaded at run time: a local directory (``*_path``), else the Hugging Face cache."""

    cryptobert_model_id: str = "ElKulako/cryptobert"  # CRYPTOETL_CRYPTOBERT_MODEL_ID, stored as model_id
    cryptobert_path: str | None = None  # CRYPTOETL_CRYPTOBERT_PATH: a save_pretrained / snapshot dir
    cryptobert_max_length: int = 128  # CRYPTOETL_CRYPTOBERT_MAX_LENGTH: its trained length
    finbert_model_id: str = "ProsusAI/finbert"  # CRYPTOETL_FINBERT_MODEL_ID
    finbert_path: str | None = None  # CRYPTOETL_FINBERT_PATH
    finbert_max_length: int = 256  # CRYPTOETL_FINBERT_MAX_LENGTH (model limit 512)
    batch_size: int = 32  # CRYPTOETL_SENTIMENT_BATCH_SIZE
    int8: bool = False  # CRYPTOETL_SENTIMENT_INT8: dynamic int8 Linear layers, revision "<rev>+int8"
    rescore: bool = False  # CRYPTOETL_SENTIMENT_RESCORE: score again articles already scored
    torch_threads: int | None = None  # CRYPTOETL_TORCH_THREADS; default: the pod's CPUs

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SentimentSettings:
        def get(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        kwargs: dict = {}
        for name, attr in (("CRYPTOETL_CRYPTOBERT_MODEL_ID", "cryptobert_model_id"),
                           ("CRYPTOETL_CRYPTOBERT_PATH", "cryptobert_path"),
                           ("CRYPTOETL_FINBERT_MODEL_ID", "finbert_model_id"),
                           ("CRYPTOETL_FINBERT_PATH", "finbert_path")):
            if (raw := get(name)) is not None:
                kwargs[attr] = raw
        for name, attr, low, high in (("CRYPTOETL_CRYPTOBERT_MAX_LENGTH", "cryptobert_max_length", 8, 512),
                                      ("CRYPTOETL_FINBERT_MAX_LENGTH", "finbert_max_length", 8, 512),
                                      ("CRYPTOETL_SENTIMENT_BATCH_SIZE", "batch_size", 1, 1024),
                                      ("CRYPTOETL_TORCH_THREADS", "torch_threads", 1, 256)):
            if (raw := get(name)) is not None:
                try:
                    value = int(raw)
                except ValueError:
                    raise ConfigError(f"{name}={raw!r} is not an integer") from None
                if not low <= value <= high:
                    raise ConfigError(f"{name}={value} is outside [{low}, {high}]")
                kwargs[attr] = value
        for name, attr in (("CRYPTOETL_SENTIMENT_INT8", "int8"), ("CRYPTOETL_SENTIMENT_RESCORE", "rescore")):
            if (raw := get(name)) is not None:
                if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
                    raise ConfigError(f"{name}={raw!r}: use 1 or 0")
                kwargs[attr] = raw.lower() in ("1", "true", "yes")
        return cls(**kwargs)


# The project image's repository; its default tag is the release version (cryptoetl.__version__).
IMAGE_REPOSITORY = "ghcr.io/cryptoetl/cryptoetl"


@dataclass(frozen=True)
class Settings:
    mode: Mode = "local"
    # Warehouse: an Airflow connection id, or an explicit SQLAlchemy URL that overrides it.
    warehouse_conn_id: str = "cryptoetl_warehouse"
    warehouse_url: str | None = None
    symbols: tuple[Coin, ...] = UNIVERSE
    start_date: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    # CoinGecko
    coingecko_plan: CoinGeckoPlan = "public"
    coingecko_api_key: str | None = None
    coingecko_base_url_override: str | None = None
    coingecko_rate_per_minute_override: int | None = None
    http_timeout_seconds: float = 30.0
    # Technical indicators: hourly bars read before each interval so that recursive
    # indicators (EMA, RSI, MACD) converge to the same value whatever the chunking.
    warmup_hours: int = 720
    # Kubernetes pods
    image: str = f"{IMAGE_REPOSITORY}:{__version__}"
    # The sentiment step's image: the base image + torch models baked in (Dockerfile target
    # `sentiment`). Default: "<image repository>-sentiment:<same tag>".
    sentiment_image: str | None = None
    namespace: str = "cryptoetl"
    service_account: str = "cryptoetl-pods"
    secret_name: str = "data-collection-secrets"
    node_selector: Mapping[str, str] = field(default_factory=lambda: {"node-type": "data-collection"})
    startup_timeout_seconds: int = 600
    # Local mode: the interpreter that runs `python -m cryptoetl`; default: the worker's own.
    python: str | None = None
    # Other sources (see SOURCE_DEFAULTS), and source-specific options.
    sources: Mapping[str, SourceSettings] = field(default_factory=lambda: _sources_from_env({}))
    rss_feeds: tuple[tuple[str, str], ...] = DEFAULT_RSS_FEEDS
    macro_series_file: str | None = None  # CRYPTOETL_MACRO_SERIES: JSON file of FRED series
    sentiment: SentimentSettings = field(default_factory=SentimentSettings)

    def __repr__(self) -> str:  # never print secrets, e.g. in task logs
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    @property
    def coingecko_base_url(self) -> str:
        return (self.coingecko_base_url_override or COINGECKO_HOSTS[self.coingecko_plan]).rstrip("/")

    @property
    def coingecko_rate_per_minute(self) -> int:
        return self.coingecko_rate_per_minute_override or COINGECKO_RATE_PER_MINUTE[self.coingecko_plan]

    def source(self, name: str) -> SourceSettings:
        try:
            return self.sources[name]
        except KeyError:
            raise ConfigError(f"unknown source {name!r}; known: {sorted(self.sources)}") from None

    def coin(self, symbol: str) -> Coin:
        for coin in self.symbols:
            if coin.symbol == symbol:
                return coin
        raise ConfigError(f"symbol {symbol!r} is not in the configured universe (CRYPTOETL_SYMBOLS)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kwargs: dict = {}
        if (mode := get("CRYPTOETL_MODE")) is not None:
            if mode not in ("local", "kubernetes"):
                raise ConfigError(f"CRYPTOETL_MODE must be 'local' or 'kubernetes', got {mode!r}")
            kwargs["mode"] = mode
        if (plan := get("COINGECKO_API_PLAN")) is not None:
            if plan not in COINGECKO_HOSTS:
                raise ConfigError(f"COINGECKO_API_PLAN must be one of {sorted(COINGECKO_HOSTS)}, got {plan!r}")
            kwargs["coingecko_plan"] = plan
        if (symbols := get("CRYPTOETL_SYMBOLS")) is not None:
            kwargs["symbols"] = _parse_symbols(symbols)
        if (start := get("CRYPTOETL_START_DATE")) is not None:
            kwargs["start_date"] = parse_utc(start, "CRYPTOETL_START_DATE")
        for name, attr, conv in (
            ("CRYPTOETL_WAREHOUSE_CONN_ID", "warehouse_conn_id", str),
            ("CRYPTOETL_WAREHOUSE_URL", "warehouse_url", str),
            ("COINGECKO_API_KEY", "coingecko_api_key", str),
            ("COINGECKO_BASE_URL", "coingecko_base_url_override", str),
            ("COINGECKO_RATE_PER_MINUTE", "coingecko_rate_per_minute_override", int),
            ("CRYPTOETL_HTTP_TIMEOUT", "http_timeout_seconds", float),
            ("CRYPTOETL_WARMUP_HOURS", "warmup_hours", int),
            ("CRYPTOETL_IMAGE", "image", str),
            ("CRYPTOETL_SENTIMENT_IMAGE", "sentiment_image", str),
            ("CRYPTOETL_NAMESPACE", "namespace", str),
            ("CRYPTOETL_SERVICE_ACCOUNT", "service_account", str),
            ("CRYPTOETL_SECRET_NAME", "secret_name", str),
            ("CRYPTOETL_STARTUP_TIMEOUT", "startup_timeout_seconds", int),
            ("CRYPTOETL_PYTHON", "python", str),
            ("CRYPTOETL_MACRO_SERIES", "macro_series_file", str),
        ):
            if (raw := get(name)) is not None:
                try:
                    kwargs[attr] = conv(raw)
                except ValueError as exc:
                    raise ConfigError(f"{name}={raw!r} is not a valid {conv.__name__}") from exc
        kwargs["sources"] = _sources_from_env(env)
        kwargs["sentiment"] = SentimentSettings.from_env(env)
        if (feeds := get("CRYPTOETL_RSS_FEEDS")) is not None:
            kwargs["rss_feeds"] = _parse_feeds(feeds)
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
        # API-key presence is checked when a step runs, never here: a missing key must not
        # break DAG parsing.
        for name, image in (("CRYPTOETL_IMAGE", self.image), ("CRYPTOETL_SENTIMENT_IMAGE", self.sentiment_image)):
            if image is not None and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                raise ConfigError(
                    f"{name}={image!r} must carry a pinned tag (not ':latest'): "
                    "a backfill must run the same code as the scheduled run did"
                )
        if self.warmup_hours < 0:
            raise ConfigError("CRYPTOETL_WARMUP_HOURS must be >= 0")
        if not self.symbols:
            raise ConfigError("CRYPTOETL_SYMBOLS selects no symbol")


def _sources_from_env(env: Mapping[str, str]) -> dict[str, SourceSettings]:
    out = {}
    for name, (host, rate, plan) in SOURCE_DEFAULTS.items():
        prefix = name.upper()

        def get(suffix: str, prefix=prefix) -> str | None:
            return (env.get(f"{prefix}_{suffix}") or "").strip() or None

        raw_rate = get("RATE_PER_MINUTE")
        try:
            rate_value = float(raw_rate) if raw_rate else rate
        except ValueError:
            raise ConfigError(f"{prefix}_RATE_PER_MINUTE={raw_rate!r} is not a number") from None
        if rate_value <= 0:
            raise ConfigError(f"{prefix}_RATE_PER_MINUTE must be > 0")
        out[name] = SourceSettings(name=name, base_url=(get("BASE_URL") or host).rstrip("/"),
                                   rate_per_minute=rate_value, api_key=get("API_KEY"),
                                   plan=get("API_PLAN") or plan)
    return out


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


def _parse_symbols(raw: str) -> tuple[Coin, ...]:
    by_symbol = {c.symbol: c for c in UNIVERSE}
    wanted = [s.strip().upper() for s in raw.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in by_symbol]
    if unknown:
        raise ConfigError(f"CRYPTOETL_SYMBOLS names unknown symbols {unknown}; known: {sorted(by_symbol)}")
    return tuple(by_symbol[s] for s in dict.fromkeys(wanted))


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
