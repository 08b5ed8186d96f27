"""The package layout: one `comity` namespace assembled from the component folders."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ["proto", "core", "policy", "audit", "nodes", "gateway", "sdk"]


def test_no_init_in_namespace_root() -> None:
    """A comity/__init__.py anywhere would turn the namespace into a regular package and hide the others."""
    offenders = [str(p) for c in COMPONENTS for p in (ROOT / c).glob("comity/__init__.py")]
    assert offenders == []


@pytest.mark.parametrize(
    "module",
    [
        "comity.v1",
        "comity.core",
        "comity.policy",
        "comity.audit",
        "comity.nodes",
        "comity.gateway",
        "comity.sdk",
    ],
)
def test_each_component_imports_from_its_folder(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__file__ is not None
    folder = "proto" if module == "comity.v1" else module.split(".")[1]
    assert Path(mod.__file__).resolve().is_relative_to(ROOT / folder)


def test_generated_code_is_current() -> None:
    """Regenerating the wire contract must reproduce the checked-in code byte for byte."""
    pytest.importorskip("grpc_tools")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), out], check=True)
        generated = sorted(Path(out, "comity", "v1").glob("*_pb2*"))
        assert generated, "protoc wrote nothing"
        for path in generated:
            checked_in = ROOT / "proto" / "comity" / "v1" / path.name
            assert checked_in.exists(), f"{checked_in.name} is missing: run python scripts/gen_proto.py"
            assert checked_in.read_bytes() == path.read_bytes(), (
                f"{checked_in.name} is stale: run python scripts/gen_proto.py and commit the result"
            )


def test_test_file_names_are_unique() -> None:
    """pytest imports test files by base name: two with the same name break collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


# Which components each component may import (DESIGN.md, "Dependencies point one way").
ALLOWED = {
    "core": {"core", "v1"},
    "policy": {"policy", "core", "v1"},
    "audit": {"audit", "core", "v1"},
    "nodes": {"nodes", "core", "policy", "audit", "v1"},
    "gateway": {"gateway", "core", "policy", "audit", "v1"},
    "sdk": {"sdk", "core", "audit", "v1"},
}


def _module_level_imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions are the lazy ones
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found |= {n.split(".")[1] for n in names if n.startswith("comity.") and n.count(".") >= 1}
    return found


@pytest.mark.parametrize("component", sorted(ALLOWED))
def test_dependencies_point_one_way(component: str) -> None:
    """The demo (it starts servers) is the one part of the SDK that imports server packages."""
    offenders = []
    for path in (ROOT / component / "comity" / component).rglob("*.py"):
        if component == "sdk" and "demo" in path.parts:
            continue
        bad = _module_level_imports(path) - ALLOWED[component]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []
