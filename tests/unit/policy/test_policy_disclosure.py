"""Minimisation and use restrictions exposed as data."""

from __future__ import annotations

import pytest

from comity.policy import PolicyBundle, bundle_path


@pytest.fixture(scope="module")
def ca_inbound() -> PolicyBundle:
    return PolicyBundle.load(bundle_path("ca-inbound"))


def test_minimisation_withholds_identifying_fields_of_own_persons(ca_inbound: PolicyBundle) -> None:
    m = ca_inbound.minimisation
    assert m.authorised_categories_only and m.drop_outside_time_range
    (rule,) = m.withhold
    assert rule.about == "responding_country_persons"
    assert {"full_name", "date_of_birth", "street_address"} <= set(rule.fields)
    assert rule.legal_basis


@pytest.mark.parametrize(
    ("nationality", "residence", "applies"),
    [("CA", None, True), (None, "ca", True), ("US", "CA", True), ("US", "RU", False), (None, None, False)],
)
def test_withhold_rule_predicate(
    ca_inbound: PolicyBundle, nationality: str | None, residence: str | None, applies: bool
) -> None:
    (rule,) = ca_inbound.minimisation.withhold
    assert rule.applies(nationality, residence, responding_country="CA") is applies


def test_use_restrictions_carry_code_description_and_legal_basis(ca_inbound: PolicyBundle) -> None:
    codes = {r.code for r in ca_inbound.use_restrictions}
    assert {"NO_DEATH_PENALTY_USE", "NO_ONWARD_TRANSFER"} <= codes
    assert all(r.description and r.legal_basis for r in ca_inbound.use_restrictions)
