"""Warehouse schema migrations (warehouse/migrate.py), on SQLite and MariaDB: a fresh migrate equals
the declared schema, the baseline equals what init-db 0.1.0 created (tests/warehouse_0_1_0/), an old
warehouse is adopted with its rows, a populated one is upgraded in place, custom macro series get
their columns, and a step refuses a warehouse older than its code before writing anything."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from helpers import dump
from sqlalchemy import MetaData, Table, create_engine, func, inspect, literal_column, make_url, select, text
from sqlalchemy.exc import OperationalError

from cryptoetl.cli import main
from cryptoetl.warehouse import features, migrate, schema
from cryptoetl.warehouse.engine import get_engine

DUMPS = Path(__file__).resolve().parent / "warehouse_0_1_0"
T0 = datetime(2026, 1, 1)
SYMBOLS = ["BTC", "ETH"]


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def empty(request, tmp_path):
    """A factory of empty warehouses (engines) on each backend; MySQL ones are dropped afterwards."""
    made: list[str] = []
    if request.param == "mysql":
        server = make_url(request.getfixturevalue("mysql_server_url"))
        admin = create_engine(server.set(database=None))

    def make():
        if request.param == "sqlite":
            return get_engine(f"sqlite:///{tmp_path / f'w{uuid.uuid4().hex[:8]}.db'}")
        name = f"cryptoetl_mig_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        made.append(name)
        return get_engine(server.set(database=name).render_as_string(hide_password=False))

    yield make
    if made:
        with admin.begin() as conn:
            for name in made:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def cli_env(monkeypatch):
    def point(engine):
        monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", engine.url.render_as_string(hide_password=False))
    return point


def load_0_1_0(engine) -> None:
    """A warehouse exactly as init-db 0.1.0 created it: its tables and view, no alembic_version."""
    sql = (DUMPS / f"{engine.dialect.name}.sql").read_text()
    with engine.begin() as conn:
        for statement in sql.split(";\n\n"):
            statement = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if statement:
                conn.exec_driver_sql(statement.rstrip(";"))


def reflect(engine, *, ordered: bool = True) -> dict:
    """Every table (columns with type, nullability, default and comment; primary key; indexes; comment
    and MySQL options) and view of a warehouse, as the database reports them."""
    inspector = inspect(engine)
    out = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        columns = [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("comment"))
                   for c in inspector.get_columns(table)]
        out[table] = {
            "columns": columns if ordered else sorted(columns),
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in inspector.get_indexes(table)),
            "comment": inspector.get_table_comment(table)["text"] if engine.dialect.supports_comments else None,
            "options": inspector.get_table_options(table),
        }
    for view in inspector.get_view_names():
        out[f"view {view}"] = (inspector.get_view_definition(view), [c["name"] for c in inspector.get_columns(view)])
    return out


def revision_of(engine) -> str | None:
    with engine.connect() as conn:
        return migrate.current_revision(conn)


def throwaway_revision(tmp_path) -> object:
    """A config whose head is a generated revision 9001 (from the packaged template, in a temp
    versions dir) adding a nullable feature column: a feature added after the warehouse filled up."""
    versions = tmp_path / "versions"
    versions.mkdir()
    config = migrate.alembic_config([versions])
    script = command.revision(config, message="add probe_feature", rev_id="9001", head=migrate.head_revision(),
                              version_path=str(versions))
    path = Path(script.path)
    path.write_text(path.read_text()
                    .replace("def upgrade() -> None:\n    pass",
                             "def upgrade() -> None:\n    op.add_column('ml_features_materialized', "
                             "sa.Column('probe_feature', sa.Float(53), comment='a feature added later'))")
                    .replace("def downgrade() -> None:\n    pass", "def downgrade() -> None:\n    "
                             "op.drop_column('ml_features_materialized', 'probe_feature')"))
    return config


def fill(engine, hours: int = 48) -> None:
    """Prices, indicators (closes only) and one macro series' releases, then the feature rows."""
    prices = [{"symbol": s, "time": T0 + timedelta(hours=h), "price": 100.0 + h + 10 * i, "market_cap": None,
               "total_volume": None, "source": "sandbox-synthetic"}
              for i, s in enumerate(SYMBOLS) for h in range(hours)]
    technical = [{"symbol": r["symbol"], "time": r["time"], "close": r["price"]} for r in prices]
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), prices)
        conn.execute(schema.technical_indicators.insert(), technical)
        conn.execute(schema.macro_indicators.insert(), [macro_row("UNRATE", "unemployment_rate", 1, 4.1)])
    if schema.universe_snapshots.name in inspect(engine).get_table_names():
        features.rebuild(engine, T0, T0 + timedelta(hours=hours), SYMBOLS)
        return
    # an older schema than this code's rebuild writes: feature rows with what that table requires
    table = Table(schema.ml_features_materialized.name, MetaData(), autoload_with=engine)
    required = [c.name for c in table.columns if not c.nullable and c.name not in ("symbol", "time", "price")]
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"symbol": r["symbol"], "time": r["time"], "price": r["price"],
                                       **dict.fromkeys(required, 0)} for r in prices])


