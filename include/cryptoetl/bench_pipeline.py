"""The pipeline bench: the whole demo through the real Airflow scheduler at production width.

    python -m cryptoetl.bench_pipeline --symbols 320 --days 30     # make bench-pipeline

Runs ``python -m cryptoetl.airflow.local demo`` (the same code as ``make run``) with
``DEMO_SYMBOLS``/``DEMO_DAYS`` in a throwaway Airflow (``.bench/``: its own AIRFLOW_HOME, metadata
database, warehouse file and ports), against the offline sandbox (SYNTHETIC data), then reports:

- wall time of the run, from set-up to the last task;
- tasks and tries, and the share of task time spent starting tasks rather than working: a task's
  duration as Airflow measured it, minus the step's own work, which the step logs
  (``rows written in W s; peak RSS M MiB``, cli.py);
- API calls per coin, as the sandbox counted them (``sandbox-stats.json``, written by the demo);
- the freshness lag: the hourly prices DAG triggered for the hour that just ended, once the backlog
  is done, until its feature rows are in (``freshness.json``, written by the demo);
- peak RSS per step, from the same log lines;
- the derived work the history load caused (every indicator and features run's own work, from the
  same lines, until the backlog settled: ``backlog.json``, written by the demo; the freshness run and
  the health check after it are not the load) against ONE indicator run and ONE features run over the
  whole loaded range, run after
  the demo on the same warehouse (``derived_once``): planning by range (airflow/planning.py) must
  keep it within ``AMPLIFICATION_TARGET``.

Times belong here, never in pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from cryptoetl.airflow import planning, throwaway
from cryptoetl.steps import get_step

ROOT = Path(__file__).resolve().parents[2]
WORK_LINE = re.compile(r"(\w+) \S+: (\d+) rows written in ([\d.]+)s; peak RSS (\d+) MiB")
# The derived steps whose work a history load multiplied (issue 14), by DAG id (from the step registry).
DERIVED_DAGS = {get_step(name).dag_id: name for name in ("technical", "features")}
AMPLIFICATION_TARGET = 1.2


def run_demo(symbols: int, days: int, port_base: int) -> tuple[Path, float, int, dict[str, str]]:
    """The demo in a throwaway Airflow; (its AIRFLOW_HOME, wall seconds, exit code, its environment)."""
    bench = ROOT / ".bench"
    shutil.rmtree(bench, ignore_errors=True)
    home = bench / "airflow"
    home.mkdir(parents=True)
    metadata = throwaway.metadata_url(f"cryptoetl_bench_{hashlib.md5(str(ROOT).encode()).hexdigest()[:8]}", home)
    (home / "metadata-url").write_text(metadata)
    env = throwaway.airflow_env(
        dict(os.environ), home, metadata, bench / "warehouse.db", port_base,
        CRYPTOETL_START_DATE=f"{datetime.now(UTC).date() - timedelta(days=days)}", DEMO_SYMBOLS=str(symbols),
        CRYPTOETL_UNIVERSE=f"top:{symbols}",  # what the demo sets for DEMO_SYMBOLS (derived_once needs it)
        DEMO_DAYS=str(days))
    began = time.monotonic()
    code = subprocess.run([sys.executable, "-m", "cryptoetl.airflow.local", "demo", "--days", str(days),
                           "--timeout", str(6 * 3600)], env=env, check=False).returncode
    return home, time.monotonic() - began, code, env


def task_times(home: Path, metadata_url: str) -> list[dict]:
    """Every finished try: dag, task, duration (s), and the step's work and peak RSS from its log."""
    engine = create_engine(metadata_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT dag_id, task_id, run_id, try_number, start_date, end_date FROM task_instance "
            "WHERE start_date IS NOT NULL AND end_date IS NOT NULL")).mappings().all()
    engine.dispose()
    out = []
    for r in rows:
        log = home / "logs" / f"dag_id={r['dag_id']}" / f"run_id={r['run_id']}" / f"task_id={r['task_id']}" / \
            f"attempt={r['try_number']}.log"
        work = rss = None
        history = False
        if log.exists():
            content = log.read_text(errors="replace")
            history = planning.HISTORY_MARK in content
            for match in WORK_LINE.finditer(content):
                work = (work or 0.0) + float(match.group(3))
                rss = max(rss or 0, int(match.group(4)))
        start, end = (datetime.fromisoformat(v) if isinstance(v, str) else v for v in (r["start_date"], r["end_date"]))
        out.append({"dag": r["dag_id"], "task": r["task_id"], "duration": (end - start).total_seconds(),
                    "work": work, "rss": rss, "history": history,
                    "start": start if start.tzinfo else start.replace(tzinfo=UTC)})
    return out


