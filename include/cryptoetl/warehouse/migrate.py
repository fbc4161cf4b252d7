"""Warehouse schema migrations: bring a warehouse to this code's schema, and check that it is there.

``schema.py`` declares the current schema; the Alembic revisions in ``migrations/versions/`` are the
history that reaches it, from the frozen baseline ``0001`` (release 0.1.0). ``upgrade`` is what
``python -m cryptoetl migrate`` (and ``init-db``) runs:

1. take the migration lock: on MySQL/MariaDB ``GET_LOCK`` on a name per database, on SQLite one
   ``BEGIN IMMEDIATE`` transaction around everything (SQLite has one writer at a time anyway), so two
   pods migrating at once run one after the other and the second finds nothing to do;
2. adopt a warehouse that the old ``init-db`` created (its tables, no ``alembic_version``): if it
   matches the baseline (every table, column, index and the view), stamp it at ``0001``; rows are
   never touched. If it does not match, refuse and name the differences;
3. run the revisions up to head (each committed with its version row on MySQL, whose DDL cannot
   roll back; all or nothing on SQLite);
4. add the macro feature columns that the series files call for and the table lacks
   (``add_macro_columns``): a series added to the packaged ``macro_series.json`` or to a custom
   ``CRYPTOETL_MACRO_SERIES`` file needs no revision. Columns are never dropped.

``check_current`` is the cheap guard every step run passes first (one query).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import Inspector
from sqlalchemy.exc import DBAPIError

from cryptoetl.warehouse import schema

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
BASELINE = "0001"
COMMAND = "python -m cryptoetl migrate"
LOCK_TIMEOUT_S = 1800  # an index build on the production feature table takes minutes, not half an hour
FEATURES = schema.ml_features_materialized.name

# Alembic announces its set-up at INFO on every run; keep its "Running upgrade ..." lines (the
# progress of a long migration) and drop the rest.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.migration").addFilter(lambda record: record.getMessage().startswith("Running"))


class SchemaOutdated(RuntimeError):
    """The warehouse is not at the schema this code needs; the message names the command to run."""


class MigrationRefused(RuntimeError):
    """``upgrade`` cannot proceed without a person: nothing was changed."""


def alembic_config(extra_versions: Iterable[str | Path] = ()) -> Config:
    """The Alembic configuration of the packaged migrations (plus ``extra_versions`` directories,
    for tests that generate a throwaway revision)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(
        [str(MIGRATIONS / "versions"), *(str(path) for path in extra_versions)]))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def head_revision(config: Config | None = None) -> str:
    return ScriptDirectory.from_config(config or alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The warehouse's revision; None without an ``alembic_version`` table (empty or pre-migration)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, macro_series: Iterable[tuple[str, str]] = (), *,
            config: Config | None = None) -> list[str]:
    """Create, adopt or upgrade the warehouse to head, then add missing macro feature columns for
    the packaged series and ``macro_series`` ((series_id, indicator_name) of the configured file).
    Idempotent. Returns what it did, one line each. MigrationRefused when it must not proceed."""
    config = config or alembic_config()
    macro = schema.macro_feature_columns(macro_series)  # a collision fails before the lock
    script = ScriptDirectory.from_config(config)
    head, notes = script.get_current_head(), []
    with _migration_lock(engine) as conn:
        current = current_revision(conn)
        if current is None and (problems := _adoption_problems(inspect(conn))) is not None:
            if problems:
                raise MigrationRefused(_refusal(problems))
            _run(command.stamp, config, conn, BASELINE)
            notes.append(f"adopted the existing warehouse at the baseline revision {BASELINE} (no rows touched)")
            current = BASELINE
        elif current is not None and current not in {s.revision for s in script.walk_revisions()}:
            raise MigrationRefused(_unknown_revision(current, head))
        if current != head:
            _run(command.upgrade, config, conn, "head")
            notes.append(f"upgraded the schema from revision {current or 'none (empty warehouse)'} to {head}")
        if added := add_macro_columns(conn, macro):
            notes.append(f"added the macro feature columns {added}: NULL until the features rebuild fills them "
                         "(python -m cryptoetl rebuild-features)")
    return notes