def macro_row(series_id: str, name: str, day: int, value: float) -> dict:
    """A release of ``series_id`` known at T0 + ``day`` days, 06:00."""
    return {"series_id": series_id, "observation_date": (T0 - timedelta(days=40)).date(),
            "realtime_start": (T0 + timedelta(days=day)).date(), "indicator_name": name, "value": value,
            "known_at": T0 + timedelta(days=day, hours=6), "known_at_rule": "alfred+30h", "frequency": "monthly",
            "units": "Percent", "source": "fred-sandbox-synthetic"}


def all_rows(engine, like: dict | None = None) -> dict:
    """Every row of every table, read through the warehouse's own (reflected) tables, as
    ``{table: (columns, rows)}``; ``like``: only the tables and columns of an earlier result (a
    later revision may add columns)."""
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version" or (like is not None and table.name not in like):
            continue
        names = like[table.name][0] if like is not None else tuple(sorted(c.name for c in table.columns))
        pk = [table.c[c.name] for c in table.primary_key.columns]
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(*(table.c[n] for n in names)).order_by(*pk))]
        out[table.name] = (names, rows)
    return out


# --- the schema a migration creates ---------------------------------------------------------------

def test_fresh_migrate_equals_the_declared_schema_and_is_idempotent(empty):
    migrated, declared = empty(), empty()
    assert migrate.upgrade(migrated) == [f"upgraded the schema from revision none (empty warehouse) to "
                                         f"{migrate.head_revision()}"]
    schema.metadata.create_all(declared)
    with declared.begin() as conn:
        schema.create_onchain_view(conn)
    # column order aside: migrate appends the columns of a macro series added to the packaged file
    assert reflect(migrated, ordered=False) == reflect(declared, ordered=False)
    before = reflect(migrated)
    assert migrate.upgrade(migrated) == []
    schema.create_all(migrated)  # the entry point of the test fixtures and the bench: the same upgrade
    assert reflect(migrated) == before and revision_of(migrated) == migrate.head_revision()
    if migrated.dialect.name == "mysql":  # whatever the database default
        charsets = {before[t.name]["options"]["mysql_default charset"] for t in schema.metadata.sorted_tables}
        assert charsets == {"utf8mb4"}


def test_baseline_creates_exactly_what_init_db_0_1_0_created(empty):
    old, baseline = empty(), empty()
    load_0_1_0(old)
    with baseline.connect() as conn:
        config = migrate.alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, migrate.BASELINE)
        conn.commit()
    assert revision_of(baseline) == migrate.BASELINE
    assert reflect(baseline) == reflect(old)
    assert len(reflect(old)) == 10  # 9 tables and the view: the dump is really there


# --- adoption -------------------------------------------------------------------------------------

