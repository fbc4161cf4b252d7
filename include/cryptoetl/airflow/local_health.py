"""The data health part of ``make run`` and ``make ui``.

- ``api_env(port)``: the local Airflow's REST API with the admin's credentials, as
  ``CRYPTOETL_AIRFLOW_API_URL`` for the tasks, so that the ``data_health`` DAG can create backfills.
  The simple auth manager keeps its passwords in ``$AIRFLOW_HOME/simple_auth_manager_passwords
  .json.generated`` and only generates those it lacks: the admin's is written there first, here.
- ``run_health(settle)``: at the end of the demo, unpause ``data_health``, trigger one run and wait
  for it (and for any backfill it creates). It stays paused while the demo's backfills run: it
  would only report the days not loaded yet.
- ``print_summary(warehouse)``: checks run, failures, holes, fills.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptoetl.steps import get_step

PASSWORDS = "simple_auth_manager_passwords.json.generated"
ADMIN = "admin"
HEALTH_STEP = "health"


def admin_password(home: Path) -> str:
    path = home / PASSWORDS
    users = json.loads(path.read_text()) if path.exists() else {}
    if ADMIN not in users:
        users[ADMIN] = secrets.token_urlsafe(12)
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(users))
    return users[ADMIN]


def login_hint() -> str:
    path = Path(os.environ["AIRFLOW_HOME"]) / PASSWORDS
    if not path.exists():
        return ""
    return "  (login: " + ", ".join(f"{u} / {p}" for u, p in json.loads(path.read_text()).items()) + ")"


def api_env(port: int) -> dict[str, str]:
    password = admin_password(Path(os.environ["AIRFLOW_HOME"]))
    return {"CRYPTOETL_AIRFLOW_API_URL": f"http://{ADMIN}:{password}@localhost:{port}"}


def health_dag_id() -> str:
    return get_step(HEALTH_STEP).dag_id


def run_health(airflow: Callable[..., subprocess.CompletedProcess], settle: Callable[[], None]) -> None:
    dag_id = health_dag_id()
    print(f"· {dag_id}: one run over the last days (holes, stale tables, fills)")
    airflow("dags", "unpause", dag_id)
    airflow("dags", "trigger", dag_id, "--logical-date", datetime.now(UTC).isoformat())
    settle()


def print_summary(warehouse: str) -> None:
    """The health of the demo's warehouse, from the quality results, the actions and a scan."""
    env = dict(os.environ, CRYPTOETL_WAREHOUSE_URL=f"sqlite:///{warehouse}")
    code = ("from cryptoetl.airflow.local_health import _summary; _summary()")
    subprocess.run([sys.executable, "-c", code], env=env, check=False)


def _summary() -> None:
    from sqlalchemy import func, select

    from cryptoetl.warehouse import schema
    from cryptoetl.warehouse.engine import get_engine

    engine = get_engine(os.environ["CRYPTOETL_WAREHOUSE_URL"])
    q, a = schema.data_quality_results, schema.data_health_actions
    with engine.connect() as conn:
        by_status = dict(conn.execute(select(q.c.status, func.count()).group_by(q.c.status)).all())
        failed = conn.execute(select(q.c.table_name, q.c.check_name, q.c.interval_start, q.c.detail)
                              .where(q.c.status == "fail").order_by(q.c.interval_start)).all()
        fills = dict(conn.execute(select(a.c.action, func.count()).group_by(a.c.action)).all())
    print(f"\nData health: {sum(by_status.values())} quality checks recorded ({by_status.get('pass', 0)} passed, "
          f"{by_status.get('warn', 0)} warnings, {by_status.get('fail', 0)} failures); health actions: "
          + (", ".join(f"{n} {action}" for action, n in sorted(fills.items())) or "none"))
    for table, check, start, detail in failed[:10]:
        print(f"  FAILED {table} {check} {start:%Y-%m-%d %H:%M}: {detail}")
    print("  python -m cryptoetl health (the last days' holes and freshness), and the Data health page in the UI:")
    subprocess.run([sys.executable, "-m", "cryptoetl", "health"], env=dict(os.environ), check=False,
                   stderr=subprocess.DEVNULL)
