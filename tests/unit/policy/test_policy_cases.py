"""Every shipped bundle's own cases, one pytest case each, plus rule coverage per bundle."""

from __future__ import annotations

from dataclasses import replace

import pytest

from comity.policy import PolicyBundle, PolicyEngine, bundle_path
from comity.policy.testcases import BundleTestCase

_BUNDLES = {
    name: PolicyBundle.load(bundle_path(name)) for name in ("us-ca-agreement", "ca-inbound", "us-inbound")
}
_CASES = [(name, case) for name, bundle in _BUNDLES.items() for case in bundle.tests]


@pytest.mark.parametrize(("name", "case"), _CASES, ids=[f"{n}: {c.name}" for n, c in _CASES])
def test_case(name: str, case: BundleTestCase) -> None:
    bundle = _BUNDLES[name]
    d = PolicyEngine(bundle).decide(case.facts)
    assert d.allowed is case.allowed
    assert set(d.codes) == case.codes
    if case.reasons is not None:
        assert set(d.internal_reasons) == case.reasons


@pytest.mark.parametrize("name", list(_BUNDLES))
def test_every_rule_fires_and_is_satisfied_somewhere(name: str) -> None:
    bundle = _BUNDLES[name]
    engine = PolicyEngine(bundle)
    decisions = [engine.decide(c.facts) for c in bundle.tests]
    fired = {r for d in decisions for r in d.internal_reasons}
    assert {r.id for r in bundle.rules} <= fired  # forbids and the scope permit
    assert any(d.allowed for d in decisions)


def test_canada_is_stricter_than_the_agreement_for_subscriber_data_from_independent_authorities() -> None:
    ca_case = next(c for c in _BUNDLES["us-inbound"].tests if c.allowed)
    # The same CA→US query with an independent order passes at the US node...
    assert PolicyEngine(_BUNDLES["us-inbound"]).decide(ca_case.facts).allowed
    # ...while the mirror-image US→CA query is refused by Canada's inbound rules.
    mirror = replace(
        ca_case.facts,
        requesting_country="US",
        responding_country="CA",
        order_issuing_country="US",
        order_offence_code="18 USC 1030(a)(7)",
    )
    d = PolicyEngine(_BUNDLES["ca-inbound"]).decide(mirror)
    assert d.codes == ["DATA_CATEGORY_TIERS"]
