"""Retrying a whole transaction that lost a lock conflict with another writer.

Steps may overlap in production (a technical backfill and a features rebuild, two news loads). The
database resolves a conflict by rolling one transaction back: MySQL/MariaDB with error 1213
("Deadlock found") or 1205 ("Lock wait timeout exceeded"), SQLite with "database is locked". The
transaction left nothing behind, so running it again is safe; ``retry_transient`` does that, a
bounded number of times with backoff, and logs each retry. ``fn`` must be the WHOLE transaction
(open, write, commit), and repeatable: a generator of rows must be created inside it.

Which conflicts are avoided in the first place is chosen per step (see ``warehouse/features``: the
rebuild reads at READ COMMITTED, so its INSERT ... SELECT takes no shared locks on source rows).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")
MYSQL_TRANSIENT = {1205: "lock wait timeout", 1213: "deadlock"}
ATTEMPTS = 4


def transient_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is a lock conflict worth retrying, or None."""
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return None
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in MYSQL_TRANSIENT:
        return f"MySQL {args[0]} {MYSQL_TRANSIENT[args[0]]}"
    if "database is locked" in str(exc.orig):
        return "SQLite database is locked"
    return None


def retry_transient(fn: Callable[[], T], *, what: str, attempts: int = ATTEMPTS, base_delay: float = 1.0,
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, run again after a lock conflict, at most ``attempts`` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            reason = transient_reason(exc)
            if reason is None or attempt == attempts:
                raise
            delay = base_delay * 2 ** (attempt - 1) * (1 + random.random() / 2)  # jitter: not in lockstep
            log.warning("%s: %s (rolled back, nothing written); attempt %d/%d again in %.1fs",
                        what, reason, attempt + 1, attempts, delay)
            sleep(delay)
    raise AssertionError("unreachable")
