"""From the wire to facts: the target facts are copied as signed, never defaulted.

Regression tests: an empty attestation once became ``"UNKNOWN"`` on its way to the rules and
passed NO_TARGETING; a dual national could not be attested at all. Every test here goes through
the real engine with the shipped bundles, in both directions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comity.core.errors import ComityError
from comity.policy import Decision, PolicyBundle, PolicyEngine, QueryFacts, bundle_path
from comity.policy.subject import KnownSubject
from comity.policy.wire import Counters, facts_from_query
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
# (bundle, requesting, responding): the gateway's agreement both ways, and each node's inbound rules.
REGIMES = [
    ("us-ca-agreement", "US", "CA"),
    ("us-ca-agreement", "CA", "US"),
    ("ca-inbound", "US", "CA"),
    ("us-inbound", "CA", "US"),
]
ENGINES = {name: PolicyEngine(PolicyBundle.load(bundle_path(name))) for name in {r[0] for r in REGIMES}}
ORDERS = {
    "US": ("us.fbi", "us.court.sdny", "18 USC 1030(a)(7)", "judicial"),
    "CA": ("ca.rcmp", "ca.court.onsc", "CC 346", "independent"),
}


def wire(
    requesting: str, target: pb.TargetFacts | None, *, legacy: pb.TargetAttestation | None = None
) -> tuple[pb.Query, pb.LegalOrder]:
    """A query and order both bundles allow, but for ``target`` (None: the order has no target facts)."""
    agency, authority, offence, kind = ORDERS[requesting]
    query = pb.Query(
        query_id="q-1",
        requesting_agency=agency,
        investigator="inv-1",
        target_node="node",
        kind=pb.FETCH,
        selectors=[pb.Selector(type=pb.EMAIL, value="negotiator@example.net")],
        categories=[pb.SUBSCRIBER],
        case_reference="C-2026-00417",
        justification=pb.Justification(
            facts=(
                "On 3 March 2026 a ransomware group encrypted the network of a hospital and demanded "
                "40 bitcoin; the ransom note named this address for negotiation."
            ),
            link_to_offence=(
                "The address appears in the ransom note and sent the follow-up extortion messages "
                "to the hospital's chief executive."
            ),
        ),
        hit_reference="ref-1",
    )
    query.time_range.start.FromDatetime(NOW - timedelta(days=90))
    query.time_range.end.FromDatetime(NOW)
    order = pb.LegalOrder(
        order_id="O-1",
        issuing_authority=authority,
        issuing_country=requesting,
        offence_code=offence,
        authorised_by="A. Judge",
        authorisation_type=kind,
        selectors=list(query.selectors),
        categories=[pb.SUBSCRIBER],
    )
    order.valid_from.FromDatetime(NOW - timedelta(days=1))
    order.valid_until.FromDatetime(NOW + timedelta(days=30))
    if target is not None:
        order.target.CopyFrom(target)
    if legacy is not None:
        order.attestation.CopyFrom(legacy)
    return query, order


def decide(
    name: str, requesting: str, responding: str, query: pb.Query, order: pb.LegalOrder
) -> tuple[QueryFacts, Decision]:
    facts = facts_from_query(
        query,
        order,
        requesting_country=requesting,
        responding_country=responding,
        normalised_selectors=[("EMAIL", "negotiator@example.net")],
        order_covers_selectors=True,
        order_covers_categories=True,
        counters=Counters(),
        now=NOW,
        # The gateway's reuse check (a node makes none): these facts were not used for another case.
        justification_reused=None if name.endswith("-inbound") else False,
    )
    if name.endswith("-inbound"):
        # A node also states what its own records show; here, nothing tying the subject to it.
        facts = replace(
            facts,
            subject=KnownSubject(
                nationalities=(), residences=("RU",), countries=(), records=1, order_outcomes=0
            ),
        )
    return facts, ENGINES[name].decide(facts)


def natural(
    *nationalities: str, residences: tuple[str, ...] = ("RU",), locations: tuple[str, ...] = ("RU",)
) -> pb.TargetFacts:
    return pb.TargetFacts(
        nationalities=list(nationalities),
        residences=list(residences),
        locations=list(locations),
        kind=pb.NATURAL_PERSON,
        not_for_third_government=True,
    )


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
def test_a_well_formed_foreign_target_is_allowed(name: str, requesting: str, responding: str) -> None:
    _, d = decide(name, requesting, responding, *wire(requesting, natural("RU", "GB")))
    assert d.allowed, d.internal_reasons


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
@pytest.mark.parametrize("empty", ["nationalities", "residences", "locations"])
def test_regression_an_empty_attestation_is_refused_not_unknown(
    name: str, requesting: str, responding: str, empty: str
) -> None:
    target = natural("RU")
    target.ClearField(empty)  # type: ignore[arg-type]
    facts, d = decide(name, requesting, responding, *wire(requesting, target))
    assert getattr(facts, f"target_{empty}") == ()  # nothing invented: no "UNKNOWN"
    assert "UNKNOWN" not in repr(facts)
    assert not d.allowed
    assert d.internal_reasons == ["NO_TARGETING"]
    assert d.codes == ["REFUSED"]


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
def test_regression_a_dual_national_of_the_responding_country_is_refused(
    name: str, requesting: str, responding: str
) -> None:
    for nationalities in (("GB", responding), (responding, "GB"), (requesting, responding)):
        facts, d = decide(name, requesting, responding, *wire(requesting, natural(*nationalities)))
        assert set(facts.target_nationalities) == set(nationalities)
        assert d.internal_reasons == ["NO_TARGETING"], nationalities
        assert d.codes == ["REFUSED"]


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
def test_any_residence_or_location_in_the_responding_country_is_refused(
    name: str, requesting: str, responding: str
) -> None:
    for target in (
        natural("GB", residences=("GB", responding)),
        natural("GB", locations=(responding, "FR")),
    ):
        _, d = decide(name, requesting, responding, *wire(requesting, target))
        assert d.internal_reasons == ["NO_TARGETING"]


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
def test_a_company_incorporated_in_the_responding_country_is_refused(
    name: str, requesting: str, responding: str
) -> None:
    company = natural("GB", residences=("GB",), locations=("GB",))
    company.kind = pb.LEGAL_PERSON
    company.incorporated_in = responding
    facts, d = decide(name, requesting, responding, *wire(requesting, company))
    assert facts.target_kind == "LEGAL_PERSON" and facts.target_incorporated_in == (responding,)
    assert d.internal_reasons == ["NO_TARGETING"]
    company.incorporated_in = "GB"
    _, d = decide(name, requesting, responding, *wire(requesting, company))
    assert d.allowed, d.internal_reasons


@pytest.mark.parametrize(("name", "requesting", "responding"), REGIMES)
def test_an_order_without_target_facts_attests_nothing(name: str, requesting: str, responding: str) -> None:
    # Neither the legacy attestation nor target facts beside it are read: NO_TARGETING refuses,
    # and order verification names the reason (have the order re-signed).
    legacy = pb.TargetAttestation(
        nationality="RU", residence="RU", location="RU", not_for_third_government=True
    )
    for target, old in ((None, None), (None, legacy), (natural("RU"), legacy)):
        facts, d = decide(name, requesting, responding, *wire(requesting, target, legacy=old))
        assert (facts.target_nationalities, facts.target_residences, facts.target_locations) == ((), (), ())
        assert facts.target_kind == "TARGET_KIND_UNSPECIFIED" and not facts.not_for_third_government
        assert "NO_TARGETING" in d.internal_reasons and not d.allowed


# ------------------------------------------------------------------ the property

FOREIGN = st.sampled_from(["GB", "RU", "MX", "FR"])
# Mostly a foreign code, so a drawn target is often allowed but for the one field left empty.
CODES = st.one_of(
    FOREIGN, FOREIGN, FOREIGN, st.sampled_from(["US", "CA", "us", "", "UNKNOWN", "XK", "Canada"])
)
COUNTRY_LIST = st.one_of(
    st.lists(FOREIGN, min_size=1, max_size=2, unique=True), st.just([]), st.lists(CODES, max_size=3)
)


@st.composite
def wire_targets(draw: st.DrawFn) -> tuple[pb.TargetFacts | None, pb.TargetAttestation | None]:
    """Any target facts the wire can carry: absent, empty lists, odd codes, any kind, legacy beside."""
    target = None
    if draw(st.integers(0, 9)) > 0:
        kind = draw(
            st.sampled_from([pb.NATURAL_PERSON] * 4 + [pb.LEGAL_PERSON] * 2 + [pb.TARGET_KIND_UNSPECIFIED, 9])
        )
        company = kind == pb.LEGAL_PERSON
        target = pb.TargetFacts(
            nationalities=draw(COUNTRY_LIST),
            residences=draw(COUNTRY_LIST),
            locations=draw(COUNTRY_LIST),
            kind=kind,
            incorporated_in=draw(st.one_of(FOREIGN if company else st.just(""), CODES)),
            not_for_third_government=draw(st.sampled_from([True, True, True, False])),
        )
    legacy = None
    if draw(st.integers(0, 9)) == 0:
        legacy = pb.TargetAttestation(nationality=draw(CODES), residence=draw(CODES), location=draw(CODES))
    return target, legacy


def _empty_or_missing(target: pb.TargetFacts | None, legacy: pb.TargetAttestation | None) -> bool:
    if target is None or legacy is not None:
        return True
    sets = (target.nationalities, target.residences, target.locations)
    return (
        any(not s or "" in s for s in sets)
        or target.kind not in (pb.NATURAL_PERSON, pb.LEGAL_PERSON)
        or (target.kind == pb.LEGAL_PERSON and not target.incorporated_in)
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regime=st.sampled_from(REGIMES), drawn=wire_targets())
def test_no_wire_input_with_an_empty_or_missing_attestation_field_is_allowed(
    regime: tuple[str, str, str], drawn: tuple[pb.TargetFacts | None, pb.TargetAttestation | None]
) -> None:
    name, requesting, responding = regime
    target, legacy = drawn
    query, order = wire(requesting, target, legacy=legacy)
    try:
        facts, d = decide(name, requesting, responding, query, order)
    except ComityError:
        return  # refused before the rules: never allowed
    if _empty_or_missing(target, legacy):
        assert not d.allowed, (target, d.internal_reasons)
    if d.allowed:
        # Whatever was allowed was attested in full, and names no responding-country fact.
        assert all((facts.target_nationalities, facts.target_residences, facts.target_locations))
        attested = {*facts.target_nationalities, *facts.target_residences, *facts.target_locations}
        assert responding not in attested | set(facts.target_incorporated_in)
