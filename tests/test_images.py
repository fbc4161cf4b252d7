"""Two images: torch and transformers only in the sentiment image.

- requirements.txt (the project image: Airflow, the scheduler, every task pod but news_sentiment)
  has no torch, transformers or anything only they need; requirements-sentiment.txt adds them,
  pinned; the local venv and CI install both (requirements-dev.txt).
- The split agrees with the packages' own metadata (a ``pip check`` of each file on its own): what
  requirements.txt pins needs nothing outside it, and nothing it pins needs a sentiment-only package.
- The Dockerfile's project stage installs requirements.txt only, the sentiment stage the rest.
- The code the project image runs never imports them: only loading a sentiment model does (checked
  in the source, and by running every module and the non-sentiment steps with them unimportable).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
from conftest import IN_CI, REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BASE = REPO / "requirements.txt"
SENTIMENT = REPO / "requirements-sentiment.txt"
DEV = REPO / "requirements-dev.txt"
# What the project image must not carry (torch's and transformers' own dependencies included).
HEAVY = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "sympy", "networkx", "mpmath")
HEAVY_MODULES = ("torch", "transformers", "tokenizers", "safetensors", "huggingface_hub")
TORCH_PIN = "2.13.0"  # resolves to the local +cpu wheel; any other spec pulls GBs of CUDA wheels
# The only modules that may import HEAVY_MODULES, and only inside functions (lazily).
SENTIMENT_CODE = ("cryptoetl.sentiment", "cryptoetl.bench_sentiment")


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-r ")):
            name, sep, version = line.partition("==")
            assert sep and version and not re.search(r"[<>=!~;\[ ]", version), f"{path.name}: not pinned: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def _includes(path) -> list[str]:
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith("-r ")]


# --------------------------------------------------------------- the requirement files


def test_base_requirements_have_no_torch_or_transformers():
    assert not set(HEAVY) & set(_pins(BASE)), "torch/transformers belong in requirements-sentiment.txt"


def test_sentiment_requirements_add_them_pinned_on_top_of_the_base():
    assert _includes(SENTIMENT) == ["requirements.txt"]
    pins = _pins(SENTIMENT)
    assert pins["torch"] == TORCH_PIN, "keep torch==2.13.0 exactly"
    assert {"transformers", "tokenizers", "safetensors", "huggingface-hub"} <= set(pins)
    assert not set(pins) & set(_pins(BASE)), "each package is pinned in one file only"


def test_venv_and_ci_install_both():
    assert _includes(DEV) == ["requirements-sentiment.txt"], "make run and the tests use the sentiment step"
    venv_rule = re.search(r"^\$\(VENV\)/\.installed:(.*)$", (REPO / "Makefile").read_text(), re.M)
    assert venv_rule and {"requirements.txt", "requirements-sentiment.txt", "requirements-dev.txt"} <= set(
        venv_rule.group(1).split()), "the venv is rebuilt when any requirement file changes"


def _requires(name: str, extras: frozenset[str]) -> set[tuple[str, frozenset[str]]]:
    out = set()
    for raw in metadata.distribution(name).requires or []:
        req = Requirement(raw)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
            out.add((canonicalize_name(req.name), frozenset(req.extras)))
    return out


def _closure(roots) -> set[str]:
    """Every distribution the ``roots`` need, by the installed packages' metadata (markers, extras)."""
    seen, todo = set(), [(name, frozenset()) for name in roots]
    while todo:
        item = todo.pop()
        if item not in seen:
            seen.add(item)
            todo += _requires(*item)
    return {name for name, _ in seen}


def test_requirement_split_agrees_with_package_metadata():
    base, sentiment = _pins(BASE), _pins(SENTIMENT)
    missing = [n for n in (*base, *sentiment) if not _installed(n)]
    if missing:
        message = f"this environment lacks pinned packages {missing[:5]}...: make venv"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    needed_by_base = _closure(base)
    assert needed_by_base <= set(base), f"requirements.txt misses {sorted(needed_by_base - set(base))}"
    assert not needed_by_base & set(sentiment), (
        f"needed by the project image, so they belong in requirements.txt: {sorted(needed_by_base & set(sentiment))}")
    assert _closure(sentiment) <= set(base) | set(sentiment)


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


# --------------------------------------------------------------- the Dockerfile


