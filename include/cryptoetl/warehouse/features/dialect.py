"""The only differences between MySQL/MariaDB and SQLite in the feature SQL: date arithmetic, and
how temporary tables are created, dropped and typed. Every family builds its SQL through these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

MEMORY_ROWS_BY_DEFAULT = 20_000  # hours of the in-memory hour table that MySQL's default cap surely holds


class Dialect:
    """Date arithmetic and DDL spelled for MySQL/MariaDB (default) or SQLite."""

    def __init__(self, name: str):
        self.sqlite = name == "sqlite"

    def param_time(self, value: datetime):
        # SQLAlchemy stores SQLite DATETIMEs as 'YYYY-MM-DD HH:MM:SS.ffffff' text; compare like with like.
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else value

    def plus_hours_expr(self, column: str, hours_expr: str) -> str:
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '+' || {hours_expr} || ' hours') || '.000000')"
        return f"({column} + INTERVAL {hours_expr} HOUR)"

    def plus_days(self, column: str, days: int) -> str:
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '+{days} days') || '.000000')"
        return f"({column} + INTERVAL {days} DAY)"

    def ceil_hour(self, column: str) -> str:
        """The first hour start at or after ``column`` (articles published in (T-1h, T] -> T)."""
        if self.sqlite:
            return f"(strftime('%Y-%m-%d %H:00:00', {column}, '+3599.999 seconds') || '.000000')"
        return f"CAST(DATE_FORMAT({column} + INTERVAL 3599 SECOND, '%Y-%m-%d %H:00:00') AS DATETIME)"

    def days_between(self, later: str, earlier: str) -> str:
        if self.sqlite:  # whole seconds, so the result is exact
            return f"((strftime('%s', {later}) - strftime('%s', {earlier})) / 86400.0)"
        return f"(TIMESTAMPDIFF(SECOND, {earlier}, {later}) / 86400e0)"  # e0: DOUBLE, not DECIMAL(,4)

    def greatest(self, a: str, b: str) -> str:
        # one bound per outer row, so MySQL probes the calendar's key per row (no join buffer)
        return f"max({a}, {b})" if self.sqlite else f"GREATEST({a}, {b})"

    def concat(self, *parts: str) -> str:
        return " || ".join(parts) if self.sqlite else f"CONCAT({', '.join(parts)})"

    def create_temp(self, name: str, body: str, in_memory: bool = False) -> str:
        """``in_memory``: a small table probed once per feature row; on MySQL/MariaDB a MEMORY table
        (hash key: a probe costs a fraction of an InnoDB one). Only for tables of one row per hour."""
        engine = " ENGINE=MEMORY" if in_memory and not self.sqlite else ""
        return f"CREATE TEMPORARY TABLE {name} ({body}){engine}"

    def upsert(self, table: str, key: Sequence[str], columns: Sequence[str], select: str) -> str:
        """INSERT INTO ``table`` the rows of ``select`` (a SELECT ending in a WHERE clause, which SQLite's
        grammar needs here), a row whose ``key`` is already there updating its ``columns`` instead."""
        names = ", ".join([*key, *columns])
        if self.sqlite:
            sets = ", ".join(f"{c} = excluded.{c}" for c in columns)
            return f"INSERT INTO {table} ({names})\n{select}\nON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        sets = ", ".join(f"{c} = VALUES({c})" for c in columns)
        return f"INSERT INTO {table} ({names})\n{select}\nON DUPLICATE KEY UPDATE {sets}"

    def memory_room(self, rows: int) -> list[str]:
        """Before creating a MEMORY table of ``rows`` hours: raise the session's cap (16 MB by default,
        about 30,000 hours of the widest one) when it may not hold them; the table takes only what it
        needs. Nothing for shorter intervals (one statement less per hourly run)."""
        return [] if self.sqlite or rows <= MEMORY_ROWS_BY_DEFAULT else ["SET SESSION max_heap_table_size = 1073741824"]

    def drop_temp(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS temp.{name}" if self.sqlite else f"DROP TEMPORARY TABLE IF EXISTS {name}"

    def drop_temps(self, names: Sequence[str]) -> list[str]:
        """The statements that drop ``names``: one on MySQL/MariaDB (a round trip each is most of a
        one-hour rebuild), one per table on SQLite, which drops one table at a time."""
        if self.sqlite:
            return [self.drop_temp(name) for name in names]
        return [f"DROP TEMPORARY TABLE IF EXISTS {', '.join(names)}"]

    # The temporary tables' time and date types: the warehouse tables' own on both backends. On SQLite
    # a TEXT column compared with a DATETIME one (NUMERIC affinity) is converted first, so its key
    # cannot serve ``hc.time = p.time``: the final statement then scanned the hour table for every
    # feature row, and a rebuild reaching 120 days past the last price took 4.4x as long (28.5 s
    # instead of 6.5 s at 320 coins x 14 days). The values stay text either way.
    datetime_type = "DATETIME"
    date_type = "DATE"

    def straight_join(self) -> str:
        """Join order for range joins: drive from the small interval table, probe the calendar's key."""
        return "CROSS JOIN" if self.sqlite else "STRAIGHT_JOIN"