def test_migrate_adopts_an_init_db_warehouse_and_keeps_its_rows(empty, cli_env, capsys):
    engine = empty()
    load_0_1_0(engine)
    fill(engine)
    before = all_rows(engine)
    assert len(before["ml_features_materialized"][1]) == 96
    cli_env(engine)
    assert main(["run", "technical", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z"]) == 2
    assert "created by init-db before migrations" in capsys.readouterr().err
    assert all_rows(engine, before) == before  # refused before writing

    assert main(["migrate"]) == 0
    assert f"adopted the existing warehouse at the baseline revision {migrate.BASELINE}" in capsys.readouterr().out
    assert revision_of(engine) == migrate.head_revision()
    assert all_rows(engine, before) == before
    assert main(["migrate"]) == 0 and "adopted" not in capsys.readouterr().out  # idempotent
    migrate.check_current(engine, ())  # every step may run now


def test_migrate_refuses_a_warehouse_that_differs_from_the_baseline(empty):
    engine = empty()
    load_0_1_0(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE crypto_news_sightings"))
        conn.execute(text("DROP INDEX ix_price_data_real_time" + (" ON price_data_real"
                                                                    if engine.dialect.name == "mysql" else "")))
    fill(engine)
    before = all_rows(engine)
    with pytest.raises(migrate.MigrationRefused, match=r"crypto_news_sightings is missing; price_data_real lacks "
                                                       r"the indexes \['ix_price_data_real_time'\].*Nothing was"):
        migrate.upgrade(engine)
    assert "alembic_version" not in inspect(engine).get_table_names()
    assert all_rows(engine, before) == before


# --- upgrades of a populated warehouse -----------------------------------------------------------

def test_upgrade_of_a_populated_warehouse_adds_the_column_and_keeps_every_row(empty, tmp_path):
    engine = empty()
    schema.create_all(engine)
    fill(engine)
    before = all_rows(engine)
    config = throwaway_revision(tmp_path)
    with pytest.raises(migrate.SchemaOutdated, match=rf"at revision {migrate.head_revision()}, this code needs "
                                                     r"9001: run `python -m cryptoetl migrate`"):
        migrate.check_current(engine, config=config)

    assert migrate.upgrade(engine, config=config) == [
        f"upgraded the schema from revision {migrate.head_revision()} to 9001"]
    migrate.check_current(engine, config=config)
    assert all_rows(engine, before) == before  # the declared columns of every row, unchanged
    with engine.connect() as conn:
        probe = conn.execute(text("SELECT COUNT(*), COUNT(probe_feature) FROM ml_features_materialized")).one()
    assert tuple(probe) == (96, 0)  # every row kept; the new column NULL until its rebuild fills it
    assert migrate.upgrade(engine, config=config) == []


def _alembic(engine, fn, revision: str) -> None:
    with engine.connect() as conn:
        config = migrate.alembic_config()
        config.attributes["connection"] = conn
        fn(config, revision)
        conn.commit()


def test_0006_moves_stored_onchain_days_to_their_publication_delay_and_back(empty):
    """Rows written under the old rule (usable from the next midnight) are moved to the next midnight
    + their source's delay, as the loader now writes them; other sources' rows are left alone."""
    from cryptoetl.sources import blockchain_info, etherscan

    engine = empty()
    _alembic(engine, command.upgrade, "0003")
    day = T0.date()
    midnight = T0 + timedelta(days=1)
    rows = [{"symbol": symbol, "date": day, "data_source": source, "is_synthetic": False, "complete_at": midnight}
            for symbol, source in (("BTC", "blockchain.info"), ("ETH", "etherscan-free"), ("XMR", "bench-sandbox"))]
    with engine.begin() as conn:
        conn.execute(schema.crypto_onchain_data.insert(), rows)

    def complete_at() -> dict:
        table = schema.crypto_onchain_data
        with engine.connect() as conn:
            return {s: (c if isinstance(c, datetime) else datetime.fromisoformat(str(c)))
                    for s, c in conn.execute(select(table.c.symbol, table.c.complete_at))}

    assert migrate.upgrade(engine) == [f"upgraded the schema from revision 0003 to {migrate.head_revision()}"]
    assert complete_at() == {"BTC": midnight + blockchain_info.PUBLICATION_DELAY,
                             "ETH": midnight + etherscan.PUBLICATION_DELAY, "XMR": midnight}
    _alembic(engine, command.downgrade, "0003")
    assert complete_at() == dict.fromkeys(("BTC", "ETH", "XMR"), midnight)


def test_0009_copies_each_price_row_into_its_indicator_row_and_back(empty):
    """Indicator rows computed before 0009 get the rest of their price row (market cap, volume,
    source), so that the features rebuild, which now reads them there, loses nothing; an indicator row
    whose price row is gone keeps NULL."""
    engine = empty()
    _alembic(engine, command.upgrade, "0008")
    prices = [{"symbol": "BTC", "time": T0 + timedelta(hours=h), "price": 100.0 + h, "market_cap": 1e9 + h,
               "total_volume": None if h == 1 else 5e6 + h, "source": "coingecko"} for h in range(3)]
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), prices)
        conn.execute(schema.technical_indicators.insert(), [
            {"symbol": "BTC", "time": T0 + timedelta(hours=h), "close": 100.0 + h} for h in range(4)])
    assert migrate.upgrade(engine) == [f"upgraded the schema from revision 0008 to {migrate.head_revision()}"]
    t = schema.technical_indicators
    with engine.connect() as conn:
        got = conn.execute(select(t.c.market_cap, t.c.total_volume, t.c.source).order_by(t.c.time)).all()
    assert [tuple(row) for row in got] == [(1e9, 5e6, "coingecko"), (1e9 + 1, None, "coingecko"),
                                           (1e9 + 2, 5e6 + 2, "coingecko"), (None, None, None)]
    _alembic(engine, command.downgrade, "0008")
    assert {c["name"] for c in inspect(engine).get_columns("technical_indicators")}.isdisjoint(
        schema.PRICE_ROW_COLUMNS)


def test_custom_macro_series_gets_its_columns_from_migrate_and_the_rebuild_fills_them(empty, cli_env, tmp_path,
                                                                                         monkeypatch, capsys):
    import json

    engine = empty()
    schema.create_all(engine)
    fill(engine)
    with engine.begin() as conn:  # the custom series' releases: 2.5 known from day 1 06:00
        conn.execute(schema.macro_indicators.insert(), [macro_row("T10Y2Y", "yield_curve_10y2y", 1, 2.5)])
    packaged = json.loads((Path(schema.__file__).parents[2] / "macro_series.json").read_text())
    custom = tmp_path / "series.json"
    custom.write_text(json.dumps({"series": [*packaged["series"], {
        "series_id": "T10Y2Y", "indicator_name": "yield_curve_10y2y", "frequency": "daily", "units": "Percent",
        "rule": "lag", "lag_business_days": 1}]}))
    cli_env(engine)
    monkeypatch.setenv("CRYPTOETL_MACRO_SERIES", str(custom))
    before = all_rows(engine)
    interval = ["--interval", "2026-01-01T00:00Z/2026-01-03T00:00Z"]

    assert main(["run", "features", *interval]) == 2  # the columns are missing: refused, nothing written
    assert "lacks the feature columns of the macro series ['T10Y2Y']" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert "['macro_yield_curve_10y2y', 'macro_yield_curve_10y2y_age_days']" in capsys.readouterr().out
    assert all_rows(engine, before) == before
    column, table = "macro_yield_curve_10y2y", schema.ml_features_materialized
    query = (select(table.c.time, literal_column(column), literal_column(f"{column}_age_days"))
             .where(table.c.symbol == "BTC").order_by(table.c.time))
    with engine.connect() as conn:
        assert {tuple(r[1:]) for r in conn.execute(query)} == {(None, None)}  # NULL until the rebuild

    assert main(["run", "features", *interval]) == 0
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    assert len(rows) == 48
    for time, value, age in rows:  # point in time: known from day 1 06:00
        if time < T0 + timedelta(days=1, hours=6):
            assert (value, age) == (None, None), time
        else:
            assert value == 2.5 and age == pytest.approx((time - (T0 - timedelta(days=40))) / timedelta(days=1))
    assert main(["migrate"]) == 0 and "added" not in capsys.readouterr().out  # idempotent
    assert main(["rebuild-features"]) == 0  # the full rebuild fills the custom series too
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.ml_features_materialized)
                            .where(text(f"{column} = 2.5"))).scalar() == 2 * (48 - 30)


