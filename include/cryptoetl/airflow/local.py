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

``ui`` starts the sandbox and Airflow and waits for Ctrl-C, to browse the runs. ``env`` prints the
settings a shell needs to use the same Airflow and the sandbox (``eval "$(make -s env)"``).

Set-up runs again only when what it depends on changed (``.airflow/setup.done``). Every port comes
from one setting, ``CRYPTOETL_PORT_BASE`` (default 8080: the UI and API on it, the sandbox, the log
servers and the scheduler's health check on the next four), so two checkouts run side by side. The
processes live in ``local_stack.py``; watching the runs and explaining failures in ``local_watch.py``.
The Airflow CLI is used for every action a user would take; the ORM only to watch progress.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptoetl.airflow import local_health, local_watch
from cryptoetl.airflow.local_stack import Stack, airflow_command
from cryptoetl.config import ConfigError, Settings, local_ports
from cryptoetl.sources import registry
from cryptoetl.sources.coingecko import intraday_cron
from cryptoetl.steps import get_step, steps

# The pools as code: written from the source specs (``python -m cryptoetl pools``), imported here and
# by the Helm chart's migration job.
POOLS_FILE = Path(__file__).resolve().parents[2] / "pools.json"


# Runs before the backfills: the other steps load the coins of its snapshot (CRYPTOETL_UNIVERSE=top:N).
FIRST_STEP = "universe"


def demo_universe(env: dict[str, str] | None = None) -> str | None:
    """``DEMO_SYMBOLS=N``: the demo runs over the top N coins of the sandbox's market, i.e.
    ``CRYPTOETL_UNIVERSE=top:N`` (set here for every process the demo starts); the value set."""
    env = os.environ if env is None else env
    raw = (env.get("DEMO_SYMBOLS") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 5000:
        raise SystemExit(f"DEMO_SYMBOLS={raw!r}: use a number of coins from 1 to 5000 (the sandbox serves 500+)")
    env["CRYPTOETL_UNIVERSE"] = f"top:{int(raw)}"
    return env["CRYPTOETL_UNIVERSE"]


def backfill_dags() -> tuple[str, ...]:
    """The source DAGs backfilled over the demo window (prices then trigger technical_indicators,
    and so on). A source that cannot backfill (RSS) is only unpaused: it runs for the latest interval."""
    return tuple(step.dag_id for step in steps().values() if step.source and step.backfillable)


def dag_ids() -> tuple[str, ...]:
    """Every DAG of the pipeline, as the step registry has them."""
    return tuple(step.dag_id for step in steps().values())


def sandbox_env() -> dict[str, str]:
    """The keys (and plans) the sandbox accepts, from each source's spec. SYNTHETIC data only."""
    return registry.sandbox_env()

# The demo scores news with tiny random models built offline (the Hugging Face hub is not
# reachable, and real weights are ~1 GB): same code path, SYNTHETIC scores, not meaningful.
DEMO_MODEL_IDS = {"cryptobert": "synthetic/tiny-random-cryptobert", "finbert": "synthetic/tiny-random-finbert"}

def ports(base: int | None = None) -> dict[str, int]:
    """Every local port, from ``CRYPTOETL_PORT_BASE`` (or ``base``)."""
    try:
        return local_ports(None if base is None else {"CRYPTOETL_PORT_BASE": str(base)})
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def airflow_port_env(port: dict[str, int]) -> dict[str, str]:
    """Airflow's settings for those ports, the execution API's URL included (tasks call it)."""
    return {
        "AIRFLOW__API__PORT": str(port["api"]),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port['api']}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port['api']}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port["worker_log"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port["trigger_log"]),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(port["scheduler_health"]),
    }


def sandbox_client_env(sandbox_urls: dict[str, str]) -> dict[str, str]:
    """What points every client at the sandbox: base URLs, the keys it accepts, no rate waiting."""
    env = {f"{name.upper()}_BASE_URL": url for name, url in sandbox_urls.items()}
    env.update(sandbox_env())
    env.update({f"{name.upper()}_RATE_PER_MINUTE": os.environ.get(f"{name.upper()}_RATE_PER_MINUTE", "6000")
                for name in sandbox_urls})
    return env


def _airflow(*args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess:
    cmd = airflow_command(*args)
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


def _setup_fingerprint() -> str:
    """What set-up depends on: the pools, the warehouse code (schema, migrations), the macro series
    files (a new series is a new column), the metadata DB, the warehouse file and the version."""
    from cryptoetl import __version__

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    custom = os.environ.get("CRYPTOETL_MACRO_SERIES", "").strip()
    for path in [POOLS_FILE, package / "macro_series.json", *sorted((package / "warehouse").rglob("*.py")),
                 *([Path(custom)] if custom and Path(custom).is_file() else [])]:
        digest.update(path.read_bytes())
    digest.update(custom.encode())
    for part in (__version__, os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""), warehouse_file()):
        digest.update(part.encode())
    return digest.hexdigest()