def upgrade_sql(engine: Engine, out: TextIO, macro_series: Iterable[tuple[str, str]] = (), *,
                config: Config | None = None) -> None:
    """Write the SQL that ``upgrade`` would run on this warehouse to ``out``, without running it (the
    warehouse is only read). Lock, adoption check and rollback are ``upgrade``'s alone."""
    config = config or alembic_config()
    macro = schema.macro_feature_columns(macro_series)
    with engine.connect() as conn:
        current, inspector = current_revision(conn), inspect(conn)
        adopt = current is None and (problems := _adoption_problems(inspector)) is not None
        if adopt and problems:
            raise MigrationRefused(_refusal(problems))
        have = ({c["name"] for c in inspector.get_columns(FEATURES)} if inspector.has_table(FEATURES)
                else _baseline_shape()[0][FEATURES][0])
    config.output_buffer, config.attributes["url"] = out, engine.url
    try:
        if adopt:
            command.stamp(config, BASELINE, sql=True)
            current = BASELINE
        if current != head_revision(config):
            command.upgrade(config, f"{current}:head" if current else "head", sql=True)
    finally:
        config.output_buffer = None
        del config.attributes["url"]
    context = MigrationContext.configure(dialect_name=engine.dialect.name,
                                         opts={"as_sql": True, "output_buffer": out, "literal_binds": True})
    for column in _missing_macro_columns(have, macro):
        Operations(context).add_column(FEATURES, column)


def add_macro_columns(conn: Connection, macro: Sequence[tuple[str, str, str]]) -> list[str]:
    """Add the value and age columns of every series in ``macro`` (``schema.macro_feature_columns``)
    that ``ml_features_materialized`` lacks; the names added. NULL in existing rows until a rebuild:
    on MariaDB and SQLite an appended nullable column is instant, whatever the table's size."""
    have = {c["name"] for c in inspect(conn).get_columns(FEATURES)}
    missing = _missing_macro_columns(have, macro)
    operations = Operations(MigrationContext.configure(conn))
    for column in missing:
        operations.add_column(FEATURES, column)
    return [column.name for column in missing]


def check_current(engine: Engine, macro_series: Iterable[tuple[str, str]] | None = None, *,
                  config: Config | None = None) -> None:
    """SchemaOutdated unless the warehouse is at this code's head revision (and, given
    ``macro_series``, has the macro columns of the packaged and configured series). One query:
    the columns are named in a subquery that returns nothing, so a missing one fails the query."""
    head = head_revision(config)
    macro = schema.macro_feature_columns(macro_series) if macro_series is not None else ()
    probe = "SELECT version_num FROM alembic_version"
    if macro:
        columns = ", ".join(column for _, value, age in macro for column in (value, age))
        probe += f" WHERE NOT EXISTS (SELECT {columns} FROM {FEATURES} WHERE 1 = 0)"
    try:
        with engine.connect() as conn:
            revisions = conn.execute(text(probe)).scalars().all()
    except DBAPIError:
        _diagnose(engine, macro, head, config)  # a missing table or column: the message says what to run
        raise
    if revisions != [head]:
        raise SchemaOutdated(_revision_message(revisions, head, config))


# --- helpers -------------------------------------------------------------------------------------