def test_colliding_custom_macro_series_is_a_config_error(tmp_path, cli_env, sqlite_engine, monkeypatch, capsys):
    custom = tmp_path / "series.json"
    custom.write_text('{"series": [{"series_id": "UNRATE2", "indicator_name": "unemployment_rate", '
                      '"frequency": "monthly", "units": "Percent", "rule": "alfred"}]}')
    cli_env(sqlite_engine)
    monkeypatch.setenv("CRYPTOETL_MACRO_SERIES", str(custom))
    assert main(["migrate"]) == 2
    assert "UNRATE2 and UNRATE both need the feature column macro_unemployment_rate" in capsys.readouterr().err


# --- the guard every step passes -------------------------------------------------------------------

def test_a_step_against_an_older_warehouse_exits_2_before_writing(empty, cli_env, tmp_path, monkeypatch, capsys):
    engine = empty()
    schema.create_all(engine)
    with engine.begin() as conn:
        conn.execute(schema.price_data_real.insert(), [
            {"symbol": "BTC", "time": T0 + timedelta(hours=h), "price": 100.0 + h, "source": "sandbox-synthetic"}
            for h in range(24)])
    config = throwaway_revision(tmp_path)  # this code now has a revision the warehouse lacks
    real = migrate.alembic_config
    monkeypatch.setattr(migrate, "alembic_config", lambda extra=(): real([*extra, tmp_path / "versions"]))
    cli_env(engine)
    argv = ["run", "technical", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z"]

    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: warehouse schema is at revision {migrate.head_revision(real())}, this code needs "
                    "9001: run `python -m cryptoetl migrate`")
    assert dump(engine, schema.technical_indicators) == []
    assert main(["migrate"]) == 0 and revision_of(engine) == migrate.head_revision(config) == "9001"
    assert main(argv) == 0 and len(dump(engine, schema.technical_indicators)) == 24


