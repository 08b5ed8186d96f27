"""The check catalogue: every check is documented in docs/audit.md, with its rule."""

from __future__ import annotations

from pathlib import Path

from comity.core import refusals
from comity.core.refusal_docs import BEGIN, END, load_all_checks, markdown_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit.md"


def _product_checks() -> dict[str, refusals.Check]:
    """The catalogue without the checks other tests register for themselves (``TEST_...``)."""
    return {code: c for code, c in load_all_checks().items() if not code.startswith("TEST_")}


RULES = {
    "SERIOUS_CRIME", "NO_TARGETING", "PARTICULARITY", "INDEPENDENT_AUTHORISATION", "JUSTIFICATION",
    "DATA_CATEGORY_TIERS", "NO_THIRD_GOVERNMENT", "USE_RESTRICTIONS", "TWO_STEP", "AUDIT_FIELDS",
    "MINIMISATION", "TRANSPARENCY", "NO_AGREEMENT",
}  # fmt: skip


def test_the_doc_lists_every_registered_check_as_generated() -> None:
    text = DOC.read_text()
    block = text[text.index(BEGIN) : text.index(END) + len(END) + 1]
    checks = _product_checks()
    assert block == markdown_table(checks), "run: python scripts/gen_check_table.py"
    for check in checks.values():
        assert f"| `{check.code}` | {check.rule} |" in block


def test_every_check_names_an_agreement_rule_and_a_stable_code() -> None:
    checks = _product_checks()
    expected = {"ORDER_EXPIRED", "ORDER_NOT_YET_VALID", "ORDER_SCOPE_SELECTOR", "ORDER_SCOPE_CATEGORY",
                "SELECTOR_PATTERN", "SELECTOR_COUNT", "QUERY_SIGNATURE", "QUERY_REPLAYED"}  # fmt: skip
    assert expected <= set(checks)
    for code, check in checks.items():
        assert check.rule in RULES, code
        assert code.isupper() and " " not in code
        assert check.message and check.legal_basis
