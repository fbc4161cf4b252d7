"""The command pods and local tasks run: clear errors for bad input, nothing written."""

from __future__ import annotations

import pytest
from helpers import dump

from cryptoetl.cli import main
from cryptoetl.config import ConfigError, Settings
from cryptoetl.intervals import merge, parse_interval
from cryptoetl.warehouse import schema


@pytest.fixture
def warehouse(sqlite_engine, monkeypatch):
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", sqlite_engine.url.render_as_string(hide_password=False))
    return sqlite_engine


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "prices", "--start", "2026-13-01", "--end", "2026-01-02"], "not an ISO-8601"),
        (["run", "prices", "--start", "2026-01-02", "--end", "2026-01-01"], "is not before end"),
        (["run", "prices", "--start", "2026-01-01T00:30", "--end", "2026-01-02"], "hour boundary"),
        (["run", "prices", "--start", "None", "--end", "None"], "refusing to guess"),
        (["run", "prices", "--interval", "2026-01-01"], "expected START/END"),
        (["run", "prices"], "give --interval"),
        (["run", "nosuchstep", "--start", "2026-01-01", "--end", "2026-01-02"], "unknown step 'nosuchstep'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(warehouse, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert dump(warehouse, schema.price_data_real) == []


def test_bad_setting_names_the_variable(warehouse, capsys, monkeypatch):
    monkeypatch.setenv("CRYPTOETL_SYMBOLS", "BTC,NOPE")
    assert main(["init-db"]) == 2
    assert "CRYPTOETL_SYMBOLS" in capsys.readouterr().err


def test_missing_warehouse_connection_is_explained(capsys, monkeypatch):
    monkeypatch.delenv("CRYPTOETL_WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_CONN_ID", "cryptoetl_nowhere")
    assert main(["init-db"]) == 2
    err = capsys.readouterr().err
    assert "CRYPTOETL_WAREHOUSE_URL" in err and "AIRFLOW_CONN_CRYPTOETL_NOWHERE" in err


def test_init_db_creates_the_schema(tmp_path, monkeypatch, capsys):
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("CRYPTOETL_WAREHOUSE_URL", url)
    assert main(["init-db"]) == 0 and main(["init-db"]) == 0
    assert "ml_features_materialized" in inspect(create_engine(url)).get_table_names()


def test_run_over_several_intervals_merges_them(warehouse):
    assert main(["run", "technical", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z",
                 "--interval", "2026-01-02T00:00Z/2026-01-03T00:00Z"]) == 0
    assert merge([parse_interval("2026-01-02T00:00Z/2026-01-03T00:00Z"),
                  parse_interval("2026-01-01T00:00Z/2026-01-02T00:00Z")]) == [
        parse_interval("2026-01-01T00:00Z/2026-01-03T00:00Z")]


def test_settings_reject_unpinned_images_and_hide_secrets():
    with pytest.raises(ConfigError, match="pinned tag"):
        Settings.from_env({"CRYPTOETL_IMAGE": "ghcr.io/x/cryptoetl:latest"})
    with pytest.raises(ConfigError, match="pinned tag"):
        Settings.from_env({"CRYPTOETL_IMAGE": "ghcr.io/x/cryptoetl"})
    shown = repr(Settings.from_env({"COINGECKO_API_KEY": "CG-secret", "CRYPTOETL_WAREHOUSE_URL": "mysql://a:pw@h/d"}))
    assert "CG-secret" not in shown and "pw@" not in shown


def test_rebuild_features_rebuilds_every_price_hour_in_sql(warehouse, capsys):
    """The full-rebuild command: a lost feature table comes back from prices + indicators alone."""
    from datetime import UTC, datetime, timedelta

    from cryptoetl.warehouse.writes import replace_interval

    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [{"symbol": s, "time": start + timedelta(hours=h), "price": 100.0 + h, "source": "sandbox-synthetic"}
            for s in ("BTC", "ETH") for h in range(30)]
    replace_interval(warehouse, schema.price_data_real, rows, time_column="time", start=start,
                     end=start + timedelta(hours=30))
    assert main(["run", "technical", "--interval", "2026-01-01T00:00/2026-01-02T06:00"]) == 0  # returns too
    assert main(["rebuild-features"]) == 0
    built = dump(warehouse, schema.ml_features_materialized)
    assert len(built) == 60 and "60 rows rebuilt" in capsys.readouterr().out
    btc_25h = next(r for r in built if r[0] == "BTC" and r[1] == datetime(2026, 1, 2, 1))
    assert btc_25h[2] == 125.0 and abs(btc_25h[6] - (125.0 / 101.0 - 1)) < 1e-12  # return_24h
    assert main(["rebuild-features", "--start", "2026-01-01", "--end", "2026-01-01T05:00"]) == 0
    assert dump(warehouse, schema.ml_features_materialized) == built  # a range rebuild changes nothing


# -- configuration errors: exit 2 and one line naming the setting, from the real command ---------

def _cli(*args: str, env: dict[str, str]):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cryptoetl", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("command", [["init-db"], ["run", "prices", "--interval", "2026-01-01/2026-01-02"]])
@pytest.mark.parametrize("env,names", [
    ({"CRYPTOETL_HTTP_TIMEOUT": "0"}, "CRYPTOETL_HTTP_TIMEOUT must be > 0"),
    ({"COINGECKO_RATE_PER_MINUTE": "0"}, "COINGECKO_RATE_PER_MINUTE must be > 0"),
    ({"CRYPTOETL_WAREHOUSE_URL": "not a url"}, "CRYPTOETL_WAREHOUSE_URL is not a SQLAlchemy URL"),
    ({"CRYPTOETL_WAREHOUSE_URL": "mysql://"}, "CRYPTOETL_WAREHOUSE_URL='mysql://' names no host"),
    ({"CRYPTOETL_WAREHOUSE_URL": "oracle://etl:s3cretpass@db/dw"}, "the warehouse runs on sqlite, mysql"),
    # a real driver that the image does not ship
    ({"CRYPTOETL_WAREHOUSE_URL": "mysql+cymysql://etl:s3cretpass@db/dw"}, "driver 'mysql+cymysql' is not installed"),
])
def test_configuration_errors_exit_2_with_one_line_naming_the_setting(tmp_path, command, env, names):
    # nothing may be fetched before the configuration is found wrong: this API address answers nothing
    base = {"CRYPTOETL_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}", "COINGECKO_BASE_URL": "http://127.0.0.1:9"}
    result = _cli(*command, env={**base, **env})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert names in result.stderr and "s3cretpass" not in result.stderr + result.stdout
    assert not (tmp_path / "w.db").exists()


# -- a database error: its own message, on the last line ------------------------------------------

def test_a_failed_step_ends_with_one_line_carrying_the_database_message(sandbox_clean, sqlite_engine):
    from sqlalchemy import text

    with sqlite_engine.begin() as conn:  # a constraint the write breaks, with the database's own words
        conn.execute(text("CREATE TRIGGER no_prices BEFORE INSERT ON price_data_real "
                          "BEGIN SELECT RAISE(ABORT, 'synthetic constraint: no prices today'); END"))
    env = {**sandbox_clean.env(), "COINGECKO_RATE_PER_MINUTE": "60000", "CRYPTOETL_SYMBOLS": "BTC",
           "CRYPTOETL_WAREHOUSE_URL": sqlite_engine.url.render_as_string(hide_password=False)}
    result = _cli("run", "prices", "--interval", "2026-01-01T00:00Z/2026-01-02T00:00Z", env=env)
    assert result.returncode == 1
    assert "Traceback" in result.stderr  # the details stay available above
    assert result.stderr.splitlines()[-1] == (
        "error: step prices failed: IntegrityError: synthetic constraint: no prices today")
    assert dump(sqlite_engine, schema.price_data_real) == []


def test_failure_summary_prefers_the_database_message_to_sqlalchemy_text(tmp_path):
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from cryptoetl.cli import failure_summary

    path = tmp_path / "ro.db"
    create_engine(f"sqlite:///{path}").connect().close()
    readonly = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(OperationalError) as info, readonly.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert "sqlalche.me" in str(info.value)  # what the last line used to be
    assert failure_summary(info.value) == "OperationalError: attempt to write a readonly database"
    assert failure_summary(KeyError("x")) == "KeyError: 'x'"
