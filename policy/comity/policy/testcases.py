"""A bundle's own test cases (``tests.toml``) and running them against the engine.

``[defaults]`` holds a complete set of facts; each ``[[case]]`` overrides some of them
(``[case.facts]``) and states the expected outcome: ``allowed``, the public ``codes``
the requester sees and, optionally, the internal ``reasons`` (real rule ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from comity.core.errors import InvalidArgument
from comity.policy._toml import parse_table
from comity.policy.facts import QueryFacts

if TYPE_CHECKING:
    from comity.policy.engine import PolicyEngine

__all__ = ["BundleTestCase", "parse_cases", "run_cases"]


@dataclass(frozen=True, slots=True)
class BundleTestCase:
    """One expected decision of a bundle."""

    name: str
    facts: QueryFacts
    allowed: bool
    codes: frozenset[str]
    """Public violation codes the requester must see (empty when allowed)."""
    reasons: frozenset[str] | None
    """Internal reasons (rule ids) the audit log must get; None: not checked."""


def parse_cases(text: str, *, source: str) -> tuple[BundleTestCase, ...]:
    """Parse ``tests.toml``.

    Raises:
        BundleError: naming the case and field that is missing, mistyped or not a fact.
    """
    table = parse_table(text, source=source)
    defaults = table.table("defaults")
    cases: list[BundleTestCase] = []
    for t in table.tables("case"):
        name = t.text("name")
        overrides = t.table("facts").data if "facts" in t.data else {}
        try:
            facts = QueryFacts.from_mapping({**defaults.data, **overrides})
        except InvalidArgument as exc:
            raise t.error("facts", f"case {name!r}: {exc.message}") from None
        allowed = t.flag("allowed")
        codes = frozenset(t.texts("codes", required=False))
        reasons = frozenset(t.texts("reasons")) if "reasons" in t.data else None
        if allowed and (codes or reasons):
            raise t.error("codes", f"case {name!r}: an allowed case has no codes or reasons")
        if not allowed and not codes:
            raise t.error("codes", f"case {name!r}: a refused case must list the codes it expects")
        t.done()
        cases.append(BundleTestCase(name, facts, allowed, codes, reasons))
    if not cases:
        raise table.error("case", "a bundle needs test cases")
    table.done()
    return tuple(cases)


def run_cases(engine: PolicyEngine, cases: Sequence[BundleTestCase], forbid_ids: Sequence[str]) -> list[str]:
    """Decide every case; return one line per failure (empty: all pass).

    Also fails when a forbid rule fires in no case, so every rule is exercised.
    """
    failures: list[str] = []
    fired: set[str] = set()
    for case in cases:
        d = engine.decide(case.facts)
        fired.update(d.internal_reasons)
        codes = {v.code for v in d.violations}
        problems = []
        if d.allowed != case.allowed:
            problems.append(f"allowed={d.allowed}, expected {case.allowed}")
        if codes != case.codes:
            problems.append(f"codes={sorted(codes)}, expected {sorted(case.codes)}")
        if case.reasons is not None and set(d.internal_reasons) != case.reasons:
            problems.append(f"reasons={sorted(d.internal_reasons)}, expected {sorted(case.reasons)}")
        if d.errors and "POLICY_ERROR" not in case.codes:
            problems.append(f"evaluation errors: {'; '.join(d.errors)}")
        if problems:
            failures.append(f"{case.name}: {', '.join(problems)}")
    failures += [f"rule {rid} fires in no test case" for rid in forbid_ids if rid not in fired]
    return failures