def _stages() -> dict[str, str]:
    """Dockerfile text per stage: ``sentiment`` and ``project`` (the unnamed, default target)."""
    parts = re.split(r"^(?=FROM\s)", (REPO / "Dockerfile").read_text(), flags=re.M)[1:]
    out = {}
    for part in parts:
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", part, re.I)
        out[match.group(1) or "project"] = part
    return out


def test_dockerfile_base_stage_installs_only_requirements_txt():
    project = "\n".join(line for line in _stages()["project"].splitlines() if not line.lstrip().startswith("#"))
    installs = re.findall(r"pip install [^\n]*-r (\S+)", project)
    assert [p.rsplit("/", 1)[-1] for p in installs] == ["requirements.txt"]
    assert "torch" not in project and "requirements-sentiment" not in project


def test_dockerfile_sentiment_stage_installs_the_rest_cpu_only():
    sentiment = _stages()["sentiment"]
    install = re.search(r"pip install --no-cache-dir -r (\S+)\s*\\\s*\n\s*--extra-index-url (\S+)", sentiment)
    assert install and install.group(1).endswith("/requirements-sentiment.txt")
    assert install.group(2) == "https://download.pytorch.org/whl/cpu", "torch must resolve to the CPU build"
    copied = re.search(r"^COPY\s.*\brequirements\.txt requirements-sentiment\.txt\s", sentiment, re.M)
    assert copied, "requirements-sentiment.txt includes requirements.txt: copy both"
    assert sentiment.index("requirements-sentiment.txt") < sentiment.index("hf download"), "hf comes with it"


# --------------------------------------------------------------- the code


def heavy_imports(source: str) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) of every import of a HEAVY_MODULES package in ``source``."""
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and not child.level:
                names = [child.module or ""]
            found.extend((child.lineno, n, in_function) for n in names if n.split(".")[0] in HEAVY_MODULES)
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def test_torch_and_transformers_are_imported_only_lazily_in_the_sentiment_code():
    package = REPO / "include" / "cryptoetl"
    problems = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for line, name, in_function in heavy_imports(path.read_text()):
            if not module.startswith(SENTIMENT_CODE):
                problems.append(f"{module}:{line} imports {name} (only the sentiment code may)")
            elif not in_function:
                problems.append(f"{module}:{line} imports {name} at module level (import it where it is used)")
    assert problems == []


def test_lazy_import_check_catches_module_level_imports():
    found = heavy_imports("import torch\nfrom transformers import AutoTokenizer\ndef f():\n    import torch.nn\n")
    assert [(n, inside) for _, n, inside in found] == [("torch", False), ("transformers", False), ("torch.nn", True)]


BLOCKED_PROBE = """
import importlib, pkgutil, sys
HEAVY = {heavy!r}

class NotInTheProjectImage:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the project image)", name=name)

sys.meta_path.insert(0, NotInTheProjectImage())
import cryptoetl
for info in pkgutil.walk_packages(cryptoetl.__path__, "cryptoetl."):
    # the migration scripts are run by alembic, inside its context, not imported
    if not info.name.endswith("__main__") and not info.name.startswith("cryptoetl.warehouse.migrations."):
        importlib.import_module(info.name)
from cryptoetl.cli import main
assert main(["init-db"]) == 0
for step in ("technical", "features", "sentiment"):  # sentiment: no articles, so no model is loaded
    assert main(["run", step, "--interval", "2026-01-01T00:00:00/2026-01-02T00:00:00"]) == 0, step
from pathlib import Path
from cryptoetl.sentiment import model
spec = model.ModelSpec("finbert", "ProsusAI/finbert", None, "CRYPTOETL_FINBERT_PATH", 512)
try:
    model.load(model.ResolvedModel(spec, Path("."), "r", False))
except ModuleNotFoundError as exc:
    print("LOAD_NEEDS=" + exc.name)
"""


def test_the_project_image_runs_every_module_and_step_without_them(tmp_path):
    """Every module imports, and the non-sentiment steps (and sentiment with nothing to score) run, with
    torch and transformers unimportable; loading a model is where they are needed."""
    env = {**os.environ, "CRYPTOETL_WAREHOUSE_URL": f"sqlite:///{tmp_path}/w.db", "PYTHONPATH": str(REPO / "include")}
    result = subprocess.run([sys.executable, "-c", BLOCKED_PROBE.format(heavy=HEAVY_MODULES)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOAD_NEEDS=torch" in result.stdout, "loading a sentiment model must need torch (the block works)"
