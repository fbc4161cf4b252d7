"""Local mode runner behind ``make run`` and ``make ui``.

``python -m cryptoetl.airflow.local demo`` does, on the Airflow the Makefile configured:
  1. set-up, idempotent: metadata DB migration, pools import, the warehouse connection,
     the warehouse schema;
  2. starts the offline sandbox API (SYNTHETIC data) and ``airflow standalone`` (API
     server + UI, scheduler, DAG processor, triggerer);
  3. unpauses the DAGs and runs ``airflow backfill create`` for prices over the demo window;
  4. waits until the backfill and every run it triggers downstream (technical indicators,
     news sentiment, ml_features, through asset events) are finished; sentiment uses tiny
     SYNTHETIC models built offline (scores not meaningful) unless CRYPTOETL_*_PATH name real ones;
  5. stops Airflow and prints a summary.

``ui`` starts the sandbox and Airflow and waits for Ctrl-C, to browse the runs.
The Airflow CLI is used for every action a user would take; the ORM only to watch progress.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptoetl.sources import registry
from cryptoetl.steps import steps

# The pools as code: written from the source specs (``python -m cryptoetl pools``), imported here and
# by the Helm chart's migration job.
POOLS_FILE = Path(__file__).resolve().parents[2] / "pools.json"


def backfill_dags() -> tuple[str, ...]:
    """The source DAGs backfilled over the demo window (prices then trigger technical_indicators,
    and so on). A source that cannot backfill (RSS) is only unpaused: it runs for the latest interval."""
    return tuple(step.dag_id for step in steps().values() if step.source and step.backfillable)


def dag_ids() -> tuple[str, ...]:
    """Every DAG of the pipeline, as the step registry has them."""
    return tuple(step.dag_id for step in steps().values())


def sandbox_env() -> dict[str, str]:
    """The keys (and plans) the sandbox accepts, from each source's spec. SYNTHETIC data only."""
    return {name: value for spec in registry.sources() for name, value in spec.sandbox_env.items()}

# The demo scores news with tiny random models built offline (the Hugging Face hub is not
# reachable, and real weights are ~1 GB): same code path, SYNTHETIC scores, not meaningful.
DEMO_MODEL_IDS = {"cryptobert": "synthetic/tiny-random-cryptobert", "finbert": "synthetic/tiny-random-finbert"}

def _airflow(*args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    result = subprocess.run(cmd, capture_output=quiet, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"`airflow {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
    return result


def demo_models() -> dict[str, str]:
    """Build (once) the tiny SYNTHETIC sentiment models under $AIRFLOW_HOME/models; their env."""
    from cryptoetl.sentiment import tiny

    root = Path(os.environ["AIRFLOW_HOME"]) / "models"
    paths = {key: root / key for key in DEMO_MODEL_IDS}
    if not all((path / "config.json").exists() for path in paths.values()):
        print(f"· building tiny SYNTHETIC sentiment models in {root} (offline; {tiny.SYNTHETIC_NOTE})")
        paths = tiny.build_all(root)
    env = {}
    for key, path in paths.items():
        if os.environ.get(f"CRYPTOETL_{key.upper()}_PATH"):
            continue  # a real model provided by the user wins
        env[f"CRYPTOETL_{key.upper()}_PATH"] = str(path)
        env[f"CRYPTOETL_{key.upper()}_MODEL_ID"] = DEMO_MODEL_IDS[key]
    return env


def warehouse_file() -> str:
    home = Path(os.environ["AIRFLOW_HOME"])
    return os.environ.get("CRYPTOETL_WAREHOUSE_FILE", str(home.parent / "data" / "warehouse.db"))


def setup() -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    print("· migrating the Airflow metadata DB")
    _airflow("db", "migrate")
    pools = POOLS_FILE
    print(f"· importing pools from {pools}")
    _airflow("pools", "import", str(pools))
    warehouse = warehouse_file()
    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    conn_id = os.environ.get("CRYPTOETL_WAREHOUSE_CONN_ID", "cryptoetl_warehouse")
    ensure_warehouse_connection(conn_id, warehouse)
    env = dict(os.environ, CRYPTOETL_WAREHOUSE_URL=f"sqlite:///{warehouse}")
    subprocess.run([sys.executable, "-m", "cryptoetl", "init-db"], env=env, check=True)


def ensure_warehouse_connection(conn_id: str, path: str) -> None:
    """The Airflow connection ``conn_id`` -> SQLite file ``path``, created or repaired.

    Needs the sqlite provider: without it the CLI silently stores an unknown type as
    ``generic``, which the warehouse code then (rightly) refuses."""
    existing = _airflow("connections", "get", conn_id, "-o", "json", check=False)
    if existing.returncode == 0:
        # The JSON is the last line; configuration notices may precede it on stdout.
        lines = [line for line in existing.stdout.splitlines() if line.startswith("[")]
        try:
            (conn,) = json.loads(lines[-1])
        except (IndexError, ValueError):
            conn = {}
        if conn.get("conn_type") == "sqlite" and conn.get("host") == path:
            return
        print(f"· replacing Airflow connection {conn_id} ({conn.get('conn_type')} {conn.get('host')})")
        _airflow("connections", "delete", conn_id)
    print(f"· creating Airflow connection {conn_id} -> sqlite {path}")
    _airflow("connections", "add", conn_id, "--conn-type", "sqlite", "--conn-host", path)


class Stack:
    """The sandbox (in-process thread) and ``airflow standalone`` (child process)."""

    def __init__(self, port: int, sandbox_port: int):
        self.port = port
        self.sandbox_port = sandbox_port
        self.proc: subprocess.Popen | None = None
        self.sandbox = None

    def __enter__(self) -> Stack:
        from cryptoetl.sandbox.server import SandboxServer

        self.sandbox = SandboxServer(port=self.sandbox_port)
        self.sandbox.start()
        # Every client of every task reaches the sandbox through its base-URL setting, with the
        # keys the sandbox accepts; the sandbox answers fast, so no production-rate waiting.
        os.environ.update(self.sandbox.env())
        os.environ.update(sandbox_env())
        os.environ.update(demo_models())
        for name in self.sandbox.urls():
            os.environ.setdefault(f"{name.upper()}_RATE_PER_MINUTE", "6000")
        print(f"· sandbox APIs (SYNTHETIC data) on {self.sandbox.root_url}: " + ", ".join(self.sandbox.urls()))
        log_path = Path(os.environ["AIRFLOW_HOME"]) / "standalone.log"
        print(f"· starting airflow standalone (log: {log_path})")
        self.log = open(log_path, "a")  # noqa: SIM115 - closed in __exit__
        # standalone starts its components as `airflow ...` from PATH: put this venv first.
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 240) -> None:
        url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"airflow standalone exited early (code {self.proc.returncode}); see the log")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    health = json.load(resp)
                if health.get("scheduler", {}).get("status") == "healthy":
                    print(f"· Airflow is up: http://localhost:{self.port}")
                    return
            except OSError:
                pass
            time.sleep(2)
        raise SystemExit(f"Airflow did not become healthy within {timeout:.0f}s")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            print("· stopping Airflow")
            # standalone stops cleanly on SIGINT; SIGINT is ignored when started from a
            # non-interactive background shell, so fall back to SIGTERM, then SIGKILL. Wait for
            # the whole process group, not just standalone: its scheduler can outlive it.
            for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                if _signal_group_and_wait(self.proc, sig, grace):
                    break
        if self.sandbox:
            self.sandbox.stop()
        self.log.close()