def setup(force: bool = False) -> None:
    """Airflow metadata DB, pools, warehouse connection and schema; skipped when nothing changed."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp, fingerprint = home / "setup.done", _setup_fingerprint()
    if not force and Path(warehouse_file()).exists() and stamp.exists() and stamp.read_text() == fingerprint:
        print(f"· set-up is current ({stamp}); skipping it")
        return
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
    subprocess.run([sys.executable, "-m", "cryptoetl", "migrate"], env=env, check=True)
    stamp.write_text(fingerprint)


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


def _child_env(sandbox) -> dict[str, str]:
    """The environment of the Airflow processes: every client pointed at the sandbox, and the tiny
    SYNTHETIC sentiment models unless real ones are configured."""
    return {**sandbox_client_env(sandbox.urls()), **demo_models()}


def _stack(port: dict[str, int]) -> Stack:
    env = lambda sb: {**_child_env(sb), **local_health.api_env(port["api"])}  # noqa: E731
    return Stack(port["api"], port["sandbox"], child_env=env,
                 log_path=Path(os.environ["AIRFLOW_HOME"]) / "standalone.log")


def pin_universe(home: Path, universe: str) -> None:
    """The local Airflow keeps one demo universe: a backfill skips the days it already loaded, so
    after another universe it would leave them with the old coins. Refuse, and say what to do."""
    pinned = home / "demo-universe"
    if pinned.exists() and pinned.read_text().strip() != universe:
        raise SystemExit(f"this local Airflow ran the demo over the universe {pinned.read_text().strip()!r}, not "
                         f"{universe!r}: its backfills would skip the days already loaded. Run `make clean` "
                         "first (it removes the local Airflow and warehouse), or keep the same DEMO_SYMBOLS")
    home.mkdir(parents=True, exist_ok=True)
    pinned.write_text(universe)


def demo(days: int, port: dict[str, int], timeout: float) -> int:
    pin_universe(Path(os.environ["AIRFLOW_HOME"]), os.environ.get("CRYPTOETL_UNIVERSE") or "the packaged file")
    setup()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, last = today - timedelta(days=days), today - timedelta(days=1)
    began = time.monotonic()
    with _stack(port) as stack:
        local_watch.wait_for_dags(dag_ids())
        created = datetime.now(UTC)
        local_watch.run_first(get_step(FIRST_STEP).dag_id, unpause=lambda dag: _airflow("dags", "unpause", dag),
                              trigger=lambda dag: _airflow("dags", "trigger", dag))
        # Backfill first, unpause second: the scheduler then finds a run for every logical
        # date of the window and its catch-up (from CRYPTOETL_START_DATE) creates none twice.
        # Backfill runs of a paused DAG stay queued, so unpausing is what starts them.
        for dag_id in backfill_dags():
            print(f"· airflow backfill create --dag-id {dag_id} --from-date {start:%Y-%m-%d} "
                  f"--to-date {last:%Y-%m-%d}  ({days} daily intervals)")
            local_watch.cancel_open_backfills(dag_id)
            # "failed": a repeated `make run` re-runs what failed before and skips what succeeded.
            _airflow("backfill", "create", "--dag-id", dag_id, "--from-date", f"{start:%Y-%m-%d}",
                     "--to-date", f"{last:%Y-%m-%d}", "--max-active-runs", "4", "--reprocess-behavior", "failed")
        pipeline = [dag for dag in dag_ids() if dag != local_health.health_dag_id()]  # health: at the end
        _airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", "^(" + "|".join(pipeline) + ")$")
        home = Path(os.environ["AIRFLOW_HOME"])
        failure = None
        def settle() -> None:
            local_watch.watch(lambda: local_watch.snapshot(dag_ids(), backfill_dags(), created),
                              timeout=timeout, explain=lambda task_try: local_watch.explain(task_try, home))

        try:
            settle()
            # The history load ends here (what follows: leftovers, the freshness run, the health
            # check); ``make bench-pipeline`` counts its derived work up to this moment.
            (home / "backlog.json").write_text(json.dumps({"settled_at": datetime.now(UTC).isoformat()}))
            _score_leftovers(start, last, settle)
            if intraday_cron(Settings.from_env())[0]:  # the quota allows hourly runs: time one
                local_watch.measure_freshness(dag_id=get_step("prices_hourly").dag_id, settle=settle, home=home,
                                              trigger=_trigger_latest_interval,
                                              warehouse=warehouse_file())
            local_health.run_health(_airflow, settle)
        except SystemExit as exc:  # a failed task or run: still stop Airflow and show what was loaded
            failure = exc
        calls = _save_sandbox_stats(stack.sandbox, home / "sandbox-stats.json")
    verb = "stopped" if failure else "finished"
    print(f"\nPipeline {verb} after {time.monotonic() - began:.0f}s through the Airflow scheduler; the sandbox "
          f"answered {calls}.")
    # Outside a task the Airflow 3 SDK cannot read metastore connections: name the file directly.
    env = dict(os.environ, CRYPTOETL_WAREHOUSE_URL=f"sqlite:///{warehouse_file()}")
    subprocess.run([sys.executable, "-m", "cryptoetl", "summary"], env=env, check=False)
    local_health.print_summary(warehouse_file())
    _print_ui_help(port["api"])
    if failure is not None:
        print(f"\nFAILED: {failure}\nLogs: {home / 'logs'} and {home / 'standalone.log'} (or the web UI: make ui)",
              file=sys.stderr)
        return 1
    return 0


def _trigger_latest_interval(dag_id: str) -> None:
    """Trigger a run for the latest interval that has ended: a manual run of Airflow 3 gets a data
    interval only with a logical date (then the timetable's interval that ended before it)."""
    _airflow("dags", "trigger", dag_id, "--logical-date", datetime.now(UTC).isoformat())


def _score_leftovers(start: datetime, last: datetime, settle) -> None:
    """apache/airflow#56050: an asset event that arrives while a derived DAG's run is being created can
    stay unconsumed until the next event, leaving news of the window unscored. In production the next
    hourly event brings them in; the demo ends here, so it runs the README's backfill once, and waits."""
    from cryptoetl.report import unscored_days
    from cryptoetl.warehouse.engine import get_engine

    days = unscored_days(get_engine(f"sqlite:///{warehouse_file()}"), start, last + timedelta(days=1))
    if not days:
        return
    lo, hi = min(days) - timedelta(days=1), max(days)
    dag_id = get_step("sentiment").dag_id
    print(f"· {sum(days.values())} articles of {', '.join(map(str, sorted(days)))} were left unscored (apache/"
          f"airflow#56050): airflow backfill create --dag-id {dag_id} --from-date {lo} --to-date {hi} "
          "--reprocess-behavior completed")
    result = _airflow("backfill", "create", "--dag-id", dag_id, "--from-date", f"{lo}", "--to-date", f"{hi}",
                      "--reprocess-behavior", "completed", check=False)
    if result.returncode != 0:  # e.g. before 02:00 UTC the last day's interval has not ended yet
        print(f"  (not now: {(result.stderr or result.stdout).strip().splitlines()[-1:]}; the next scheduled "
              "run scores them)")
        return
    settle()


def _save_sandbox_stats(sandbox, path: Path) -> str:
    """The sandbox's call counts into ``path`` (``make bench-pipeline`` reads them); a summary line."""
    stats = sandbox.stats()
    path.write_text(json.dumps(stats, indent=1, sort_keys=True))
    per_source = ", ".join(f"{name} {sum(calls.values()):,}" for name, calls in stats.items()
                           if isinstance(calls, dict))
    return f"{stats.get('total', 0):,} API calls ({per_source})"


def _print_ui_help(port: int) -> None:
    print(f"\nWeb UI: run `make ui`, then open http://localhost:{port}" + local_health.login_hint())


def ui(port: dict[str, int]) -> int:
    setup()
    with _stack(port):
        print(f"\nWeb UI: http://localhost:{port['api']}" + local_health.login_hint())
        print("Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def print_env(port: dict[str, int], real_apis: bool) -> None:
    """Exports for a shell: the ports, the warehouse, and (unless ``real_apis``) the sandbox."""
    for name, value in airflow_port_env(port).items():
        print(f"export {name}={value}")
    print(f"export CRYPTOETL_WAREHOUSE_URL=sqlite:///{warehouse_file()}")
    if real_apis:
        print("# REAL_APIS=1: clients reach the real APIs with your own keys (nothing of the sandbox set)")
        return
    root = f"http://127.0.0.1:{port['sandbox']}"
    urls = registry.sandbox_urls(root)
    print(f"# every client points at the offline sandbox ({root}: SYNTHETIC data), which answers while "
          "`make ui` or `make run` runs (or `python -m cryptoetl sandbox --port "
          f"{port['sandbox']}`); REAL_APIS=1 make env for the real APIs")
    for name, value in sandbox_client_env(urls).items():
        print(f"export {name}={value}")


def _interrupt(*_):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.airflow.local")
    parser.add_argument("command", choices=["setup", "demo", "ui", "env"])
    parser.add_argument("--days", type=int, default=int(os.environ.get("DEMO_DAYS", "14")))
    parser.add_argument("--timeout", type=float, default=2400, help="seconds for the pipeline to settle")
    parser.add_argument("--force", action="store_true", help="setup: run it even if nothing changed")
    args = parser.parse_args(argv)
    port = ports()
    if args.command == "env":
        print_env(port, real_apis=os.environ.get("REAL_APIS", "") not in ("", "0"))
        return 0
    os.environ.update(airflow_port_env(port))
    if universe := demo_universe():
        print(f"· DEMO_SYMBOLS: CRYPTOETL_UNIVERSE={universe} (the sandbox's market, SYNTHETIC)")
    # `kill` (SIGTERM) and a closed terminal (SIGHUP) stop everything as Ctrl-C does: the stack's
    # clean-up runs either way (their default would end this process without it).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        if args.command == "setup":
            setup(force=args.force)
            return 0
        if args.command == "demo":
            return demo(args.days, port, args.timeout)
        return ui(port)
    except KeyboardInterrupt:
        try:
            print("\ninterrupted: everything this run started has been stopped", file=sys.stderr)
        except OSError:  # stderr may be a pipe whose reader is gone
            pass
        return 130


if __name__ == "__main__":
    sys.exit(main())
