"""Alembic environment of the warehouse.

``cryptoetl.warehouse.migrate`` hands over its connection (``config.attributes["connection"]``),
already under the migration lock; offline (``--sql``) it hands over the URL. The plain ``alembic``
command (developers: ``alembic revision --autogenerate``, ``alembic check``) connects to
``CRYPTOETL_WAREHOUSE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Float, create_engine, pool

from cryptoetl.warehouse import schema

config = context.config
FEATURES = schema.ml_features_materialized.name


def compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type) -> bool | None:
    # Float(53) is created as DOUBLE on MySQL and reflected as DOUBLE: the same type, not a change.
    if isinstance(metadata_type, Float) and isinstance(inspected_type, Float):
        return False
    return None  # Alembic's own comparison


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    # The macro columns follow the series files and are added by `migrate` itself, not by
    # revisions (migrate.add_macro_columns): autogenerate must neither add nor drop them.
    return not (type_ == "column" and name.startswith("macro_") and obj.table.name == FEATURES)


OPTIONS = {
    "target_metadata": schema.metadata,
    "compare_type": compare_type,
    "include_object": include_object,
    # MySQL cannot roll DDL back: commit each revision with its version row, so a failure stops
    # after the last revision that completed and a rerun continues from there.
    "transaction_per_migration": True,
    "render_as_batch": True,  # autogenerate: SQLite alters most columns only by copying the table
}


def run_offline() -> None:
    url = config.attributes.get("url") or os.environ.get("CRYPTOETL_WAREHOUSE_URL")
    context.configure(url=url, literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("CRYPTOETL_WAREHOUSE_URL")
    if not url:
        raise SystemExit("set CRYPTOETL_WAREHOUSE_URL to the (scratch) warehouse the alembic command should use")
    with create_engine(url, poolclass=pool.NullPool).connect() as connection:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