def derived_once(home: Path, env: dict[str, str]) -> dict[str, float]:
    """One run of each derived step over the whole range the demo loaded, on its warehouse: the work
    seconds each logs (the reference for the history load's derived work)."""
    engine = create_engine(f"sqlite:///{home.parent / 'warehouse.db'}")
    with engine.connect() as conn:
        lo, hi = conn.execute(text("SELECT MIN(time), MAX(time) FROM price_data_real")).one()
    engine.dispose()
    start = datetime.fromisoformat(str(lo)).replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    end = datetime.fromisoformat(str(hi)).replace(minute=0, second=0, microsecond=0, tzinfo=UTC) + timedelta(hours=1)
    # The warehouse by URL: outside a task, Airflow's SDK cannot look the connection up.
    env = {**env, "CRYPTOETL_WAREHOUSE_URL": f"sqlite:///{home.parent / 'warehouse.db'}"}
    work = {}
    for step in DERIVED_DAGS.values():
        out = subprocess.run([sys.executable, "-m", "cryptoetl", "run", step, "--interval",
                              f"{start.isoformat()}/{end.isoformat()}"], env=env, capture_output=True, text=True,
                             check=False)
        if out.returncode:
            raise RuntimeError(f"the reference run of {step} failed (exit {out.returncode}): {out.stderr[-2000:]}")
        work[step] = sum(float(m.group(3)) for m in WORK_LINE.finditer(out.stdout + out.stderr))
    return work


def amplification_row(tries: list[dict], once: dict[str, float], settled_at: datetime | None = None,
                      ) -> tuple[str, str]:
    """The derived work the history load caused against one run of each derived step over its range:
    the tries that rebuilt intervals of a history load (their log says so: ``planning.HISTORY_MARK``)
    and started before the load ``settled_at`` (the demo's ``backlog.json``; after it come the freshness
    run and the health check). The regular runs meanwhile (the hourly increments, which run whether or
    not a load goes on) are reported beside it, not counted."""
    derived = [t for t in tries if t["dag"] in DERIVED_DAGS and t["work"] is not None
               and (settled_at is None or t["start"] < settled_at)]
    runs = {dag: [t for t in derived if t["dag"] == dag and t["history"]] for dag in DERIVED_DAGS}
    regular = [t for t in derived if not t["history"]]
    spent = sum(t["work"] for ts in runs.values() for t in ts)
    reference = sum(once.values())
    ratio = spent / reference if reference else float("inf")
    counts = ", ".join(f"{DERIVED_DAGS[dag]} {len(ts)} runs {sum(t['work'] for t in ts):.1f} s"
                       for dag, ts in runs.items())
    mark = "met" if ratio <= AMPLIFICATION_TARGET else "MISSED"
    return ("derived work of the history load", f"{ratio:.2f}x one run over the range ({counts}; one run each: "
            + ", ".join(f"{step} {s:.1f} s" for step, s in once.items())
            + f"); target <= {AMPLIFICATION_TARGET}x: {mark}; besides, {len(regular)} regular runs meanwhile "
            f"{sum(t['work'] for t in regular):.1f} s")


def report(symbols: int, days: int, wall: float, tries: list[dict], stats: dict,
           freshness: dict | None = None) -> list[tuple[str, str]]:
    rows = [("pipeline: coins x days", f"{symbols} x {days} (SYNTHETIC sandbox, real scheduler)"),
            ("wall time, set-up to last task", f"{wall / 60:.1f} min")]
    measured = [t for t in tries if t["work"] is not None]
    total = sum(t["duration"] for t in measured)
    starting = sum(t["duration"] - t["work"] for t in measured)
    rows.append(("tasks (tries)", f"{len(tries)}"))
    if total:
        overhead = statistics.median(t["duration"] - t["work"] for t in measured)
        rows.append(("time starting tasks, not working", f"{100 * starting / total:.0f}% of task time "
                     f"(median {overhead:.1f} s a task)"))
    calls = stats.get("coingecko", {})
    cg = sum(calls.values()) if isinstance(calls, dict) else 0
    rows.append(("CoinGecko calls per coin", f"{cg / symbols:.1f} ({cg:,} calls; {cg / symbols / days:.2f} "
                 "per coin-day)"))
    if freshness:
        rows.append(("freshness: hour end -> its feature rows", f"{freshness['lag_s']:.0f} s + the scheduler's start "
                     f"delay ({freshness['rows']} rows of {freshness['hour'][11:16]} UTC; the hourly run "
                     "triggered once the backlog was done)"))
    per_step: dict[str, list[int]] = defaultdict(list)
    for t in measured:
        if t["rss"]:
            per_step[t["dag"]].append(t["rss"])
    for dag, values in sorted(per_step.items()):
        rows.append((f"peak RSS, {dag}", f"{max(values)} MiB (median {statistics.median(values):.0f})"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench_pipeline")
    parser.add_argument("--symbols", type=int, default=320)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("CRYPTOETL_PORT_BASE", "8080")) + 20)
    args = parser.parse_args(argv)
    home, wall, code, env = run_demo(args.symbols, args.days, args.port_base)
    stats_file = home / "sandbox-stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    metadata = (home / "metadata-url").read_text().strip()
    fresh_file = home / "freshness.json"
    freshness = json.loads(fresh_file.read_text()) if fresh_file.exists() else None
    try:
        tries = task_times(home, metadata)
        rows = report(args.symbols, args.days, wall, tries, stats, freshness)
        backlog = home / "backlog.json"
        if not code and backlog.exists():
            settled_at = datetime.fromisoformat(json.loads(backlog.read_text())["settled_at"])
            rows.append(amplification_row(tries, derived_once(home, env), settled_at))
    finally:
        throwaway.drop_metadata(metadata)  # the figures are read: the throwaway database goes
    width = max(len(name) for name, _ in rows)
    print("\nPipeline bench (through the Airflow scheduler; SYNTHETIC sandbox data)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if code:
        print(f"\nthe demo FAILED (exit {code}): the figures cover what ran", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
