"""Shared fixtures.

Airflow reads its configuration at import time, so this module points it at a private,
per-session AIRFLOW_HOME before anything imports airflow. Under pytest-xdist each worker is
its own session with its own metadata DB.

MySQL tests run against a real MariaDB/MySQL server (default root@127.0.0.1:3306, override
with CRYPTOETL_TEST_MYSQL_URL) in a throwaway database created for the session. Without a
server they skip locally; with CI=true they fail instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="cryptoetl-test-airflow-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)  # each session's (and xdist worker's) own
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "CRYPTOETL_MODE": "local",
    }
)
# Settings the developer's shell may carry must not leak into tests.
for _name in list(os.environ):
    if _name.startswith(("CRYPTOETL_", "COINGECKO_", "FRED_", "BLOCKCHAIN_INFO_", "ETHERSCAN_", "GUARDIAN_",
                         "CRYPTOPANIC_", "RSS_")) and _name != "CRYPTOETL_TEST_MYSQL_URL":
        os.environ.pop(_name, None)
os.environ["CRYPTOETL_MODE"] = "local"

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MYSQL_URL = os.environ.get("CRYPTOETL_TEST_MYSQL_URL", "mysql+mysqldb://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def sandbox():
    """One offline CoinGecko sandbox (synthetic data) for the session; faults reset per use. Its
    clock is the real one while tests load fixed dates: without the 365-day plan limit, they keep
    passing after those dates are a year old (tests of the limit build their own sandbox)."""
    from cryptoetl.sandbox.server import SandboxServer

    with SandboxServer(port=0, plan_history=False) as server:
        yield server


@pytest.fixture
def sandbox_clean(sandbox):
    sandbox.set_faults([])
    yield sandbox
    sandbox.set_faults([])


_TEMPLATE: list[Path] = []  # one created SQLite warehouse per process, copied for each test


def _sqlite_engine(path: Path):
    """A fresh SQLite warehouse at ``path``: a copy of one created once (creating takes a quarter second)."""
    from cryptoetl.warehouse.engine import get_engine
    from cryptoetl.warehouse.schema import create_all

    if not _TEMPLATE:
        template = _HOME / "warehouse-template.db"
        engine = get_engine(f"sqlite:///{template}")
        create_all(engine)
        engine.dispose()
        _TEMPLATE.append(template)
    shutil.copy(_TEMPLATE[0], path)
    return get_engine(f"sqlite:///{path}")


@pytest.fixture
def sqlite_engine(tmp_path):
    return _sqlite_engine(tmp_path / "warehouse.db")


@pytest.fixture(scope="session")
def mysql_server_url():
    """URL of a throwaway database on the MySQL/MariaDB server, dropped at session end."""
    from sqlalchemy import create_engine, make_url, text

    admin_url = make_url(MYSQL_URL)
    try:
        admin = create_engine(admin_url)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        message = f"MySQL/MariaDB not reachable at {admin_url.render_as_string()}: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: MySQL tests must run, not skip)")
        pytest.skip(message)
    name = f"cryptoetl_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    try:
        yield admin_url.set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def mysql_engine(mysql_server_url):
    """A MySQL warehouse with the schema, emptied before each test."""
    from sqlalchemy import delete

    from cryptoetl.warehouse.engine import get_engine
    from cryptoetl.warehouse.schema import create_all, metadata

    engine = get_engine(mysql_server_url)
    create_all(engine)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def engine(request, tmp_path):
    """The warehouse on each supported backend."""
    if request.param == "sqlite":
        return _sqlite_engine(tmp_path / "warehouse.db")
    return request.getfixturevalue("mysql_engine")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def k8s_dags(monkeypatch_module):
    """Every DAG parsed with the local settings in Kubernetes mode: each task is a pod."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch_module.setenv("CRYPTOETL_MODE", "kubernetes")
    monkeypatch_module.setenv("CRYPTOETL_SYMBOLS", "BTC,ETH")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags
