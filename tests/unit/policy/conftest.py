"""Shared fixtures: the shipped bundles, facts from a bundle's defaults, and small test bundles."""

from __future__ import annotations

import itertools
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from comity.policy import PolicyBundle, PolicyEngine, QueryFacts, bundle_path

AGREEMENT = "us-ca-agreement"


@pytest.fixture(scope="session")
def agreement() -> PolicyBundle:
    return PolicyBundle.load(bundle_path(AGREEMENT))


@pytest.fixture(scope="session")
def engine(agreement: PolicyBundle) -> PolicyEngine:
    return PolicyEngine(agreement)


def default_facts(name: str = AGREEMENT, **changes: Any) -> QueryFacts:
    """The ``[defaults]`` facts of a shipped bundle's tests.toml (an allowed query), changed."""
    data = tomllib.loads((bundle_path(name) / "tests.toml").read_text(encoding="utf-8"))
    return replace(QueryFacts.from_mapping(data["defaults"]), **changes)


@pytest.fixture
def facts() -> QueryFacts:
    return default_facts()


FactsOf = Callable[..., QueryFacts]


@pytest.fixture
def facts_of() -> FactsOf:
    """``facts_of(bundle_name="us-ca-agreement", **changes)``: a bundle's default facts, changed."""
    return default_facts


PERMIT = """
@id("PARTIES")
@legal_basis("test scope")
@public_message("outside the test scope")
permit (principal, action, resource) when { context.has_investigator };
"""

QUOTA = """
@id("QUOTA")
@legal_basis("test quota")
@public_message("quota used up")
forbid (principal, action, resource) when { context.quota.investigator_today >= 50 };
"""

QUOTA_TESTS = """
[[case]]
name = "allowed"
allowed = true

[[case]]
name = "quota"
allowed = false
codes = ["QUOTA"]
[case.facts]
investigator_queries_today = 50
"""


def _defaults_block() -> str:
    text = (bundle_path(AGREEMENT) / "tests.toml").read_text(encoding="utf-8")
    start = text.index("\n[defaults]\n")
    end = text.index("\n[[case]]")
    return text[start:end]


MakeBundle = Callable[..., Path]


@pytest.fixture
def make_bundle(tmp_path: Path) -> MakeBundle:
    """Write a small bundle: the agreement's data files, the given rules and test cases.

    ``rules`` maps rule id to Cedar text (default: a permit and a quota rule);
    ``tests`` is appended after the agreement's ``[defaults]``; ``files`` overrides or,
    with None, removes files.
    """

    made = itertools.count()

    def make(
        rules: dict[str, str] | None = None,
        tests: str = QUOTA_TESTS,
        files: dict[str, str | None] | None = None,
    ) -> Path:
        root = tmp_path / f"bundle-{next(made)}"
        shutil.copytree(bundle_path(AGREEMENT), root)
        shutil.rmtree(root / "rules")
        (root / "rules").mkdir()
        for rid, text in (rules if rules is not None else {"PARTIES": PERMIT, "QUOTA": QUOTA}).items():
            (root / "rules" / f"{rid}.cedar").write_text(text, encoding="utf-8")
        (root / "tests.toml").write_text(_defaults_block() + tests, encoding="utf-8")
        manifest = (root / "bundle.toml").read_text(encoding="utf-8")
        (root / "bundle.toml").write_text(manifest.replace('["NO_TARGETING"]', "[]"), encoding="utf-8")
        for name, content in (files or {}).items():
            if content is None:
                (root / name).unlink()
            else:
                (root / name).write_text(content, encoding="utf-8")
        return root

    return make
