"""On-chain features: per symbol and day, the last completed on-chain day (``tmp_feat_onchain``).

Point in time: the symbol's latest day with ``complete_at`` <= the start of T's day (on-chain days
complete at midnight), if it completed within ``ONCHAIN_MAX_AGE_DAYS``; age = T minus that day.
"""

from __future__ import annotations

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features.dialect import Dialect

ONCHAIN_MAX_AGE_DAYS = 7
# A day's values are current for at most ONCHAIN_MAX_AGE_DAYS after it completes, and a row hour
# uses the day current at the start of its own day: a change reaches one more day ahead.
LOOKAHEAD_HOURS = {"crypto_onchain_data": (ONCHAIN_MAX_AGE_DAYS + 1) * 24}
TEMP_TABLES = ("tmp_feat_onchain_cand", "tmp_feat_onchain")


def context_statements(d: Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :hi, :onchain_lo."""
    dt, day = d.datetime_type, d.date_type
    stmts: list[tuple[str, bool]] = []

    # Each day is current from its complete_at until the next day completes (at most
    # ONCHAIN_MAX_AGE_DAYS); a row hour uses the day current at the start of its own day.
    metrics = [name for name, _ in schema.ONCHAIN_METRIC_COLUMNS]
    metric_cols = ", ".join(f"{name} DOUBLE" for name in metrics)
    names = ", ".join(metrics)
    stmts.append((d.create_temp("tmp_feat_onchain_cand", f"symbol VARCHAR(16) NOT NULL, date {day} NOT NULL, "
                                f"valid_from {dt} NOT NULL, valid_to {dt} NOT NULL, {metric_cols}"), False))
    stmts.append((f"""INSERT INTO tmp_feat_onchain_cand (symbol, date, valid_from, valid_to, {names})
SELECT symbol, date, complete_at,
       CASE WHEN next_complete IS NULL OR next_complete > {d.plus_days('complete_at', ONCHAIN_MAX_AGE_DAYS)}
            THEN {d.plus_days('complete_at', ONCHAIN_MAX_AGE_DAYS)} ELSE next_complete END, {names}
FROM (SELECT symbol, date, complete_at, {names},
             LEAD(complete_at) OVER (PARTITION BY symbol ORDER BY date) AS next_complete
      FROM crypto_onchain_data WHERE symbol IN :symbols AND complete_at < :hi) chain
WHERE complete_at > :onchain_lo""", True))
    stmts.append((d.create_temp("tmp_feat_onchain", f"symbol VARCHAR(16) NOT NULL, day {day} NOT NULL, "
                                f"date {day} NOT NULL, {metric_cols}, PRIMARY KEY (symbol, day)"), False))
    stmts.append((f"""INSERT INTO tmp_feat_onchain (symbol, day, date, {names})
SELECT c.symbol, dd.day, c.date, {', '.join(f'c.{n}' for n in metrics)}
FROM tmp_feat_onchain_cand c {d.straight_join()} tmp_feat_days dd
WHERE dd.day_start >= c.valid_from AND dd.day_start < c.valid_to""", False))
    return stmts