def _signal_group_and_wait(leader: subprocess.Popen, sig: int, grace: float) -> bool:
    """Send ``sig`` to the leader's process group; True once every member has exited."""
    pgid = leader.pid
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        leader.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def cancel_open_backfills(dag_id: str) -> None:
    """A backfill left unfinished by an interrupted demo blocks a new one ("one running backfill
    per DAG"): cancel it as the UI's Cancel button does (pause it, fail its queued runs, mark it
    completed). The new backfill's ``--reprocess-behavior failed`` then re-runs what failed."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    with create_session() as session:
        for backfill in session.scalars(select(Backfill).where(Backfill.dag_id == dag_id,
                                                                Backfill.completed_at.is_(None))):
            print(f"· cancelling unfinished backfill {backfill.id} of {dag_id} (from an earlier run)")
            backfill.is_paused = True
            runs = select(BackfillDagRun.dag_run_id).where(BackfillDagRun.backfill_id == backfill.id)
            session.execute(
                update(DagRun)
                .where(DagRun.id.in_(runs), DagRun.state.in_(("queued", "running")))
                .values(state="failed")
                .execution_options(synchronize_session=False)
            )
            backfill.completed_at = datetime.now(UTC)


def wait_for_dags(timeout: float = 180) -> None:
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            found = set(session.scalars(select(SerializedDagModel.dag_id).where(
                SerializedDagModel.dag_id.in_(dag_ids()))))
        if found == set(dag_ids()):
            return
        time.sleep(2)
    raise SystemExit(f"DAGs not parsed within {timeout:.0f}s; check `airflow dags list-import-errors`")


def _failing_tasks(since: datetime) -> list[str]:
    """Task instances of the demo's DAGs that failed (or wait to retry) since ``since``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state)
            .where(TaskInstance.dag_id.in_(dag_ids()), TaskInstance.state.in_(("up_for_retry", "failed")),
                   TaskInstance.start_date >= since)
        ).all()
    return [f"  {dag_id} / {run_id} / {task_id}: {state}" for dag_id, run_id, task_id, state in rows]


