"""On-chain features: per symbol and hour, the latest on-chain day usable then (its columns of
``tmp_feat_sym_ctx``, ``symbol_context.py``).

Point in time: at hour T, the symbol's latest day with ``complete_at`` <= T, if that day became
usable within ``ONCHAIN_MAX_AGE_DAYS`` before T; age = T minus the start of that day.
``complete_at`` is the day's end plus its source's publication delay (set by the loader,
``loaders/onchain.py``), so a day is never used before its source has published it.
"""

from __future__ import annotations

from cryptoetl.warehouse import schema
from cryptoetl.warehouse.features import symbol_context
from cryptoetl.warehouse.features.dialect import Dialect

ONCHAIN_MAX_AGE_DAYS = 7
# The longest publication delay the lookahead below covers: complete_at is at most this long after
# the day's end (tests/test_onchain.py checks every on-chain source's delay against it).
ONCHAIN_MAX_DELAY_HOURS = 24
# A day [D, D+1) is used from its complete_at (D+1 + delay) for at most ONCHAIN_MAX_AGE_DAYS, and it
# ends the previous day's use: a change of it reaches that far past the end of its interval.
LOOKAHEAD_HOURS = {"crypto_onchain_data": ONCHAIN_MAX_AGE_DAYS * 24 + ONCHAIN_MAX_DELAY_HOURS}
TEMP_TABLES = ("tmp_feat_onchain_cand",)


def symbol_columns(d: Dialect) -> list[tuple[str, str]]:
    """(name, SQL type) of the family's columns in ``tmp_feat_sym_ctx``: the day used, and its metrics."""
    return [("onchain_date", d.date_type), *((name, "DOUBLE") for name, _ in schema.ONCHAIN_METRIC_COLUMNS)]


def context_statements(d: Dialect) -> list[tuple[str, bool]]:
    """(statement, needs the :symbols expansion) in execution order; parameters :lo, :hi, :onchain_lo."""
    dt, day = d.datetime_type, d.date_type
    stmts: list[tuple[str, bool]] = []

    # Each day is current from its complete_at until the next day's complete_at (at most
    # ONCHAIN_MAX_AGE_DAYS); a row hour uses the day current at that hour.
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
    columns = [name for name, _ in symbol_columns(d)]
    values = ", ".join(f"c.{n}" for n in metrics)
    stmts.append((symbol_context.upsert(d, columns, f"""SELECT c.symbol, h.time, c.date, {values}
FROM tmp_feat_onchain_cand c {d.straight_join()} tmp_feat_hours h
WHERE h.time >= {d.greatest('c.valid_from', ':lo')} AND h.time < c.valid_to"""), False))
    return stmts
