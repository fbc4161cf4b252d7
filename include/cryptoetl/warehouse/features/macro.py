"""Macro features: every configured series as of each hour, and its age (``tmp_feat_macro``).

Point in time: of the rows with ``known_at <= T`` and a value, the latest observation (latest
vintage of it); NULL when that value became known more than ``MACRO_MAX_AGE_DAYS`` before T. The
age is T minus the observation date, in days. Later vintages never leak back: a vintage is used
only from its own ``known_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features.dialect import Dialect

MACRO_MAX_AGE_DAYS = 120  # longer than any gap between releases of the configured series
# A macro value is used by every hour until the next release, at most MACRO_MAX_AGE_DAYS.
LOOKAHEAD_HOURS = {"macro_indicators": MACRO_MAX_AGE_DAYS * 24}
TEMP_TABLES = ("tmp_feat_macro_cand", "tmp_feat_macro")


def context_statements(d: Dialect, columns: Sequence[tuple[str, str, str]] = schema.MACRO_FEATURE_COLUMNS,
                       ) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :lo, :hi, :macro_lo.
    ``columns``: (series_id, value column, age column) of every series to fill
    (``schema.macro_feature_columns``)."""
    dt, day = d.datetime_type, d.date_type
    stmts: list[tuple[str, bool]] = []

    # A row is a candidate when its (observation, vintage) is later than that of every row
    # known before it; the candidate current at T is then the last one known at or before T.
    series = ", ".join(f"'{series_id}'" for series_id, _, _ in columns)
    key = d.concat("observation_date", "realtime_start")
    stmts.append((d.create_temp("tmp_feat_macro_cand", f"series_id VARCHAR(32) NOT NULL, valid_from {dt} NOT NULL, "
                                f"valid_to {dt} NOT NULL, value DOUBLE, observation_date {day} NOT NULL"), False))
    stmts.append((f"""INSERT INTO tmp_feat_macro_cand (series_id, valid_from, valid_to, value, observation_date)
SELECT series_id, known_at,
       CASE WHEN next_known IS NULL OR next_known > {d.plus_days('known_at', MACRO_MAX_AGE_DAYS)}
            THEN {d.plus_days('known_at', MACRO_MAX_AGE_DAYS)} ELSE next_known END,
       value, observation_date
FROM (SELECT series_id, known_at, value, observation_date,
             LEAD(known_at) OVER (PARTITION BY series_id ORDER BY known_at, k) AS next_known
      FROM (SELECT series_id, known_at, value, observation_date, k,
                   MAX(k) OVER (PARTITION BY series_id ORDER BY known_at, k ROWS UNBOUNDED PRECEDING) AS best
            FROM (SELECT series_id, known_at, value, observation_date, {key} AS k
                  FROM macro_indicators
                  WHERE series_id IN ({series}) AND value IS NOT NULL AND known_at < :hi) known) ranked
      WHERE k = best) chain
WHERE (next_known IS NULL OR next_known > :macro_lo) AND known_at < :hi""", False))
    pivot = []
    for series_id, value, age in columns:
        pivot.append(f"MAX(CASE WHEN c.series_id = '{series_id}' THEN c.value END) AS {value}")
        pivot.append(f"MAX(CASE WHEN c.series_id = '{series_id}' THEN "
                     f"{d.days_between('h.time', 'c.observation_date')} END) AS {age}")
    macro_cols = ", ".join(f"{value} DOUBLE, {age} DOUBLE" for _, value, age in columns)
    stmts.append((d.create_temp("tmp_feat_macro", f"time {dt} NOT NULL PRIMARY KEY, {macro_cols}"), False))
    stmts.append((f"""INSERT INTO tmp_feat_macro (time, {', '.join(c for _, v, a in columns for c in (v, a))})
SELECT h.time, {', '.join(pivot)}
FROM tmp_feat_macro_cand c {d.straight_join()} tmp_feat_hours h
WHERE h.time >= {d.greatest('c.valid_from', ':lo')} AND h.time < c.valid_to
GROUP BY h.time""", False))
    return stmts
