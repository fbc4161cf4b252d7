"""``make bench`` (parse section): what each DAG file costs the DAG processor, over a bare DAG.

Airflow's DAG processor parses every file again and again (every ``refresh_interval`` and on each
change), in a process that already has Airflow itself imported. So the cost that matters is what a
file adds on top of that: here each file is parsed in a fresh interpreter that has imported
``airflow.sdk`` and the DAG processor's own module (and, in Kubernetes mode, the pod operator)
first, timed from just before
to just after the file runs, best of ``--repeat`` runs. The same is done for a bare DAG of one task
of the same operator family; the difference is the file's own cost.

    python -m cryptoetl.bench_parse [--repeat 3] [--dags DIR] [--mode local|kubernetes]

Timings live here (``make bench``), never in pytest; pytest checks what is imported at parse time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 0.3  # per file over a bare DAG (issue: "one place per concept")
HEAVY = ("pandas", "numpy", "torch", "transformers", "cryptoetl.warehouse")

# What the DAG processor has imported before it parses a file (its own module imports Airflow's models).
_PRELOAD = {
    "local": "import airflow.sdk\nimport airflow.dag_processing.processor",
    "kubernetes": "import airflow.sdk\nimport airflow.dag_processing.processor\n"
                  "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
}
_BARE = {
    "local": """from datetime import datetime
from airflow.sdk import DAG, BaseOperator
class Noop(BaseOperator):
    def execute(self, context):
        pass
with DAG("bare", schedule=None, start_date=datetime(2025, 1, 1)) as dag:
    Noop(task_id="noop")
""",
    "kubernetes": """from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
with DAG("bare", schedule=None, start_date=datetime(2025, 1, 1)) as dag:
    KubernetesPodOperator(task_id="noop", image="busybox:1.36", name="noop")
""",
}

_PROBE = """
import json, runpy, sys, time
{preload}
before = set(sys.modules)
began = time.perf_counter()
runpy.run_path({path!r})
elapsed = time.perf_counter() - began
added = set(sys.modules) - before
heavy = [h for h in {heavy!r} if h in added or any(m.startswith(h + ".") for m in added)]
print(json.dumps({{"seconds": elapsed, "heavy": heavy}}))
"""


def parse_once(path: Path, mode: str, include: Path) -> dict:
    probe = _PROBE.format(preload=_PRELOAD[mode], path=str(path), heavy=HEAVY)
    env = dict(os.environ, CRYPTOETL_MODE=mode, PYTHONPATH=f"{include}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"parsing {path} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(dags: Path, mode: str, repeat: int, include: Path) -> list[tuple[str, float, list[str]]]:
    """(file, best seconds, heavy modules it imported) for a bare DAG (first row) and every DAG file."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_dag.py"
        bare.write_text(_BARE[mode])
        for path in [bare, *sorted(dags.glob("*.py"))]:
            runs = [parse_once(path, mode, include) for _ in range(repeat)]
            rows.append((path.name, min(r["seconds"] for r in runs), runs[0]["heavy"]))
    return rows


def report(dags: Path, mode: str, repeat: int, include: Path) -> tuple[str, str, str, str]:
    """One line for the bench table, after printing the per-file figures."""
    rows = measure(dags, mode, repeat, include)
    (_, bare_s, _), files = rows[0], rows[1:]
    print(f"· DAG parse ({mode} mode, best of {repeat}; a bare DAG: {bare_s:.3f}s)")
    for name, seconds, heavy in files:
        print(f"    {name:32s} {seconds:.3f}s  (+{seconds - bare_s:.3f}s)" + (f"  imports {heavy}" if heavy else ""))
    worst_name, worst_s, _ = max(files, key=lambda r: r[1])
    over = worst_s - bare_s
    heavy = sorted({m for _, _, h in files for m in h})
    detail = f"{len(files)} files, worst {worst_name} +{over:.3f}s over a bare DAG ({bare_s:.3f}s)"
    return (f"DAG parse, {mode} mode", detail, "heavy imports: " + (", ".join(heavy) or "none"),
            f"target <= {LIMIT_S} s per file over a bare DAG")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoetl.bench_parse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", type=Path, default=REPO / "dags")
    parser.add_argument("--include", type=Path, default=REPO / "include", help="where the cryptoetl package is")
    parser.add_argument("--mode", choices=("local", "kubernetes", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    modes = ("local", "kubernetes") if args.mode == "both" else (args.mode,)
    lines = [report(args.dags, mode, args.repeat, args.include) for mode in modes]
    print()
    for line in lines:
        print("  ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
