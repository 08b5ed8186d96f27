"""Checking a node's signed decision before it is logged: forged, misattributed, mismatched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comity.audit.events import NodeDecisionEvent, decode_event
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.errors import Unauthenticated
from comity.core.keys import SigningKey
from comity.gateway.node_decisions import verify_node_decision
from comity.nodes.decisions import NodeDecisions
from comity.policy.engine import Decision
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
CA = SigningKey.generate("ca-node")
US = SigningKey.generate("us-node")
KEYS = {"ca-node": CA.verifying_key, "us-node": US.verifying_key}
DIGEST = b"\5" * 32


class _NoOutbox:
    def put(self, *_: object) -> int:
        return 0


def _signed(key: SigningKey = CA, *, node_id: str = "ca-node", allowed: bool = False) -> pb.Envelope:
    decisions = NodeDecisions(node_id=node_id, key=key, outbox=_NoOutbox(), clock=lambda: NOW)  # type: ignore[arg-type]
    decision = Decision(allowed, [], [] if allowed else ["QUOTA"], "sha256:cd", "1")
    return decisions.sign(pb.Query(query_id="q-9"), DIGEST, decision)


def _statement(key: SigningKey, digest: bytes = DIGEST) -> pb.Envelope:
    body = pb.NodeStatement(node_id=key.key_id, query_id="q-9", query_digest=digest)
    return sign_envelope(PAYLOAD_NODE_STATEMENT, body.SerializeToString(), key)


def test_a_genuine_decision_gives_one_entry_whatever_the_time_of_logging() -> None:
    keys = dict(KEYS)
    signed = verify_node_decision(_signed(), node_keys=keys, node="ca-node", query_digest=DIGEST)
    event = decode_event(signed.entry())
    assert isinstance(event, NodeDecisionEvent)
    assert (event.decision, event.rule_codes, event.bundle_digest) == ("DENY", ("QUOTA",), "sha256:cd")
    assert event.at == "2026-11-02T09:30:00.000000Z" and event.query_digest == DIGEST.hex()
    assert signed.entry() == verify_node_decision(signed.envelope, node_keys=keys).entry()


@pytest.mark.parametrize(
    ("envelope", "checks"),
    [
        (_signed(US, node_id="ca-node"), {}),  # signed by another node than the one it names
        (_signed(), {"node": "us-node"}),  # from another node than the one asked
        (_signed(), {"query_digest": b"\6" * 32}),  # about another query
        (_signed(allowed=True), {"statement": _statement(US)}),  # the answer signed by another node
        (_signed(allowed=True), {"statement": _statement(CA, b"\6" * 32)}),  # an answer to another query
    ],
)
def test_a_forged_or_mismatched_decision_is_refused(envelope: pb.Envelope, checks: dict[str, object]) -> None:
    keys = dict(KEYS)
    with pytest.raises(Unauthenticated):
        verify_node_decision(envelope, node_keys=keys, **checks)  # type: ignore[arg-type]


def test_a_tampered_decision_is_refused() -> None:
    envelope = _signed()
    envelope.payload = envelope.payload.replace(b"QUOTA", b"QUOTB")
    with pytest.raises(Unauthenticated):
        verify_node_decision(envelope, node_keys=dict(KEYS))
