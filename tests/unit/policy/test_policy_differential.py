"""Differential test: each shipped bundle against a plain-Python reading of its rules.

The reading below is written from docs/policy.md and AGREEMENT.md, not from the Cedar
text; hypothesis draws facts around every rule's boundaries and both must agree on the
decision and on the exact set of rules that refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comity.policy import PolicyBundle, PolicyEngine, QueryFacts, bundle_path
from comity.policy.context import distinct_words, pattern_selector
from comity.policy.subject import KnownSubject


@dataclass(frozen=True)
class Regime:
    """What differs between the bundles, as docs/policy.md states it."""

    bundle: str
    scope_rule: str
    directions: frozenset[tuple[str, str]]
    max_selectors: int
    max_records: int
    investigator_quota: int
    agency_quota: int
    judicial_everywhere: frozenset[str]
    """Responding countries that need a judicial order for every category and IP addresses."""
    emergency_validation: bool = False
    """Whether the bundle enforces the emergency track's post-hoc validation (the gateway's does)."""
    node: bool = False
    """Whether the bundle decides on the node's own records (a node bundle)."""
    reuse_check: bool = False
    """Whether the bundle refuses a justification reused across cases (the gateway's; a node cannot know)."""


BOTH = frozenset({("US", "CA"), ("CA", "US")})
REGIMES = [
    # Spencer and Bykovets: Canada needs a judicial order for subscriber data and IP addresses.
    Regime(
        "us-ca-agreement",
        "AGREEMENT_PARTIES",
        BOTH,
        5,
        100,
        50,
        1000,
        frozenset({"CA"}),
        True,
        reuse_check=True,
    ),
    # Canada's node applies its own law whatever the facts say about the direction.
    Regime(
        "ca-inbound",
        "INBOUND_SCOPE",
        frozenset({("US", "CA")}),
        3,
        50,
        20,
        200,
        frozenset({"US", "CA"}),
        node=True,
    ),
    Regime(
        "us-inbound", "INBOUND_SCOPE", frozenset({("CA", "US")}), 5, 100, 50, 1000, frozenset(), node=True
    ),
]
ENGINES = {r.bundle: PolicyEngine(PolicyBundle.load(bundle_path(r.bundle))) for r in REGIMES}
BUNDLE = ENGINES["us-ca-agreement"].bundle
NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
SELECTOR_TYPES = {
    "EMAIL",
    "PHONE",
    "ACCOUNT_ID",
    "IP_ADDRESS",
    "DEVICE_ID",
    "FIREARM_SERIAL",
    "USERNAME",
    "IMEI",
    "VEHICLE_VIN",
}


def pick(good: object, *others: object) -> st.SearchStrategy[Any]:
    """Mostly ``good`` (a value the agreement accepts), sometimes a boundary value."""
    return st.sampled_from([good] * 10 + list(others))


GOOD_FACTS = "Ransomware attack on hospital network demanded bitcoin ransom."  # 8 distinct words
GOOD_LINK = "Address sent the ransom demand."  # 5 distinct words
EMAIL = ("EMAIL", "a@example.net")
selectors = pick(
    (EMAIL,),
    (),
    (("IP_ADDRESS", "198.51.100.7"),),
    (("IP_ADDRESS", "203.0.113.0/24"),),
    (("EMAIL", "*@x.net"),),
    (("FULL_NAME", "John Smith"),),
    (EMAIL,) * 3,
    (EMAIL,) * 4,
    (EMAIL,) * 5,
    (EMAIL,) * 6,
    (("ACCOUNT_ID", ""),),
)
BAD_TEXTS = ("", "Ongoing investigation.", "TBD", "Ransomware attack on hospital network demanded bitcoin.")
# Attested country sets: one or two codes, empty, or holding either party.
COUNTRY_SETS = (("US",), ("CA",), (), ("GB", "RU"), ("CA", "GB"), ("GB", "US"))
OFFENCES = {"US": "18 USC 1030(a)(7)", "CA": "CC 346"}
other_offences = [
    "18 USC 875(d)",
    "18 USC 1037(b)(2)",
    "18 USC 2385",
    "CC 319(1)",
    "CC 334(b)",
    "CC 83.221",
    "X 1",
]
CATEGORY_SETS = [
    ("TRAFFIC",),
    ("CONTENT",),
    ("TRAFFIC",),
    ("CONTENT",),
    ("SUBSCRIBER", "CONTENT"),
    ("TRAFFIC", "CONTENT"),
    (),
    ("BIOMETRIC",),
]