def test_a_warehouse_newer_than_the_code_is_refused(sqlite_engine, cli_env, capsys):
    with sqlite_engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    cli_env(sqlite_engine)
    assert main(["run", "technical", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z"]) == 2
    assert "revision ffff, which this code does not know" in capsys.readouterr().err
    assert main(["migrate"]) == 2 and revision_of(sqlite_engine) == "ffff"


# --- lock, dry run -----------------------------------------------------------------------------------

def test_two_migrates_at_once_run_one_after_the_other(empty):
    engine = empty()
    results, errors = [], []

    def run():
        try:
            results.append(migrate.upgrade(engine))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results, key=len) == [[], [f"upgraded the schema from revision none (empty warehouse) to "
                                             f"{migrate.head_revision()}"]]


def test_migrate_takes_the_lock_before_reading_the_warehouse(empty, monkeypatch):
    engine = empty()
    with engine.connect() as holder:
        if engine.dialect.name == "sqlite":
            driver = holder.connection.driver_connection
            driver.isolation_level = None
            holder.exec_driver_sql("BEGIN IMMEDIATE")
            other = create_engine(engine.url, connect_args={"timeout": 0.2})
            with pytest.raises(OperationalError, match="database is locked"):
                migrate.upgrade(other)
            holder.rollback()
            driver.isolation_level = ""
        else:
            name = f"cryptoetl.migrate.{engine.url.database}"
            assert holder.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
            monkeypatch.setattr(migrate, "LOCK_TIMEOUT_S", 0)
            with pytest.raises(migrate.MigrationRefused, match="has held the lock"):
                migrate.upgrade(engine)
            holder.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
    assert inspect(engine).get_table_names() == []  # nothing was done without the lock


def test_migrate_sql_prints_what_it_would_run_and_changes_nothing(empty, cli_env, capsys):
    fresh, old = empty(), empty()
    cli_env(fresh)
    assert main(["migrate", "--sql"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE ml_features_materialized" in out and "INSERT INTO alembic_version" in out
    assert inspect(fresh).get_table_names() == []
    load_0_1_0(old)
    cli_env(old)
    assert main(["migrate", "--sql"]) == 0
    out = capsys.readouterr().out
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in out and "CREATE TABLE price" not in out
    assert "alembic_version" not in inspect(old).get_table_names()


def test_the_migrations_ship_with_the_package():
    """setuptools installs packages (directories with __init__.py) and the package-data globs:
    every file Alembic needs must be covered by one or the other."""
    import fnmatch
    import tomllib

    root = Path(migrate.__file__).resolve().parents[1]
    globs = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    needed = [p for p in migrate.MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.name == "script.py.mako" for p in needed) and any(p.name == "0001_baseline.py" for p in needed)
    for path in needed:
        rel = path.relative_to(root).as_posix()
        packaged = path.suffix == ".py" and (path.parent / "__init__.py").exists()
        assert packaged or any(fnmatch.fnmatch(rel, g) for g in globs["cryptoetl"]), rel
