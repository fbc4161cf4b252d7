"""Universe features: per hour, the universe snapshot known then (``tmp_feat_snap``).

Point in time: hour T uses the latest snapshot with ``known_at <= T``; ``universe_rank`` is the row's
coin's rank in it, NULL when that snapshot does not list the coin or none was known yet. A snapshot is
taken live and never replaced (``warehouse/universe.py``), so a new one only reaches hours after it
was taken: features already built never change with it, and it triggers no rebuild.
"""

from __future__ import annotations

from cryptoetl.warehouse.features.dialect import Dialect

LOOKAHEAD_HOURS: dict[str, int] = {}
TEMP_TABLES = ("tmp_feat_snap",)


def context_statements(d: Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameter :lo."""
    dt = d.datetime_type
    return [
        (d.create_temp("tmp_feat_snap", f"time {dt} NOT NULL PRIMARY KEY, known_at {dt} NULL"), False),
        # one index probe per hour: known_at leads universe_snapshots' primary key
        ("""INSERT INTO tmp_feat_snap (time, known_at)
SELECT h.time, (SELECT MAX(u.known_at) FROM universe_snapshots u WHERE u.known_at <= h.time)
FROM tmp_feat_hours h WHERE h.time >= :lo""", False),
    ]