@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection under the migration lock; on SQLite also the one transaction of the migration."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            yield from _sqlite_immediate(conn)
            return
        name = f"cryptoetl.migrate.{conn.engine.url.database}"[:64]  # GET_LOCK names are server-wide
        got = conn.execute(text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": LOCK_TIMEOUT_S})
        if got.scalar() != 1:
            raise MigrationRefused(f"another `{COMMAND}` has held the lock {name!r} for {LOCK_TIMEOUT_S} s; "
                                   "try again when it is done")
        conn.commit()
        try:
            yield conn
            if conn.in_transaction():
                conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            conn.commit()


def _sqlite_immediate(conn: Connection) -> Iterator[Connection]:
    # pysqlite would otherwise commit before DDL and begin lazily; take the write lock at once so
    # the state read and the changes made from it are one transaction, then hand the driver back.
    driver = conn.connection.driver_connection
    previous, driver.isolation_level = driver.isolation_level, None
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    finally:
        driver.isolation_level = previous


def _run(fn, config: Config, conn: Connection, revision: str) -> None:
    """An Alembic command (stamp, upgrade) on our locked connection, through ``migrations/env.py``."""
    if conn.dialect.name != "sqlite" and conn.in_transaction():
        conn.commit()  # so that Alembic commits each revision itself (MySQL)
    config.attributes["connection"] = conn
    try:
        fn(config, revision)
    finally:
        del config.attributes["connection"]


def _missing_macro_columns(have: set[str], macro: Sequence[tuple[str, str, str]]) -> list[Column]:
    return [column for series_id, value, age in macro for column in schema.macro_columns(series_id, value, age)
            if column.name not in have]


Shape = tuple[dict[str, tuple[set[str], dict[str, tuple[str, ...]]]], set[str]]  # tables, views


def _shape(inspector: Inspector) -> Shape:
    tables = {name: ({c["name"] for c in inspector.get_columns(name)},
                     {ix["name"]: tuple(ix["column_names"]) for ix in inspector.get_indexes(name)})
              for name in inspector.get_table_names() if name != "alembic_version"}
    return tables, set(inspector.get_view_names())


@cache
def _baseline_shape() -> Shape:
    """Tables (columns, indexes) and views of the baseline revision, from running it on an
    in-memory SQLite database: what an adopted warehouse must have."""
    module = ScriptDirectory.from_config(alembic_config()).get_revision(BASELINE).module
    with create_engine("sqlite://").begin() as conn:
        with Operations.context(MigrationContext.configure(conn)):
            module.upgrade()
        return _shape(inspect(conn))


def _adoption_problems(inspector: Inspector) -> list[str] | None:
    """For a warehouse without ``alembic_version``: None when it holds none of the baseline's
    tables (a fresh one), else how it differs from the baseline ([] when it matches)."""
    want_tables, want_views = _baseline_shape()
    have_tables, have_views = _shape(inspector)
    if not set(want_tables) & set(have_tables):
        return None
    problems = []
    for table, (columns, indexes) in sorted(want_tables.items()):
        if table not in have_tables:
            problems.append(f"table {table} is missing")
            continue
        have_columns, have_indexes = have_tables[table]
        if missing := sorted(columns - have_columns):
            problems.append(f"{table} lacks the columns {missing}")
        if wrong := sorted(name for name, cols in indexes.items() if have_indexes.get(name) != cols):
            problems.append(f"{table} lacks the indexes {wrong}")
    problems += [f"view {view} is missing" for view in sorted(want_views - have_views)]
    return problems


def _refusal(problems: list[str]) -> str:
    return ("cannot adopt this warehouse: it has cryptoetl tables but no alembic_version table, and it differs "
            f"from the baseline revision {BASELINE} (the schema init-db created): " + "; ".join(problems)
            + f". Bring it to the baseline by hand (see migrations/versions/{BASELINE}_baseline.py), "
            f"then run `{COMMAND}` again. Nothing was changed.")


def _unknown_revision(current: str, head: str) -> str:
    return (f"warehouse schema is at revision {current}, which this code does not know (a newer release "
            f"migrated it; this code needs {head}): run the release that matches the warehouse")


def _revision_message(revisions: list[str], head: str, config: Config | None) -> str:
    if len(revisions) != 1:
        return f"warehouse has no single schema revision ({revisions}), this code needs {head}: run `{COMMAND}`"
    known = {s.revision for s in ScriptDirectory.from_config(config or alembic_config()).walk_revisions()}
    if revisions[0] not in known:
        return _unknown_revision(revisions[0], head)
    return f"warehouse schema is at revision {revisions[0]}, this code needs {head}: run `{COMMAND}`"


def _diagnose(engine: Engine, macro: Sequence[tuple[str, str, str]], head: str, config: Config | None) -> None:
    """After the probe failed: SchemaOutdated when the schema is why, naming what to run; else return."""
    with engine.connect() as conn:
        inspector = inspect(conn)
        if not inspector.has_table("alembic_version"):
            what = "has no schema" if _adoption_problems(inspector) is None else \
                "was created by init-db before migrations (no alembic_version table)"
            raise SchemaOutdated(f"warehouse {what}, this code needs revision {head}: run `{COMMAND}`")
        if (current := current_revision(conn)) != head:
            raise SchemaOutdated(_revision_message([current] if current else [], head, config))
        if inspector.has_table(FEATURES):
            have = {c["name"] for c in inspector.get_columns(FEATURES)}
            if missing := [series_id for series_id, value, age in macro if not {value, age} <= have]:
                raise SchemaOutdated(f"{FEATURES} lacks the feature columns of the macro series {missing} "
                                     f"(macro_series.json or CRYPTOETL_MACRO_SERIES): run `{COMMAND}`")
