"""Checking a node's signed decision before it is logged: forged, misattributed, mismatched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comity.audit.events import NodeDecisionEvent, decode_event
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.errors import ComityError, Unauthenticated
from comity.core.keys import SigningKey
from comity.gateway.node_decisions import NodeDecisionLog, verify_node_decision
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


def _statement(key: SigningKey, digest: bytes = DIGEST, *, node_id: str = "") -> pb.Envelope:
    body = pb.NodeStatement(node_id=node_id or key.key_id, query_id="q-9", query_digest=digest)
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
        (_signed(allowed=True), {"statement": _statement(CA, node_id="us-node")}),  # naming another node
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


def _answer(decision: pb.Envelope | None, statement: pb.Envelope | None) -> pb.QueryResult:
    result = pb.QueryResult(query_id="q-9", node_id="ca-node")
    if decision is not None:
        result.node_decision.CopyFrom(decision)
    if statement is not None:
        result.receipt.node_statement.CopyFrom(statement)
    return result


@pytest.mark.parametrize(
    ("result", "check", "words"),
    [
        (_answer(None, _statement(CA)), "NODE_ANSWER_UNSIGNED", "carries no node decision"),
        (_answer(_signed(allowed=True), None), "NODE_ANSWER_UNSIGNED", "carries no node statement"),
        (_answer(_signed(), _statement(CA)), "NODE_ANSWER_UNSIGNED", "its signed decision refuses"),
        (_answer(_signed(allowed=True), _statement(US)), "NODE_ANSWER_KEY", "not the deciding node's"),
    ],
    ids=["no_decision", "no_statement", "a_refusal", "another_nodes_statement"],
)
def test_an_answer_without_the_nodes_signed_allowance_and_statement_is_refused(
    result: pb.QueryResult, check: str, words: str
) -> None:
    log = NodeDecisionLog(None, dict(KEYS))  # type: ignore[arg-type]  # verifying only: no ledger
    with pytest.raises(ComityError) as refused:
        log.verify_answer(result, node="ca-node", query_digest=DIGEST)
    assert refused.value.check_codes == [check]
    assert words in refused.value.message and "nothing was released" in refused.value.message


def test_an_answer_with_the_nodes_signed_allowance_and_statement_passes() -> None:
    log = NodeDecisionLog(None, dict(KEYS))  # type: ignore[arg-type]  # verifying only: no ledger
    result = _answer(_signed(allowed=True), _statement(CA))
    signed, statement = log.verify_answer(result, node="ca-node", query_digest=DIGEST)
    assert signed.allowed and statement.node_id == "ca-node" and statement.query_digest == DIGEST
