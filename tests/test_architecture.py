"""The import structure of ``workbench/``: no circle, arrows only down the layers, the runner behind the local
backend. Read from the code's own import statements (``TYPE_CHECKING`` imports are for type hints only)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
LAYERS = (
    ("workbench.errors", "workbench.spec"),
    ("workbench.transport",),
    ("workbench.libraries",),
    ("workbench.outputs",),
    ("workbench.runner",),
    ("workbench.backends",),
    ("workbench.results",),
    ("workbench.sweep", "workbench.widgets"),
    ("workbench.cli", "workbench.demo", "workbench.lab"),
)
"""From the bottom up: a module may import its own layer's modules and those below, never those above."""


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    guarded = [stmt for stmt in ast.walk(tree) if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)]
    skipped = {id(node) for stmt in guarded for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("workbench")}


def _graph() -> dict[str, set[str]]:
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {target if target in modules else target.rsplit(".", 1)[0] for target in _imports(path)}
        graph[name] = {target for target in targets if target in modules and target not in (name, "workbench")}
    return graph


def _layer(module: str) -> int:
    return next(i for i, prefixes in enumerate(LAYERS)
                if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes))


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        if module != "workbench":
            _layer(module)


def test_imports_only_point_down() -> None:
    upward = [(source, target) for source, targets in _graph().items() if source != "workbench"
              for target in targets if _layer(target) > _layer(source)]
    assert upward == []


def test_the_import_graph_has_no_circle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                circles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_outside_the_runner_only_the_local_backend_imports_it() -> None:
    importers = {source for source, targets in _graph().items() if not source.startswith("workbench.runner")
                 and any(t.startswith("workbench.runner") for t in targets)}
    assert importers == {"workbench.backends.local"}
