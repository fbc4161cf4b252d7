"""Where the warehouse is, seen from Airflow: the SQLAlchemy URL of the ``cryptoetl_warehouse``
connection (MySQL in production through the mysql provider, a SQLite file locally).
``CRYPTOETL_WAREHOUSE_URL`` overrides it with a plain SQLAlchemy URL (tests, or a pod whose
Secret carries the URL). Kept out of ``cryptoetl.warehouse``, which never imports Airflow.
"""

from __future__ import annotations

from sqlalchemy import make_url

from cryptoetl.config import ConfigError, Settings


def warehouse_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the warehouse: the explicit URL, else the Airflow connection."""
    if settings.warehouse_url:
        return settings.warehouse_url
    from airflow.sdk import BaseHook  # deferred: only needed when resolving a connection

    try:
        conn = BaseHook.get_connection(settings.warehouse_conn_id)
    except Exception as exc:  # the SDK raises its own not-found type
        raise ConfigError(
            f"no warehouse: set CRYPTOETL_WAREHOUSE_URL or create the Airflow connection "
            f"{settings.warehouse_conn_id!r} (env AIRFLOW_CONN_{settings.warehouse_conn_id.upper()})"
        ) from exc
    if conn.conn_type == "mysql":
        from airflow.providers.mysql.hooks.mysql import MySqlHook

        uri = MySqlHook(mysql_conn_id=settings.warehouse_conn_id).get_uri()
        return make_url(uri).update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False)
    if conn.conn_type == "sqlite":
        if not conn.host:
            raise ConfigError(f"sqlite connection {settings.warehouse_conn_id!r} has no host (the file path)")
        return f"sqlite:///{conn.host}"
    raise ConfigError(f"connection {settings.warehouse_conn_id!r} has type {conn.conn_type!r}; use mysql or sqlite")
