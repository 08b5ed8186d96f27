"""Schema validation by request shape: trusted only once proved, still sampled, fail closed."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import cedarpy
import pytest

from comity.policy import PolicyBundle, PolicyEngine, QueryFacts
from comity.policy.engine import request_shape
from comity.policy.subject import KnownSubject


class Calls:
    """Counts Cedar calls with and without the schema; can make the schema-less ones lie."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.with_schema = self.without = 0
        self.lie = False
        real = cedarpy.is_authorized

        def counting(request: Any, policies: Any, entities: Any, schema: Any = None) -> Any:
            if schema is None:
                self.without += 1
                result = real(request, policies, entities)
                if self.lie:  # what a forbid silently skipped on a mistyped fact would look like
                    return real(request, "permit (principal, action, resource);", entities)
                return result
            self.with_schema += 1
            return real(request, policies, entities, schema=schema)

        monkeypatch.setattr(cedarpy, "is_authorized", counting)


def test_a_trusted_shape_skips_the_schema_except_on_sampled_decisions(
    agreement: PolicyBundle, facts: QueryFacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    engine = PolicyEngine(agreement, schema_every=4)
    for _ in range(8):
        assert engine.decide(facts).allowed
    # Decision 0 proves the shape (both ways), 4 is sampled (both ways), the six others skip it.
    assert (calls.with_schema, calls.without) == (2, 8)


def test_a_disagreement_on_a_sampled_decision_refuses_and_withdraws_trust(
    agreement: PolicyBundle, facts_of: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls(monkeypatch)
    engine = PolicyEngine(agreement, schema_every=2)
    denied = facts_of(max_records=10**6)  # refused by a forbid rule
    first = engine.decide(denied)
    assert not first.allowed and "POLICY_ERROR" not in first.codes
    calls.lie = True
    engine.decide(denied)  # not sampled: trusted, evaluated without the schema (and lied to)
    with caplog.at_level(logging.ERROR, logger="comity.policy"):
        sampled = engine.decide(denied)
    assert not sampled.allowed and "POLICY_ERROR" in sampled.codes
    assert "disagrees" in caplog.text
    calls.lie = False
    before = calls.with_schema
    assert not engine.decide(denied).allowed  # the shape must be proved again: with the schema
    assert calls.with_schema == before + 1


def test_a_shape_the_schema_refuses_is_never_trusted(
    agreement: PolicyBundle, facts: QueryFacts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The agreement's schema has no node subject facts: every such request is validated, and refused.
    calls = Calls(monkeypatch)
    engine = PolicyEngine(agreement, schema_every=10**9)
    subject = KnownSubject(nationalities=(), residences=(), countries=(), records=1, order_outcomes=0)
    mismatched = dataclasses.replace(facts, subject=subject)
    for _ in range(3):
        d = engine.decide(mismatched)
        assert not d.allowed and "POLICY_ERROR" in d.codes
    assert calls.with_schema == 3


def test_the_shape_ignores_values_and_sees_every_type(agreement: PolicyBundle, facts_of: Any) -> None:
    engine = PolicyEngine(agreement)
    shape = request_shape(engine.cedar_request(facts_of()))
    other_values = facts_of(requesting_agency="x", max_records=7, case_reference="", categories=("TRAFFIC",))
    assert request_shape(engine.cedar_request(other_values)) == shape
    assert request_shape(engine.cedar_request(facts_of(kind="HIT_CHECK"))) != shape
    assert request_shape(engine.cedar_request(facts_of(justification_reused=None))) != shape
    request = engine.cedar_request(facts_of())
    request["context"]["max_records"] = "7"
    assert request_shape(request) != shape
    request["context"]["max_records"] = 7
    request["context"]["categories"] = []
    assert request_shape(request) != shape  # an empty set has no element type to check
