"""What every table shares: the metadata, the column types and the key columns."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    MetaData,
    String,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# Float(53) is DOUBLE on MySQL and REAL (8-byte) on SQLite: prices need the full mantissa.
Double = Float(53)
# A point in time as an API stamped it, to the millisecond (MySQL's DATETIME keeps whole seconds).
PreciseTime = DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")
# Explicit, whatever the database default: news titles and summaries need 4-byte UTF-8.
UTF8MB4 = {"mysql_charset": "utf8mb4"}


def _symbol(primary_key: bool = True) -> Column:
    return Column("symbol", String(16), primary_key=primary_key, nullable=False)


def _hour(primary_key: bool = True) -> Column:
    return Column("time", DateTime(), primary_key=primary_key, nullable=False, comment="hour start, UTC")