def wait_until_settled(backfill_started: datetime, timeout: float) -> dict[str, dict[str, int]]:
    """Block until the backfill is complete and no run or queued asset trigger is pending."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, or_, select

    deadline = time.monotonic() + timeout
    quiet_polls = 0
    last = None
    while time.monotonic() < deadline:
        with create_session() as session:
            backfill_open = session.scalar(select(func.count()).select_from(Backfill).where(
                Backfill.dag_id.in_(backfill_dags()), Backfill.completed_at.is_(None)))
            queued_triggers = session.scalar(select(func.count()).select_from(AssetDagRunQueue))
            rows = session.execute(
                select(DagRun.dag_id, DagRun.state, func.count())
                .where(DagRun.dag_id.in_(dag_ids()),
                       or_(DagRun.queued_at >= backfill_started, DagRun.state.in_(("queued", "running"))))
                .group_by(DagRun.dag_id, DagRun.state)
            ).all()
        states: dict[str, dict[str, int]] = {d: {} for d in dag_ids()}
        for dag_id, state, n in rows:
            states[dag_id][str(state)] = n
        active = sum(n for s in states.values() for k, n in s.items() if k in ("queued", "running"))
        summary = "  ".join(
            f"{d}: " + (",".join(f"{k}={v}" for k, v in sorted(s.items())) or "-") for d, s in states.items())
        if summary != last:
            print(f"  {datetime.now(UTC):%H:%M:%S} {summary}")
            last = summary
        if failing := _failing_tasks(backfill_started):
            raise SystemExit(
                "a task failed (Airflow will retry it, but the demo stops here so you see why):\n"
                + "\n".join(failing) + f"\nLogs: {os.environ['AIRFLOW_HOME']}/logs (or the web UI: make ui)")
        settled = not backfill_open and not queued_triggers and active == 0
        quiet_polls = quiet_polls + 1 if settled else 0
        if quiet_polls >= 3:  # asset events can land between two polls: require a quiet spell
            return states
        time.sleep(3)
    raise SystemExit(f"pipeline did not settle within {timeout:.0f}s; see {os.environ['AIRFLOW_HOME']}/logs")


def demo(days: int, port: int, sandbox_port: int, timeout: float) -> int:
    setup()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, last = today - timedelta(days=days), today - timedelta(days=1)
    began = time.monotonic()
    with Stack(port, sandbox_port):
        wait_for_dags()
        created = datetime.now(UTC)
        # Backfill first, unpause second: the scheduler then finds a run for every logical
        # date of the window and its catch-up (from CRYPTOETL_START_DATE) creates none twice.
        # Backfill runs of a paused DAG stay queued, so unpausing is what starts them.
        for dag_id in backfill_dags():
            print(f"· airflow backfill create --dag-id {dag_id} --from-date {start:%Y-%m-%d} "
                  f"--to-date {last:%Y-%m-%d}  ({days} daily intervals)")
            cancel_open_backfills(dag_id)
            # "failed": a repeated `make run` re-runs what failed before and skips what succeeded.
            _airflow("backfill", "create", "--dag-id", dag_id, "--from-date", f"{start:%Y-%m-%d}",
                     "--to-date", f"{last:%Y-%m-%d}", "--max-active-runs", "4", "--reprocess-behavior", "failed")
        _airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", "^(" + "|".join(dag_ids()) + ")$")
        states = wait_until_settled(created, timeout)
    failed = {d: s.get("failed", 0) for d, s in states.items() if s.get("failed")}
    print(f"\nPipeline finished in {time.monotonic() - began:.0f}s through the Airflow scheduler.")
    # Outside a task the Airflow 3 SDK cannot read metastore connections: name the file directly.
    env = dict(os.environ, CRYPTOETL_WAREHOUSE_URL=f"sqlite:///{warehouse_file()}")
    subprocess.run([sys.executable, "-m", "cryptoetl", "summary"], env=env, check=False)
    _print_ui_help(port)
    if failed:
        print(f"\nFAILED runs: {failed}. Open the UI (make ui) or read {os.environ['AIRFLOW_HOME']}/logs.")
        return 1
    return 0


def _login_hint() -> str:
    pw_file = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    if not pw_file.exists():
        return ""
    return "  (login: " + ", ".join(f"{u} / {p}" for u, p in json.loads(pw_file.read_text()).items()) + ")"


def _print_ui_help(port: int) -> None:
    print(f"\nWeb UI: run `make ui`, then open http://localhost:{port}" + _login_hint())


def _interrupt(*_):
    raise KeyboardInterrupt


def ui(port: int, sandbox_port: int) -> int:
    setup()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops Airflow cleanly too, like Ctrl-C
    with Stack(port, sandbox_port):
        print(f"\nWeb UI: http://localhost:{port}" + _login_hint())
        print("Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.airflow.local")
    parser.add_argument("command", choices=["setup", "demo", "ui"])
    parser.add_argument("--days", type=int, default=int(os.environ.get("DEMO_DAYS", "14")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW__API__PORT", "8080")))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8899")))
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup()
        return 0
    if args.command == "demo":
        return demo(args.days, args.port, args.sandbox_port, args.timeout)
    return ui(args.port, args.sandbox_port)


if __name__ == "__main__":
    sys.exit(main())
