"""No country is special in code: US and Canada appear only in data (bundles, member and
synthetic-data files, the demo's story), in docs and in tests.

Every string literal of the code (docstrings aside: they may name an example) is scanned for
the country codes ``US`` and ``CA`` as words, and for names made from them (``us.fbi``,
``ca-node``, ``us-ca-agreement``). Whatever a country needs comes from the federation file and
its bundles.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CODE = ("core", "policy/comity", "audit", "nodes", "gateway", "sdk", "bench", "scripts", "deploy")
# Data: the demo's people, orders and story; the ISO 3166-1 table (generated from the standard).
DATA = ("sdk/comity/sdk/demo/", "core/comity/core/iso3166.py")
LITERAL = re.compile(r"\b(US|CA)\b|\b(us|ca)[.-][a-z]|\bus-ca\b")
# "CA" as a certificate authority, in the words and file names the PKI commands use.
AUTHORITY = re.compile(
    r"\bca\.(crt|key)\b|--ca\b|\b(the|a|gateway|gateway's|Comity gateway) CA\b|\bCA('s)? (certificate|that)\b"
    r"|\bCA's\b"
)


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    # Attribute docstrings: a string expression right after an assignment.
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for before, stmt in itertools.pairwise(stmts):
                if (
                    isinstance(before, ast.Assign | ast.AnnAssign)
                    and isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                ):
                    found.add(id(stmt.value))
    return found


def literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``path`` naming US or Canada."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and LITERAL.search(AUTHORITY.sub("", node.value))
        ):
            hits.append((node.lineno, node.value))
    return hits


def _code_files() -> list[Path]:
    files = [p for folder in CODE for p in sorted((ROOT / folder).rglob("*.py"))]
    return [
        p
        for p in files
        if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
        and not any(p.relative_to(ROOT).as_posix().startswith(d) for d in DATA)
    ]


def test_no_literal_us_or_ca_outside_data_docs_and_tests() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}: {text!r}" for p in _code_files() for line, text in literals(p)]
    assert not found, "country codes in code (move them to a bundle or a data file):\n" + "\n".join(found)


def test_the_scan_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docstrings may say US."""\nX = "CA"\nY = f"{X}-node"\nZ = "us.fbi"\nW = "FOCUS"\n'
        'V = "the CA that issued ca.crt"\n'
    )
    assert [line for line, _ in literals(sample)] == [2, 4]
