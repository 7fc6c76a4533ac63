"""The import graph of `tasks/` and `flows/` (every import, also inside functions and under
TYPE_CHECKING): no cycle, no upward import, Prefect only at the stages' faces.

Floors, bottom up (a module imports its own floor or lower, never higher):
  0  tasks.core                        shared vocabulary: config, references, frames, errors
  1  tasks.registry, tasks.git,        the extraction stages; independent of each other
     tasks.cluster
  2  tasks.policy                      the plan, from the extraction stages' frames
  3  tasks.delete                      executes a plan against the registry
  4  flows                             the flow, the CLI, the demo
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {
    "tasks.core": 0,
    "tasks.registry": 1,
    "tasks.git": 1,
    "tasks.cluster": 1,
    "tasks.pulls": 1,
    "tasks.policy": 2,
    "tasks.delete": 3,
    "flows": 4,
}
# Where Prefect may be imported in tasks/: each stage's task.py (its only Prefect module),
# the shared task options, and the Secret-block reader (lazily, only when a block is named).
PREFECT_ALLOWED = {"task", "tasks.core.task_options", "tasks.core.secrets"}


def modules() -> dict[str, Path]:
    found = {}
    for top in ("tasks", "flows"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name != "tasks":  # the namespace of the floors, on none itself
                found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules (and `prefect`) that the file at `path` imports, anywhere in it."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            if name.split(".")[0] in ("prefect", "prefect_dask"):
                out.add("prefect")
            elif name in known:
                out.add(name)
    # `from tasks.core import mediatypes` names the module; the package itself is only
    # an edge when nothing more precise was named.
    return {m for m in out if not any(o.startswith(m + ".") for o in out)}


def floor(module: str) -> tuple[str, int]:
    for prefix, level in sorted(FLOORS.items(), key=lambda item: -len(item[0])):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, level
    raise AssertionError(f"{module} is on no floor: add it to FLOORS")


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_a_higher_floor_or_a_sibling_stage() -> None:
    wrong = []
    for module, targets in graph().items():
        home, level = floor(module)
        for target in targets - {"prefect"}:
            where, target_level = floor(target)
            if target_level > level or (target_level == level and where != home):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_prefect_is_imported_only_by_the_stage_faces() -> None:
    wrong = [
        module
        for module, targets in graph().items()
        if module.startswith("tasks.")
        and "prefect" in targets
        and module.rsplit(".", 1)[-1] not in PREFECT_ALLOWED
        and module not in PREFECT_ALLOWED
    ]
    assert wrong == []


def test_the_checks_catch_what_they_are_for() -> None:
    """The checks themselves: a planted cycle and a planted upward import are found."""
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(planted) == [["a", "b", "c"]]
    assert floor("tasks.core.config") == ("tasks.core", 0)
    assert floor("tasks.delete.loader") == ("tasks.delete", 3)
    with pytest.raises(AssertionError, match="on no floor"):
        floor("elsewhere.module")


def test_every_stage_has_the_same_face() -> None:
    """Each stage: `stage.py` (the stage for a configuration, no Prefect), one `task.py` (its
    Prefect tasks) and, where it raises its own errors, `errors.py`."""
    by_package: dict[str, set[str]] = defaultdict(set)
    for module in modules():
        package, _, leaf = module.rpartition(".")
        by_package[package].add(leaf)
    for stage in ("registry", "git", "cluster", "pulls", "policy", "delete"):
        assert {"stage", "task"} <= by_package[f"tasks.{stage}"], stage
    for stage in ("registry", "git", "cluster", "pulls", "delete"):
        assert "errors" in by_package[f"tasks.{stage}"], stage
