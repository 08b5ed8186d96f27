"""Who reads which entry: the rule of comity.audit.readers, table-driven, without a network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comity.audit import events
from comity.audit.readers import NO_ONE, ReadableSets, ReaderIndex, Readership, readers_label

AT = datetime(2026, 9, 1, 12, tzinfo=UTC)
D = bytes(32)

READERSHIP = Readership(
    agency_country={"xa.police": "XA", "xb.police": "XB", "xc.police": "XC"},
    node_country={"xa-node": "XA", "xb-node": "XB", "xc-node": "XC"},
    agreement_parties={"xa-xb": ("XA", "XB"), "multi": ("XA", "XB", "XC")},
)


def _decision(query_id: str, agency: str, node: str, agreement: str) -> bytes:
    entry, _ = events.decision_event(
        query_id=query_id, query_digest=D, at=AT, investigator="i", agency=agency, target_node=node,
        order_id="o", offence_code="X1", categories=["SUBSCRIBER"], allowed=True, rule_codes=[],
        bundle_digest="sha256:00", selectors=[("EMAIL", "a@example.org")], agreement=agreement,
    )  # fmt: skip
    return entry


def _refused(query_id: str, agency: str, node: str = "") -> bytes:
    return events.refused_event(
        query_id=query_id, query_digest=D, at=AT, investigator="i", agency=agency,
        reason_code="PERMISSION_DENIED", checks=[("NO_AGREEMENT", "NO_AGREEMENT")], target_node=node,
    )  # fmt: skip


def _forwarded(query_id: str, node: str) -> bytes:
    return events.forwarded_event(query_id=query_id, query_digest=D, at=AT, node=node)


def _emergency(query_id: str, order_id: str, agency: str, issuing: str) -> bytes:
    return events.emergency_event(
        query_id=query_id, order_id=order_id, order_digest=D, at=AT, investigator="i", agency=agency,
        issuing_country=issuing, authority="a", validate_by=AT,
    )  # fmt: skip


def _validated(order_id: str, agency: str) -> bytes:
    return events.validated_event(
        order_id=order_id, order_digest=D, validation_digest=D, at=AT, agency=agency, authority="a",
        confirmed=True, late=False,
    )  # fmt: skip


def _throttled(*agencies: str) -> bytes:
    return events.throttled_event(
        at=AT, window_start=AT, window_end=AT, count=len(agencies), requests_root=D,
        by_requester=[("i", a, 1) for a in agencies],
    )  # fmt: skip


# Each case: entries fed in log order, and the readers expected of the last one.
CASES = {
    "a decision: its agreement's parties": ([_decision("q1", "xa.police", "xb-node", "xa-xb")], {"XA", "XB"}),
    "a multilateral agreement: every party": (
        [_decision("q1", "xa.police", "xb-node", "multi")],
        {"XA", "XB", "XC"},
    ),
    "an agreement the federation does not list: no one": (
        [_decision("q1", "xa.police", "xb-node", "gone")],
        set(),
    ),
    "no agreement named: the two countries": ([_decision("q1", "xa.police", "xc-node", "")], {"XA", "XC"}),
    "refused before policy, naming no node: the requesting country": ([_refused("q1", "xc.police")], {"XC"}),
    "refused before policy: the requesting country and the country asked": (
        [_refused("q1", "xc.police", "xa-node")],
        {"XC", "XA"},
    ),
    "a refusal's later entries follow it": (
        [_refused("q1", "xc.police", "xa-node"), _forwarded("q1", "xa-node")],
        {"XC", "XA"},
    ),
    "a forwarded entry: its query's readers": (
        [_decision("q1", "xa.police", "xb-node", "xa-xb"), _forwarded("q1", "xb-node")],
        {"XA", "XB"},
    ),
    "a forwarded entry of an unknown query: no one": ([_forwarded("q9", "xb-node")], set()),
    "an emergency: its query's readers": (
        [_decision("q1", "xa.police", "xb-node", "xa-xb"), _emergency("q1", "o1", "xa.police", "XA")],
        {"XA", "XB"},
    ),
    "an emergency without its decision: agency and issuing country": (
        [_emergency("q1", "o1", "xa.police", "XC")],
        {"XA", "XC"},
    ),
    "a validation: its emergency's readers": (
        [
            _decision("q1", "xa.police", "xb-node", "xa-xb"),
            _emergency("q1", "o1", "xa.police", "XA"),
            _validated("o1", "xa.police"),
        ],
        {"XA", "XB"},
    ),
    "a validation without its emergency: the agency's country": ([_validated("o2", "xc.police")], {"XC"}),
    "throttling: the countries of the agencies it lists": (
        [_throttled("xa.police", "xc.police", "nobody")],
        {"XA", "XC"},
    ),
    "an entry that is not an event: no one": ([b"not json"], set()),
}


@pytest.mark.parametrize("entries, expected", CASES.values(), ids=CASES.keys())
def test_the_readers_of_an_entry(entries: list[bytes], expected: set[str]) -> None:
    index = ReaderIndex(READERSHIP)
    for data in entries[:-1]:
        index.readers(data)
    assert index.readers(entries[-1]) == frozenset(expected)
    assert index.size == len(entries) and index.by_index[-1] == frozenset(expected)


def test_a_third_country_is_not_among_a_pairs_readers() -> None:
    index = ReaderIndex(READERSHIP)
    story = [_decision("q1", "xa.police", "xb-node", "xa-xb"), _forwarded("q1", "xb-node")]
    assert all("XC" not in index.readers(d) for d in story)


def test_fingerprints_agree_only_on_the_same_entries() -> None:
    a, b = ReadableSets(), ReadableSets()
    for sets in (a, b):
        sets.add(3, b"\x01" * 32, frozenset({"XA", "XB"}))
    b.add(5, b"\x02" * 32, frozenset({"XA", "XB"}))
    a.add_withheld()
    (label, n, fa), (_, m, fb) = a.summary()[0], b.summary()[0]
    assert label == "XA+XB" and (n, m) == (1, 2) and fa != fb and a.withheld == 1
    assert readers_label(NO_ONE) == "(no one)"
