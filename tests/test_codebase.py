"""Shape rules the code keeps so a new maintainer can hold it in their head.

No module imports, even only for type checking, a module that imports it
back; no module grows past 400 lines.  Both are read from the source with
``ast``, so the rules hold for code that is never imported by a test.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import channels_app

PACKAGE = Path(channels_app.__file__).parent
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_by(name: str) -> set[str]:
    """Modules of the package that ``name`` imports at module level (type-checking
    blocks included; imports inside functions are deliberate late bindings)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for statement in ast.parse(path.read_text()).body:
        nodes = (
            ast.walk(statement)
            if isinstance(statement, ast.If | ast.Try)
            else [statement]
        )
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parents = package.split(".")[
                        : len(package.split(".")) - node.level + 1
                    ]
                    base = ".".join([*parents, *([node.module] if node.module else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    found.add(submodule if submodule in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                return [*path[path.index(dependency) :], dependency]
            if dependency not in state and (cycle := visit(dependency)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def import_graph() -> dict[str, set[str]]:
    """Every module's package imports, read in a fresh interpreter.

    Why a subprocess: under CPython 3.11 before 3.11.8, once anything in the
    process has hit a RecursionError (tests feeding JSON nested too deep do),
    ``ast.parse`` may fail with "SystemError: AST constructor recursion depth
    mismatch" -- seen in a pytest-xdist worker, never alone.
    """
    code = (
        "import json; from tests.test_codebase import MODULES, imported_by; "
        "print(json.dumps({n: sorted(imported_by(n)) for n in MODULES}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name: set(found) for name, found in json.loads(done.stdout).items()}


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "channels_app.layers.database.receiver" in graph
    assert find_cycle(graph) is None


def test_no_module_is_over_400_lines():
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concept: {long}"
