"""Policy tests of the code's shape: layers point down, and no module or function grows unreadable.

Read from the source text (ast), so every import counts: module level, inside functions and under
TYPE_CHECKING alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "cryptoetl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# (modules, what they must never import). The lower layers know nothing of the ones above them.
LAYER_RULES = [
    (("cryptoetl.sources", "cryptoetl.transforms", "cryptoetl.warehouse"),
     ("cryptoetl.step", "cryptoetl.steps", "cryptoetl.loaders", "cryptoetl.airflow", "cryptoetl.cli", "airflow")),
    (("cryptoetl.step",), ("cryptoetl.steps", "cryptoetl.loaders", "cryptoetl.sources", "cryptoetl.airflow")),
    (("cryptoetl.loaders",), ("cryptoetl.steps", "cryptoetl.airflow", "cryptoetl.cli", "airflow")),
    (("cryptoetl.config", "cryptoetl.refs", "cryptoetl.intervals", "cryptoetl.redaction"),
     ("cryptoetl.sources", "cryptoetl.warehouse", "cryptoetl.step", "cryptoetl.steps", "cryptoetl.loaders",
      "cryptoetl.airflow", "airflow")),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def upward_imports(modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in modules.items():
        imported = _imports(name, path)
        for layer, forbidden in LAYER_RULES:
            if _within(name, layer):
                problems += [f"{name} imports {imp}" for imp in sorted(imported) if _within(imp, forbidden)]
    return problems


def oversized(modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in modules.items():
        text = path.read_text()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            problems.append(f"{name}: {lines} lines > {MAX_MODULE_LINES}")
        todo: list[ast.AST] = [ast.parse(text)]
        while todo:  # functions at module level and in classes; nested functions count in their outer one
            for child in ast.iter_child_nodes(todo.pop()):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        problems.append(f"{name}.{child.name} (line {child.lineno}): {length} lines "
                                        f"> {MAX_FUNCTION_LINES}")
                elif isinstance(child, ast.ClassDef):
                    todo.append(child)
    return problems


def test_no_module_imports_from_a_layer_above_it():
    assert upward_imports(_modules()) == []


def test_no_module_over_400_lines_and_no_function_over_60():
    assert oversized(_modules()) == []


@pytest.mark.parametrize("module,source,problem", [
    ("cryptoetl.warehouse.x", "from cryptoetl.steps import get_step", "imports cryptoetl.steps"),
    ("cryptoetl.sources.x", "def f():\n    from airflow.sdk import BaseHook", "imports airflow"),
    ("cryptoetl.step", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cryptoetl.loaders import news",
     "imports cryptoetl.loaders"),
    ("cryptoetl.warehouse.x", "from ..loaders import news", "imports cryptoetl.loaders"),
])
def test_the_checks_catch_what_they_are_for(tmp_path, module, source, problem):
    path = tmp_path / "x.py"
    path.write_text(source + "\n")
    assert any(problem in p for p in upward_imports({module: path}))
    path.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert oversized({module: path}) and "f (line 1)" in oversized({module: path})[0]
