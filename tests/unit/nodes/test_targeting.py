"""The node's own-person check: what the requester sees, what is sealed, what is counted."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from comity.nodes.schema import DataCategory, Record, Selector, SelectorType, default_schema
from comity.nodes.sealed import SCHEME, SealedOpening, seal
from comity.nodes.state import NodeState
from comity.nodes.store import RecordStore
from comity.nodes.subjects import SubjectReader
from comity.nodes.targeting import Answer, NodeRefusal, Targeting
from comity.policy import PolicyBundle, PolicyEngine, bundle_path
from comity.v1 import comity_pb2 as pb

BUNDLE = PolicyBundle.load(bundle_path("ca-inbound"))
ENGINE = PolicyEngine(BUNDLE)
# The bundle's own default facts: an allowed US query to the Canadian node.
DEFAULTS = next(c.facts for c in BUNDLE.tests if c.allowed)
AT = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
EMAIL = SelectorType.EMAIL


@pytest.fixture
def state(store_url: str) -> Iterator[NodeState]:
    s = NodeState(store_url, table_prefix=f"t{uuid.uuid4().hex[:12]}_")
    yield s
    s.drop()
    s.close()


def _account(email: str, nationality: str, residence: str) -> Record:
    fields = {
        "account_id": email.upper(),
        "email": email,
        "provider": "p",
        "full_name": "n",
        "subject_nationality": nationality,
        "subject_residence": residence,
    }
    return Record(f"acc-{email}", "subscriber_account", DataCategory.SUBSCRIBER, AT, fields)


@pytest.fixture
def targeting(store: RecordStore, state: NodeState) -> Targeting:
    store.put(
        [
            _account("canadian@example.ca", "CA", "CA"),
            _account("american@example.com", "US", "US"),
            _account("garbled@example.org", "Canada", "CA"),
        ]
    )
    return Targeting(
        reader=SubjectReader(store, default_schema()),
        state=state,
        bundle=BUNDLE,
        node_id="ca-node",
        country="CA",
        clock=lambda: NOW,
    )


def _decide(
    t: Targeting, email: str, *, kind: str = "FETCH", order: str = "O-1", **changes: object
) -> Answer:
    selectors = [Selector(EMAIL, email)]
    subject, unreadable = t.known_subject(selectors, order)
    facts = dataclasses.replace(DEFAULTS, kind=kind, subject=subject, **changes)  # type: ignore[arg-type]
    verdict = t.judge(
        ENGINE.decide(facts),
        kind=kind,
        query_id=str(uuid.uuid4()),
        order_id=order,
        subject=subject,
        unreadable=unreadable,
    )
    return verdict.answer


def _refusal(t: Targeting, email: str, **kw: object) -> NodeRefusal:
    with pytest.raises(NodeRefusal) as info:
        _decide(t, email, **kw)  # type: ignore[arg-type]
    return info.value


def _public(err: NodeRefusal) -> list[tuple[str, str, str]]:
    return [(v.code, v.message, v.legal_basis) for v in err.violations]


def test_a_foreign_target_is_answered(targeting: Targeting) -> None:
    assert _decide(targeting, "american@example.com") is Answer.ANSWERED
    assert (
        _decide(targeting, "unknown@example.org", kind="HIT_CHECK", has_hit_reference=False)
        is Answer.ANSWERED
    )


def test_an_own_person_hit_check_is_answered_as_a_no_hit(targeting: Targeting) -> None:
    assert (
        _decide(targeting, "canadian@example.ca", kind="HIT_CHECK", has_hit_reference=False) is Answer.NO_HIT
    )


def test_an_own_person_fetch_gets_exactly_the_attestation_refusal(targeting: Targeting) -> None:
    err = _refusal(targeting, "canadian@example.ca")
    attested = ENGINE.decide(
        dataclasses.replace(
            DEFAULTS,
            target_residences=("CA",),
            subject=dataclasses.replace(DEFAULTS.subject, order_outcomes=0),
        )  # type: ignore[arg-type]
    )
    assert _public(err) == [(v.code, v.message, v.legal_basis) for v in attested.violations]
    assert err.rule_codes == ["REFUSED"]
    assert err.message == "refused by ca-node's inbound policy"
    assert err.sealed.scheme == SCHEME and len(err.sealed.commitment) == 32


def test_other_refusing_rules_are_reported_as_without_the_nodes_facts(targeting: Targeting) -> None:
    own = _refusal(targeting, "canadian@example.ca", max_records=51)
    foreign = _refusal(targeting, "american@example.com", max_records=51)
    assert _public(own) == _public(foreign)
    assert own.rule_codes == ["PARTICULARITY"]


def test_unreadable_facts_refuse_both_kinds(targeting: Targeting) -> None:
    assert _refusal(targeting, "garbled@example.org").rule_codes == ["REFUSED"]
    hit = _refusal(targeting, "garbled@example.org", kind="HIT_CHECK", has_hit_reference=False)
    assert hit.rule_codes == ["REFUSED"]


def test_the_order_allowance_runs_out_and_stays_out(targeting: Targeting, state: NodeState) -> None:
    for _ in range(3):
        assert (
            _decide(targeting, "canadian@example.ca", kind="HIT_CHECK", has_hit_reference=False, order="O-9")
            is Answer.NO_HIT
        )
    assert state.outcomes("O-9") == 3
    assert _refusal(
        targeting, "canadian@example.ca", kind="HIT_CHECK", has_hit_reference=False, order="O-9"
    ).rule_codes == ["REFUSED"]
    # Past the limit, even a foreign target under that order is refused; other orders are not.
    assert _refusal(targeting, "american@example.com", order="O-9").rule_codes == ["REFUSED"]
    assert _decide(targeting, "american@example.com", order="O-10") is Answer.ANSWERED


def test_every_decision_is_sealed_and_its_opening_kept(targeting: Targeting, state: NodeState) -> None:
    err = _refusal(targeting, "canadian@example.ca")
    [opening] = state.openings(err.query_id)
    assert opening.opens(err.sealed)
    reason = opening.fields
    assert reason["outcome"] == "REFUSED" and reason["checks"] == ["NO_TARGETING_RECORDS"]
    assert reason["subject"]["nationalities"] == ["CA"]
    assert reason["query_id"] == err.query_id and reason["node_id"] == "ca-node"


def test_outcomes_are_durable(store_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    first = NodeState(store_url, table_prefix=prefix)
    try:
        assert first.outcomes("O") == 0
        assert [first.count_outcome("O") for _ in range(3)] == [1, 2, 3]
        first.close()
        again = NodeState(store_url, table_prefix=prefix)
        assert again.outcomes("O") == 3 and again.outcomes("P") == 0
        again.close()
    finally:
        NodeState(store_url, table_prefix=prefix).drop()


def test_a_query_whose_order_count_moved_meanwhile_is_decided_on_the_count_it_follows(
    targeting: Targeting, state: NodeState
) -> None:
    # Read with the order at 0 outcomes; three other queries under the order meet the own-person
    # rule before this one is counted: it is the fourth, so the order's limit refuses it.
    selectors = [Selector(EMAIL, "canadian@example.ca")]
    subject, _ = targeting.known_subject(selectors, "O-race")
    facts = dataclasses.replace(DEFAULTS, kind="HIT_CHECK", has_hit_reference=False, subject=subject)
    for _ in range(3):
        state.count_outcome("O-race")

    def judge(redecide: object) -> NodeRefusal | Answer:
        try:
            return targeting.judge(
                ENGINE.decide(facts),
                kind="HIT_CHECK",
                query_id=str(uuid.uuid4()),
                order_id="O-race",
                subject=subject,
                redecide=redecide,  # type: ignore[arg-type]
            ).answer
        except NodeRefusal as refusal:
            return refusal

    refused = judge(lambda known: ENGINE.decide(dataclasses.replace(facts, subject=known)))
    assert isinstance(refused, NodeRefusal)
    assert "NO_TARGETING_RECORDS_LIMIT" in refused.decision.internal_reasons
    # Its sealed reason gives the count it was decided on.
    [opening] = state.openings(refused.query_id or "")
    assert opening.fields["subject"]["order_outcomes"] == 3
    # Without deciding again, the stale read answers it as a no-hit: what a burst of queries got.
    assert judge(None) is Answer.NO_HIT


def test_outcomes_counted_at_once_all_count(store_url: str) -> None:
    # Many queries under one new order count their first outcome together: none is lost and
    # none fails (the first count of an order is the racy one).
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    states = [NodeState(store_url, table_prefix=prefix) for _ in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            counts = list(pool.map(lambda i: states[i % 4].count_outcome("O-race"), range(40)))
        assert sorted(counts) == list(range(1, 41))
        assert states[0].outcomes("O-race") == 40
    finally:
        for s in states:
            s.close()
        NodeState(store_url, table_prefix=prefix).drop()


def test_a_sealed_reason_reveals_nothing_without_its_opening() -> None:
    a = seal(query_id="q", node_id="n", outcome="ANSWERED", checks=[])
    b = seal(query_id="q", node_id="n", outcome="ANSWERED", checks=[])
    assert a.reason == b.reason and a.commitment != b.commitment  # fresh salt each time
    assert a.opens(a.to_proto()) and not b.opens(a.to_proto())
    tampered = SealedOpening(a.salt, a.reason.replace(b"ANSWERED", b"REFUSED"))
    assert not tampered.opens(a.to_proto())
    assert not a.opens(pb.SealedReason(scheme="other", commitment=a.commitment))
