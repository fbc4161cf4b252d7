"""What every sandbox API module shares: the synthetic time grid, seeds and the Route type.

An API module (coingecko.py, fred.py, ...) is a class built with the server, whose
``routes()`` returns ``Route`` objects. A handler gets the query (last value per key) and
the path's named groups, and returns ``(status, body)`` or ``(status, body, content_type)``;
a dict/list body is sent as JSON, str/bytes as is. ALL DATA SERVED IS SYNTHETIC.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

EPOCH = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
HOUR = 3600
DAY = 86400
HORIZON_HOURS = 24 * 366 * 10  # 2023-2032
HORIZON_DAYS = HORIZON_HOURS // 24


def seed(name: str) -> int:
    """Stable across processes (unlike hash())."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def rng(*parts: str) -> np.random.Generator:
    """A generator seeded by a stream name: the same name gives the same numbers, always."""
    return np.random.default_rng(seed("/".join(parts)))


@dataclass
class Route:
    method: str
    pattern: str | re.Pattern
    handler: Callable
    # (query, headers) -> None if allowed, else (status, body)
    auth: Callable | None = None
    # body -> the body with its records emptied / a field renamed ("empty" / "drift" faults)
    empty: Callable | None = None
    drift: Callable | None = None
    # the query parameter carrying the API key, which the "403" fault echoes like a careless API
    key_param: str | None = None
    # the "429" fault's body and default Retry-After, where the API has its own (CoinGecko's)
    rate_limited: object = None
    retry_after: int = 1
    regex: re.Pattern = field(init=False)

    def __post_init__(self):
        self.regex = re.compile(self.pattern) if isinstance(self.pattern, str) else self.pattern
