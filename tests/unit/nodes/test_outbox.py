"""The node's outbox on SQLite and PostgreSQL: durable, ordered, forgotten only when acknowledged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from comity.core.dsse import PAYLOAD_NODE_DECISION, verify_envelope
from comity.core.keys import SigningKey
from comity.nodes.decisions import NodeDecisions
from comity.nodes.outbox import Outbox
from comity.policy.engine import Decision
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def outbox(store_url: str) -> Iterator[Outbox]:
    box = Outbox(store_url, table=f"t{uuid.uuid4().hex[:12]}_outbox")
    yield box
    box.drop()
    box.close()


def _envelope(n: int) -> pb.Envelope:
    return pb.Envelope(payload_type="test", payload=bytes([n]) * 8)


def test_items_come_back_in_order_until_acknowledged(outbox: Outbox) -> None:
    first = outbox.put(_envelope(1))
    second = outbox.put(_envelope(2), _envelope(3))
    items = outbox.pending()
    assert [i.sequence for i in items] == [first, second]
    assert items[0].node_decision == _envelope(1) and not items[0].HasField("node_statement")
    assert items[1].node_statement == _envelope(3)
    assert [i.sequence for i in outbox.pending(after=first)] == [second]
    assert [i.sequence for i in outbox.pending(limit=1)] == [first]
    assert outbox.acknowledge([first, 999]) == 1
    assert [i.sequence for i in outbox.pending()] == [second]


def test_items_survive_reopening(store_url: str) -> None:
    table = f"t{uuid.uuid4().hex[:12]}_outbox"
    box = Outbox(store_url, table=table)
    seq = box.put(_envelope(7))
    box.close()
    again = Outbox(store_url, table=table)
    try:
        assert [i.sequence for i in again.pending()] == [seq]
    finally:
        again.drop()
        again.close()


def test_a_refusal_is_signed_with_its_real_rules_and_kept(outbox: Outbox) -> None:
    key = SigningKey.generate("ca-node")
    decisions = NodeDecisions(node_id="ca-node", key=key, outbox=outbox, clock=lambda: NOW)
    decision = Decision(False, [], ["NO_TARGETING", "QUOTA"], "sha256:ab", "1")
    query = pb.Query(query_id="q-1")
    signed = decisions.sign(query, b"\7" * 32, decision, sealed=b"commitment")
    decisions.refused(signed)
    payload, _ = verify_envelope(
        signed, payload_type=PAYLOAD_NODE_DECISION, keys={"ca-node": key.verifying_key}, what="node decision"
    )
    said = pb.NodeDecision.FromString(payload)
    assert (said.node_id, said.query_id, said.decision) == ("ca-node", "q-1", "DENY")
    assert list(said.rule_codes) == ["NO_TARGETING", "QUOTA"] and said.bundle_digest == "sha256:ab"
    assert said.sealed == b"commitment" and said.decided_at.ToDatetime(tzinfo=UTC) == NOW
    assert [i.node_decision for i in outbox.pending()] == [signed]
