"""The engine: decisions, every reason at once, generic refusals, and failing closed."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from conftest import PERMIT, QUOTA, FactsOf, MakeBundle

from comity.core.errors import RuleViolationInfo
from comity.policy import POLICY_ERROR, PolicyBundle, PolicyEngine, QueryFacts


def test_allowed_decision_names_the_bundle(engine: PolicyEngine, facts: QueryFacts) -> None:
    d = engine.decide(facts)
    assert d.allowed
    assert d.violations == [] and d.internal_reasons == [] and d.errors == []
    assert d.bundle_digest == engine.bundle.digest
    assert d.bundle_version == "2.0.0"


def test_refusal_lists_every_rule_with_message_and_legal_basis(
    engine: PolicyEngine, facts: QueryFacts
) -> None:
    d = engine.decide(
        replace(facts, order_offence_code="18 USC 875(d)", max_records=500, not_for_third_government=False)
    )
    assert not d.allowed
    assert d.internal_reasons == ["NO_THIRD_GOVERNMENT", "PARTICULARITY", "SERIOUS_CRIME"]
    serious = engine.bundle.rule("SERIOUS_CRIME")
    assert RuleViolationInfo("SERIOUS_CRIME", serious.public_message, serious.legal_basis) in d.violations
    assert all(v.legal_basis and v.message for v in d.violations)


def test_targeting_refusal_is_generic_but_logged_with_the_real_rule(
    engine: PolicyEngine, facts: QueryFacts
) -> None:
    d = engine.decide(replace(facts, target_residences=("CA",)))
    generic = engine.bundle.manifest.generic
    assert d.violations == [RuleViolationInfo("REFUSED", generic.message, generic.legal_basis)]
    assert d.internal_reasons == ["NO_TARGETING"]
    public = " ".join(f"{v.code} {v.message} {v.legal_basis}" for v in d.violations)
    assert "NO_TARGETING" not in public and "resid" not in public.lower() and "national" not in public.lower()


def test_generic_refusal_does_not_hide_other_rules(engine: PolicyEngine, facts: QueryFacts) -> None:
    d = engine.decide(replace(facts, target_nationalities=("CA",), agency_queries_today=1000))
    assert d.codes == ["REFUSED", "QUOTA"]
    assert d.internal_reasons == ["NO_TARGETING", "QUOTA"]


def test_scope_refusal_is_reported_beside_forbids(engine: PolicyEngine, facts: QueryFacts) -> None:
    d = engine.decide(replace(facts, responding_country="US", investigator_queries_today=99))
    assert set(d.codes) == {"AGREEMENT_PARTIES", "QUOTA"}


# ---------------------------------------------------------------- failing closed


def _policy_error(d: Any) -> None:
    assert not d.allowed
    assert POLICY_ERROR in d.codes and POLICY_ERROR in d.internal_reasons
    assert d.errors
    error = next(v for v in d.violations if v.code == POLICY_ERROR)
    assert "refused" in error.message


def test_unknown_entity_is_a_denial_not_a_skipped_forbid(engine: PolicyEngine, facts: QueryFacts) -> None:
    # Cedar alone would allow this: the tier rule errors on the unknown country and is
    # skipped, and a permit that does not read the country could still match.
    d = engine.decide(replace(facts, requesting_country="US", responding_country="MX"))
    _policy_error(d)
    assert any("does not exist" in e for e in d.errors)


@pytest.mark.parametrize(
    "change",
    [
        {"max_records": "50"},
        {"time_range_days": -1},
        {"time_range_days": 2**63},
        {"has_hit_reference": 1},
        {"selectors": [("EMAIL", "a@example.net")]},
        {"selectors": (("EMAIL",),)},
        {"categories": ("SUBSCRIBER", 3)},
        {"now": dt.datetime(2026, 3, 10, 12)},  # naive
        {"order_valid_until": "2026-06-01"},
        {"investigator_queries_today": True},
    ],
    ids=lambda c: next(iter(c)),
)
def test_mistyped_fact_is_a_denial(engine: PolicyEngine, facts: QueryFacts, change: dict[str, Any]) -> None:
    d = engine.decide(replace(facts, **change))
    _policy_error(d)
    assert any(next(iter(change)) in e for e in d.errors)


def test_unknown_query_kind_is_rejected_by_the_schema(engine: PolicyEngine, facts: QueryFacts) -> None:
    d = engine.decide(replace(facts, kind="BULK_EXPORT"))
    _policy_error(d)
    assert any("BULK_EXPORT" in e for e in d.errors)


def test_missing_context_attribute_is_a_denial(engine: PolicyEngine, facts: QueryFacts) -> None:
    request = engine.cedar_request(facts)
    del request["context"]["quota"]
    outcome = engine._authorize(request)
    assert outcome.errors and not outcome.allowed
    d = engine._decision(outcome)
    _policy_error(d)


def test_mistyped_context_attribute_is_a_denial(engine: PolicyEngine, facts: QueryFacts) -> None:
    request = engine.cedar_request(facts)
    request["context"]["quota"]["investigator_today"] = "many"
    d = engine._decision(engine._authorize(request))
    _policy_error(d)


def test_engine_exception_is_a_denial(engine: PolicyEngine, facts: QueryFacts) -> None:
    request = engine.cedar_request(facts)
    request["principal"] = None
    outcome = engine._authorize(request)
    assert not outcome.allowed and outcome.errors
    _policy_error(engine._decision(outcome))


OVERFLOW = """
@id("PROBE")
@legal_basis("test")
@public_message("probe fired")
forbid (principal, action, resource)
when { context.quota.agency_today == 7 || context.quota.agency_today * 4611686018427387904 > 0 };
"""

PROBE_TESTS = """
[[case]]
name = "allowed"
allowed = true
[case.facts]
agency_queries_today = 0

