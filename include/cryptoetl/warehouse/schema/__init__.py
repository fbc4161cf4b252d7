"""The warehouse schema, declared once in SQLAlchemy Core for MySQL/MariaDB and SQLite.

Conventions (see docs/DATA_DICTIONARY.md for every column):
- Times are naive UTC ``DATETIME`` values. Hourly tables key on the *start* of the hour.
- Primary keys make duplicates impossible; every writer replaces whole intervals
  (``warehouse.writes.replace_interval``), so reruns never add rows.
- A missing value is NULL, never 0 or a placeholder. Where a gap matters to a model, an
  age or count column sits beside the value.
- No load timestamps: rerunning an interval must leave the table byte-for-byte identical.

The tables live in submodules by family (``core``: shared types; ``market``; ``news``; ``features``;
``landing``: raw API landing and quota bookkeeping; ``quality``: the quality gate and health actions);
this package exports all of them, so ``schema.price_data_real`` and the like are the names to use.
"""

from cryptoetl.warehouse.schema.core import *  # noqa: F403
from cryptoetl.warehouse.schema.features import *  # noqa: F403
from cryptoetl.warehouse.schema.landing import *  # noqa: F403
from cryptoetl.warehouse.schema.market import *  # noqa: F403
from cryptoetl.warehouse.schema.news import *  # noqa: F403
from cryptoetl.warehouse.schema.quality import *  # noqa: F403