@st.composite
def query_facts(draw: st.DrawFn) -> QueryFacts:
    requesting, responding = draw(pick(("US", "CA"), ("CA", "US"), ("CA", "US"), ("US", "US"), ("CA", "CA")))
    issuing = draw(pick(requesting, responding))
    return QueryFacts(
        requesting_country=requesting,
        responding_country=responding,
        requesting_agency="agency",
        investigator=draw(pick("inv", "")),
        kind=draw(st.sampled_from(["HIT_CHECK", "FETCH"])),
        selectors=draw(selectors),
        categories=draw(pick(("SUBSCRIBER",), *CATEGORY_SETS)),
        time_range_days=draw(pick(30, 0, 1, 90, 91, 365, 366, 730, 731)),
        max_records=draw(pick(10, 0, 50, 51, 100, 101)),
        has_hit_reference=draw(st.booleans()),
        case_reference=draw(pick("C-1", "", " ")),
        justification_facts=draw(pick(GOOD_FACTS, *BAD_TEXTS)),
        justification_link=draw(pick(GOOD_LINK, GOOD_FACTS, "Address sent ransom demand.", *BAD_TEXTS)),
        justification_reused=draw(pick(False, True)),
        order_id=draw(pick("O-1", "")),
        order_offence_code=draw(pick(OFFENCES[issuing], *other_offences)),
        order_issuing_country=issuing,
        order_authorisation_type=draw(pick("judicial", "independent", "independent", "administrative", "")),
        order_emergency=draw(st.booleans()),
        order_valid_from=NOW + draw(pick(-SECOND * 86400, -SECOND, SECOND * 0, SECOND)),
        order_valid_until=NOW + draw(pick(SECOND * 86400, -SECOND, SECOND * 0, SECOND)),
        order_covers_selectors=draw(pick(True, False)),
        order_covers_categories=draw(pick(True, False)),
        target_nationalities=draw(pick(("RU",), *COUNTRY_SETS)),
        target_residences=draw(pick(("RU",), *COUNTRY_SETS)),
        target_locations=draw(pick(("RU",), *COUNTRY_SETS)),
        target_kind=draw(pick("NATURAL_PERSON", "LEGAL_PERSON", "TARGET_KIND_UNSPECIFIED", "")),
        target_incorporated_in=draw(pick((), ("GB",), ("US",), ("CA",))),
        not_for_third_government=draw(pick(True, False)),
        investigator_queries_today=draw(pick(0, 19, 20, 49, 50)),
        agency_queries_today=draw(pick(0, 199, 200, 999, 1000)),
        emergency_overdue_orders=draw(pick(0, 1, 3)),
        emergency_order_rejected=draw(pick(False, True)),
        now=NOW,
    )


CODE_SETS = ((), ("RU",), ("US",), ("CA",), ("CA", "US"))
known_subjects = st.builds(
    KnownSubject,
    nationalities=pick((), *CODE_SETS),
    residences=pick(("RU",), *CODE_SETS),
    countries=pick((), ("CA",), ("US",)),
    records=pick(1, 0, 40),
    order_outcomes=pick(0, 2, 3, 9),
)


def expected_reasons(f: QueryFacts, regime: Regime) -> set[str]:
    """The bundle's rules, read plainly."""
    out: set[str] = set()
    offence = BUNDLE.catalogue.lookup(f.order_issuing_country, f.order_offence_code)
    cats = set(f.categories)
    judicial = f.order_authorisation_type == "judicial"

    if (f.requesting_country, f.responding_country) not in regime.directions or not f.investigator:
        out.add(regime.scope_rule)
    if offence is None or offence.max_penalty_years < 3:
        out.add("SERIOUS_CRIME")
    attested = (f.target_nationalities, f.target_residences, f.target_locations)
    if (
        not all(attested)
        or any(f.responding_country in s for s in (*attested, f.target_incorporated_in))
        or f.target_kind not in ("NATURAL_PERSON", "LEGAL_PERSON")
        or (f.target_kind == "LEGAL_PERSON") != bool(f.target_incorporated_in)
    ):
        out.add("NO_TARGETING")
    if (
        not 1 <= len(f.selectors) <= regime.max_selectors
        or any(pattern_selector(t, v) for t, v in f.selectors)
        or not {t for t, _ in f.selectors} <= SELECTOR_TYPES
        or f.max_records > regime.max_records
    ):
        out.add("PARTICULARITY")
    if (
        not f.order_id
        or f.order_issuing_country != f.requesting_country
        or f.order_authorisation_type not in ("judicial", "independent")
        or not f.order_valid_from <= f.now < f.order_valid_until
        or not (f.order_covers_selectors and f.order_covers_categories)
    ):
        out.add("INDEPENDENT_AUTHORISATION")
    if (
        not f.case_reference.strip()
        or distinct_words(f.justification_facts) < 8
        or distinct_words(f.justification_link) < 5
        or BUNDLE.justification.is_boilerplate(
            f.justification_facts, f.justification_link, case_reference=f.case_reference
        )
        or (regime.reuse_check and f.justification_reused)
    ):
        out.add("JUSTIFICATION")
    limit = 90 if "CONTENT" in cats else 365 if "TRAFFIC" in cats else 730
    strict = f.responding_country in regime.judicial_everywhere and (
        bool(cats & {"SUBSCRIBER", "TRAFFIC"}) or any(t == "IP_ADDRESS" for t, _ in f.selectors)
    )
    if (
        not cats
        or not cats <= {"SUBSCRIBER", "TRAFFIC", "CONTENT"}
        or not 1 <= f.time_range_days <= limit
        or ("CONTENT" in cats and not judicial)
        or (strict and not judicial)
    ):
        out.add("DATA_CATEGORY_TIERS")
    if not f.not_for_third_government:
        out.add("NO_THIRD_GOVERNMENT")
    if offence is not None and offence.speech_related:
        out.add("USE_RESTRICTIONS")
    if (f.kind == "HIT_CHECK" and "CONTENT" in cats) or (
        f.kind == "FETCH"
        and not f.has_hit_reference
        and not f.order_emergency
        and cats & {"TRAFFIC", "CONTENT"}
    ):
        out.add("TWO_STEP")
    if (
        f.investigator_queries_today >= regime.investigator_quota
        or f.agency_queries_today >= regime.agency_quota
    ):
        out.add("QUOTA")
    if (
        regime.emergency_validation
        and f.order_emergency
        and (f.emergency_overdue_orders > 0 or f.emergency_order_rejected)
    ):
        out.add("EMERGENCY_VALIDATION")
    if f.subject is not None:
        known = {*f.subject.nationalities, *f.subject.residences, *f.subject.countries}
        if f.responding_country in known:
            out.add("NO_TARGETING_RECORDS")
        if f.subject.order_outcomes >= 3:
            out.add("NO_TARGETING_RECORDS_LIMIT")
    return out