[[case]]
name = "probe"
allowed = false
codes = ["PROBE"]
[case.facts]
agency_queries_today = 7
"""


def test_forbid_that_errors_at_evaluation_is_a_denial(make_bundle: MakeBundle, facts_of: FactsOf) -> None:
    bundle = PolicyBundle.load(make_bundle(rules={"PARTIES": PERMIT, "PROBE": OVERFLOW}, tests=PROBE_TESTS))
    engine = PolicyEngine(bundle)
    assert engine.decide(facts_of(agency_queries_today=0)).allowed
    d = engine.decide(facts_of(agency_queries_today=120))  # 120 * 2**62 overflows: Cedar skips PROBE
    _policy_error(d)
    assert any("overflow" in e and "PROBE" in e for e in d.errors)
    lines = {x.rule_id: x for x in engine.explain(facts_of(agency_queries_today=120))}
    assert lines["PROBE"].fired and "evaluation error" in lines["PROBE"].why


def test_no_permit_matching_is_a_denial_under_the_permits_id(
    make_bundle: MakeBundle, facts_of: FactsOf
) -> None:
    engine = PolicyEngine(PolicyBundle.load(make_bundle()))
    d = engine.decide(facts_of(investigator=""))
    assert d.codes == ["PARTIES"] and d.internal_reasons == ["PARTIES"]
    assert d.violations[0].message == "outside the test scope"


# ---------------------------------------------------------------- explain


def test_explain_lists_every_rule_in_order(engine: PolicyEngine, facts: QueryFacts) -> None:
    lines = engine.explain(replace(facts, order_offence_code="CC 319(1)", order_issuing_country="US"))
    assert [x.rule_id for x in lines] == [r.id for r in engine.bundle.rules]
    fired = {x.rule_id for x in lines if x.fired}
    assert fired == {"SERIOUS_CRIME"}
    serious = next(x for x in lines if x.rule_id == "SERIOUS_CRIME")
    assert serious.why.startswith(engine.bundle.rule("SERIOUS_CRIME").public_message)


def test_explain_shows_out_of_scope(engine: PolicyEngine, facts: QueryFacts) -> None:
    lines = {x.rule_id: x for x in engine.explain(replace(facts, responding_country="US"))}
    assert lines["AGREEMENT_PARTIES"].fired
    assert lines["AGREEMENT_PARTIES"].why.startswith(engine.bundle.permit.public_message)


def test_explain_reports_bad_facts(engine: PolicyEngine, facts: QueryFacts) -> None:
    (line,) = engine.explain(replace(facts, max_records=-5))
    assert line.rule_id == POLICY_ERROR and "max_records" in line.why


def test_context_carries_no_selector_value_or_justification_text(
    engine: PolicyEngine, facts: QueryFacts
) -> None:
    text = repr(engine.cedar_request(facts))
    assert facts.selectors[0][1] not in text
    assert "ransom" not in text.lower()


WHEN_UNLESS = """
@id("PARTIES")
@legal_basis("test scope")
@public_message("outside the test scope")
permit (principal, action == Comity::Action::"FETCH", resource)
when { context.has_investigator } unless { context.max_records > 70 };
"""


@pytest.mark.parametrize(
    ("investigator", "max_records", "kind", "in_scope"),
    [
        ("inv", 50, "FETCH", True),
        ("", 50, "FETCH", False),
        ("inv", 71, "FETCH", False),
        ("inv", 50, "HIT_CHECK", False),
    ],
)
def test_scope_refusal_follows_when_and_unless_of_the_permit(
    make_bundle: MakeBundle, facts_of: FactsOf, investigator: str, max_records: int, kind: str, in_scope: bool
) -> None:
    engine = PolicyEngine(PolicyBundle.load(make_bundle(rules={"PARTIES": WHEN_UNLESS, "QUOTA": QUOTA})))
    facts = facts_of(investigator=investigator, max_records=max_records, kind=kind)
    assert ("PARTIES" in engine.decide(facts).codes) is not in_scope
    assert ("PARTIES" in engine.decide(replace(facts, investigator_queries_today=50)).codes) is not in_scope


def test_explain_shows_the_facts_each_rule_read(engine: PolicyEngine, facts: QueryFacts) -> None:
    lines = {x.rule_id: x for x in engine.explain(replace(facts, order_offence_code="18 USC 875(d)"))}
    assert "offence.known=true, offence.max_penalty_years=2" in lines["SERIOUS_CRIME"].why
    assert "quota.investigator_today=3" in lines["QUOTA"].why
    assert engine.bundle.rule("QUOTA").context_paths == [
        ("quota", "investigator_today"),
        ("quota", "agency_today"),
    ]
