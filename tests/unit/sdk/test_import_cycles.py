"""The SDK's modules import one another without a cycle (the CLI's command modules included).

A cycle says one concept is split across two files, or a lower layer reaches up: here, a
command module importing the entry module that imports it. The scan reads the modules'
source (module-level imports, not those inside functions or under ``TYPE_CHECKING``), so it
sees a cycle even where the import order happens to make it work.
"""

from __future__ import annotations

import ast
from pathlib import Path

SDK = Path(__file__).resolve().parents[3] / "sdk"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module, package: str, modules: set[str]) -> set[str]:
    """The SDK modules ``tree`` imports when it is imported."""
    found: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found & modules


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the modules of ``root`` it imports at import time."""
    paths = {_module_name(p, root): p for p in root.rglob("*.py") if "_pb2" not in p.name}
    modules = set(paths)
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imported(ast.parse(path.read_text(encoding="utf-8")), package, modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_sdk_has_no_import_cycle() -> None:
    graph = import_graph(SDK)
    assert graph.get("comity.sdk.cli.main"), "the scan found no imports"
    assert cycles(graph) == []


def test_no_command_module_imports_the_entry_module() -> None:
    graph = import_graph(SDK)
    commands = [m for m in graph if m.startswith("comity.sdk.cli.") and m.endswith("_cmd")]
    assert len(commands) >= 15
    assert [m for m in commands if "comity.sdk.cli.main" in graph[m]] == []


def test_the_scan_finds_a_cycle_between_two_modules(tmp_path: Path) -> None:
    package = tmp_path / "comity" / "pkg"
    package.mkdir(parents=True)
    (package / "a.py").write_text("from comity.pkg.b import x\n", encoding="utf-8")
    (package / "b.py").write_text("from comity.pkg import a\nx = 1\n", encoding="utf-8")
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from comity.pkg import a\n"
    (package / "c.py").write_text(guarded, encoding="utf-8")
    assert cycles(import_graph(tmp_path)) == [["comity.pkg.a", "comity.pkg.b"]]