@pytest.mark.parametrize("regime", REGIMES, ids=lambda r: r.bundle)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=query_facts(), subject=known_subjects)
def test_bundle_agrees_with_a_plain_reading_of_the_rules(
    regime: Regime, facts: QueryFacts, subject: KnownSubject
) -> None:
    if regime.node:
        facts = dataclasses.replace(facts, subject=subject)
    if not regime.reuse_check:  # a node does not know the fact
        facts = dataclasses.replace(facts, justification_reused=None)
    expected = expected_reasons(facts, regime)
    d = ENGINES[regime.bundle].decide(facts)
    assert d.errors == []
    assert set(d.internal_reasons) == expected
    assert d.allowed is (not expected)
    generic = {"NO_TARGETING", "NO_TARGETING_RECORDS", "NO_TARGETING_RECORDS_LIMIT"}
    assert ("REFUSED" in d.codes) is bool(expected & generic)
    assert not generic & set(d.codes)


@pytest.mark.parametrize("regime", [r for r in REGIMES if r.node], ids=lambda r: r.bundle)
@settings(max_examples=50, deadline=None)
@given(facts=query_facts())
def test_a_node_decision_without_the_nodes_subject_facts_is_refused(
    regime: Regime, facts: QueryFacts
) -> None:
    d = ENGINES[regime.bundle].decide(facts)
    assert not d.allowed and "POLICY_ERROR" in d.codes


@settings(max_examples=50, deadline=None)
@given(facts=query_facts(), subject=known_subjects)
def test_the_gateway_never_decides_on_the_nodes_subject_facts(
    facts: QueryFacts, subject: KnownSubject
) -> None:
    d = ENGINES["us-ca-agreement"].decide(dataclasses.replace(facts, subject=subject))
    assert not d.allowed and "POLICY_ERROR" in d.codes


@settings(max_examples=150, deadline=None)
@given(query_facts())
def test_a_decision_is_allowed_only_with_no_violation(facts: QueryFacts) -> None:
    d = ENGINES["us-ca-agreement"].decide(facts)
    assert d.allowed is (d.violations == []) is (d.internal_reasons == [])


# Engines that, once a request shape is trusted, never evaluate with the schema again: the
# path most production decisions take.
UNCHECKED = {name: PolicyEngine(e.bundle, schema_every=10**9) for name, e in ENGINES.items()}


@pytest.mark.parametrize("regime", REGIMES, ids=lambda r: r.bundle)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=query_facts(), subject=known_subjects, with_subject=st.booleans(), reused=pick(None, True))
def test_decisions_without_the_schema_equal_those_with_it(
    regime: Regime, facts: QueryFacts, subject: KnownSubject, with_subject: bool, reused: bool | None
) -> None:
    # Facts of every shape the builder makes, the mismatched ones too (a node's facts at the
    # gateway, no subject at a node): the schema-validated decision is the reference.
    facts = dataclasses.replace(facts, subject=subject if with_subject else None, justification_reused=reused)
    engine = UNCHECKED[regime.bundle]
    reference = engine._decision(engine._evaluate(engine.cedar_request(facts), with_schema=True))
    for _ in range(2):  # the first may prove the shape; the second then skips the schema
        d = engine.decide(facts)
        assert (d.allowed, d.internal_reasons, d.codes) == (
            reference.allowed,
            reference.internal_reasons,
            reference.codes,
        )
        assert bool(d.errors) is bool(reference.errors)
