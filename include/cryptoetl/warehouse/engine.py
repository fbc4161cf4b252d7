"""The warehouse's storage conventions, shared by every read and write: one pooled engine per URL
(SQLite tuned for several local task processes), naive UTC datetimes, DATE columns.

The URL itself comes from the caller: ``CRYPTOETL_WAREHOUSE_URL`` or, inside Airflow, the
connection resolved by ``cryptoetl.airflow.connection.warehouse_url``. A URL that cannot work (not
a URL, no host, a dialect the warehouse does not speak, a driver that is not installed) is a
``ConfigError`` naming the setting, and its password is registered with the redactor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pandas as pd
from sqlalchemy import URL, Date, DateTime, Engine, Table, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from cryptoetl.config import ConfigError
from cryptoetl.redaction import register, url_passwords

BACKENDS = ("sqlite", "mysql", "mariadb")  # what the warehouse code speaks (features/dialect.py)


def _checked_url(url: str, setting: str) -> URL:
    """The parsed URL, or a ConfigError naming ``setting``. Never echoes the raw text: it may be a password."""
    register(*url_passwords(url))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{setting} is not a SQLAlchemy URL: use mysql+mysqldb://USER:PASSWORD@HOST/DATABASE "
                          "or sqlite:////path/to/warehouse.db") from None
    register(parsed.password)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in BACKENDS:
        raise ConfigError(f"{setting}={shown!r}: the warehouse runs on {', '.join(BACKENDS)}, "
                          f"not {parsed.get_backend_name()!r}")
    if parsed.get_backend_name() != "sqlite" and not (parsed.host and parsed.database):
        raise ConfigError(f"{setting}={shown!r} names no {'host' if not parsed.host else 'database'}")
    return parsed


@cache
def get_engine(url: str, setting: str = "CRYPTOETL_WAREHOUSE_URL") -> Engine:
    """One pooled engine per URL per process. ``setting``: where the URL came from, for messages."""
    parsed = _checked_url(url, setting)
    try:
        return _create(url, parsed)
    except (ImportError, NoSuchModuleError) as exc:
        missing = f" (no module {exc.name!r})" if isinstance(exc, ImportError) and exc.name else ""
        raise ConfigError(f"{setting}: the driver {parsed.drivername!r} is not installed{missing}") from None


def _create(url: str, parsed: URL) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        # Several task processes write the same file locally: wait for the lock instead of
        # failing, and use WAL so readers never block the writer.
        engine = create_engine(url, connect_args={"timeout": 120})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=120000")
            cur.close()

        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        # 4-byte UTF-8 on the connection too (emoji in news titles), whatever the server's default.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600)


def to_naive_utc(ts: datetime | pd.Timestamp) -> datetime:
    """Aware -> naive UTC, the storage convention. Naive input is taken as UTC already."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


def is_mysql(dialect) -> bool:
    """MySQL or MariaDB (SQLAlchemy names the dialect ``mariadb`` for ``mariadb://`` URLs)."""
    return dialect.name in ("mysql", "mariadb")


def is_date_column(table: Table, column: str) -> bool:
    """A DATE (not DATETIME) column: daily tables, scoped and read by whole days."""
    return isinstance(table.c[column].type, Date) and not isinstance(table.c[column].type, DateTime)
