"""A receipt proves the whole story of one query, or is refused naming what is missing or tampered with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from receipt_world import (
    NOW,
    World,
    decision,
    digest_of,
    disclosure,
    emergency,
    failure,
    node_decision,
    records,
    records_digest,
    refusal,
    statement,
    world,
)  # fmt: skip

from comity.audit.receipt import verify_query_receipt
from comity.audit.receipt_refusals import QuorumPending, ReceiptInvalid
from comity.audit.receipt_trust import KeysTrust
from comity.core.keys import SigningKey
from comity.v1 import comity_pb2 as pb


def _trust(w: World) -> KeysTrust:
    return KeysTrust(w.log.verifier, {"ca-node": w.node_key.verifying_key})


def _check(w: World, receipt: pb.Receipt, code: str) -> ReceiptInvalid:
    with pytest.raises(ReceiptInvalid) as info:
        verify_query_receipt(receipt, _trust(w), records=records_digest(records()), require_quorum=False)
    assert info.value.check == code, info.value.message
    assert info.value.check_codes == [code] and info.value.rule_codes == ["AUDIT_FIELDS"]
    return info.value


@pytest.fixture
def log() -> World:
    """Query q0 answered, q1 answered, q2 denied, q3 refused before policy, q4 failed at the node."""
    w = world()
    w.answered("q0")
    w.answered("q1")
    w.add(decision("q2", allowed=False))
    w.add(refusal("q3"))
    w.add(decision("q4"))
    w.add(emergency("q4"))
    w.add(failure("q4"))
    return w


def test_an_answer_receipt_proves_decision_disclosure_statement_and_records(log: World) -> None:
    verified = verify_query_receipt(
        log.receipt("q1", log.of("q1")), _trust(log), records=records_digest(records()), require_quorum=False
    )
    assert verified.outcome == "answered" and verified.tree_size == len(log.entries)
    assert verified.statement is not None and verified.statement.record_count == 3
    assert verified.entries.decision is not None and verified.entries.decision.decision == "ALLOW"
    assert verified.quorum_pending  # bare keys know no witness policy


@pytest.mark.parametrize(
    ("query_id", "entries", "outcome"),
    [("q2", 1, "denied"), ("q3", 1, "refused"), ("q4", 3, "failed")],
)
def test_every_outcome_has_its_complete_receipt(
    log: World, query_id: str, entries: int, outcome: str
) -> None:
    assert len(log.of(query_id)) == entries
    verified = verify_query_receipt(
        log.receipt(query_id, log.of(query_id)), _trust(log), require_quorum=False
    )
    assert verified.outcome == outcome


def test_strict_verification_says_quorum_pending(log: World) -> None:
    with pytest.raises(QuorumPending, match="quorum pending"):
        verify_query_receipt(log.receipt("q1", log.of("q1")), _trust(log))


def test_an_edited_node_statement_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    statement = pb.NodeStatement.FromString(receipt.node_statement.payload)
    statement.record_count = 2
    receipt.node_statement.payload = statement.SerializeToString()
    error = _check(log, receipt, "RECEIPT_NODE_STATEMENT")
    assert "not the one the disclosure entry logged" in error.message


def test_a_statement_not_signed_by_the_node_is_refused() -> None:
    w = world()
    logged = w.answered("q1", key=SigningKey.generate("ca-node"))  # logged as is, signed by an impostor
    error = _check(w, w.receipt("q1", logged), "RECEIPT_NODE_STATEMENT")
    assert "not signed by any key the federation lists for node 'ca-node'" in error.message


def test_a_changed_query_id_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    receipt.query_id = "q0"
    error = _check(log, receipt, "RECEIPT_FOREIGN_ENTRY")
    assert "'q1'" in error.message and "query id" in error.message


def test_a_changed_query_digest_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    receipt.query_digest = digest_of("q0")
    assert "query digest" in _check(log, receipt, "RECEIPT_FOREIGN_ENTRY").message


def test_a_removed_disclosure_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    del receipt.entries[2]
    receipt.ClearField("node_statement")
    assert "neither its disclosure nor its failure" in _check(log, receipt, "RECEIPT_OUTCOME_MISSING").message


def test_a_removed_decision_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    del receipt.entries[0]
    _check(log, receipt, "RECEIPT_DECISION_MISSING")


def test_an_entry_swapped_in_from_another_query_is_refused(log: World) -> None:
    q0, q1 = log.of("q0"), log.of("q1")
    # q1's decision and node decision, q0's disclosure (proved, in the same log)
    receipt = log.receipt("q1", [*q1[:2], q0[2]])
    error = _check(log, receipt, "RECEIPT_FOREIGN_ENTRY")
    assert "entry 2 (disclosed)" in error.message


def test_an_entry_that_is_not_in_the_log_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    receipt.entries[2].entry = receipt.entries[2].entry.replace(b'"hit":true', b'"hit":false')
    _check(log, receipt, "RECEIPT_INCLUSION")


def test_a_checkpoint_signed_by_another_key_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    other = world().log
    receipt.checkpoint.signed_note = log.note(signer=other)[0]
    _check(log, receipt, "RECEIPT_CHECKPOINT")


def test_entries_beyond_the_outcome_are_refused(log: World) -> None:
    q4 = log.of("q4")
    _check(log, log.receipt("q4", [*q4, q4[0]]), "RECEIPT_UNEXPECTED_ENTRY")  # one entry twice
    w = world()
    w.add(decision("q9", allowed=False))
    w.add(failure("q9"))
    assert (
        "other entries beside its DENY"
        in _check(w, w.receipt("q9", [0, 1]), "RECEIPT_UNEXPECTED_ENTRY").message
    )


def test_records_other_than_those_signed_are_refused(log: World) -> None:
    altered = records()
    altered[0].fields["a"] = "changed"
    with pytest.raises(ReceiptInvalid) as info:
        verify_query_receipt(
            log.receipt("q1", log.of("q1")),
            _trust(log),
            records=records_digest(altered),
            require_quorum=False,
        )
    assert info.value.check == "RECEIPT_RECORDS"


def test_a_statement_dated_outside_the_logged_query_is_refused() -> None:
    w = world()
    logged = w.answered("q1", answered_at=NOW - timedelta(days=30))  # back-dated into an old key's window
    assert (
        "outside the time between" in _check(w, w.receipt("q1", logged), "RECEIPT_STATEMENT_BINDING").message
    )


def test_a_receipt_without_a_checkpoint_or_entries_is_refused(log: World) -> None:
    receipt = log.receipt("q1", log.of("q1"))
    receipt.ClearField("checkpoint")
    _check(log, receipt, "RECEIPT_FORMAT")
    empty = log.receipt("q1", [])
    _check(log, empty, "RECEIPT_FORMAT")


def test_the_nodes_signed_decision_completes_an_answer_or_a_node_refusal() -> None:
    w = world()
    q1 = w.answered("q1")
    w.add(decision("q2"))
    w.add(node_decision("q2", w.node_key, allowed=False))
    w.add(decision("q3"))
    w.add(node_decision("q3", SigningKey.generate("ca-node"), allowed=False))  # forged by an impostor
    answered = verify_query_receipt(w.receipt("q1", q1), _trust(w), require_quorum=False)
    assert answered.outcome == "answered" and answered.entries.node_decision is not None
    assert answered.entries.node_decision.decision == "ALLOW"
    refused = verify_query_receipt(w.receipt("q2", w.of("q2")), _trust(w), require_quorum=False)
    assert refused.outcome == "refused by node"
    # The node's allowance without the disclosure proves no answer.
    without = w.receipt("q1", q1[:2])
    without.ClearField("node_statement")
    _check(w, without, "RECEIPT_OUTCOME_MISSING")
    error = _check(w, w.receipt("q3", w.of("q3")), "RECEIPT_NODE_STATEMENT")
    assert "not signed by any key" in error.message


def _answer_with(w: World, query_id: str, allowance: bytes | None) -> list[int]:
    """Log ``query_id`` answered (decision, then ``allowance`` if any, then the disclosure)."""
    envelope = statement(query_id, w.node_key)
    w.statements[query_id] = envelope
    logged = [w.add(decision(query_id))]
    if allowance is not None:
        logged.append(w.add(allowance))
    return [*logged, w.add(disclosure(query_id, envelope))]


def test_a_disclosure_without_the_nodes_signed_decision_is_refused(log: World) -> None:
    # As a gateway that released an answer around the node would log it: no node decision.
    w = world()
    error = _check(w, w.receipt("q1", _answer_with(w, "q1", None)), "RECEIPT_NODE_DECISION_MISSING")
    assert "'q1' disclosed" in error.message and "node's signed decision" in error.message
    # Cut out of a complete receipt, the node decision is missed just the same.
    receipt = log.receipt("q1", log.of("q1"))
    del receipt.entries[1]
    receipt.ClearField("node_decision")
    _check(log, receipt, "RECEIPT_NODE_DECISION_MISSING")


def test_a_disclosure_the_node_refused_is_refused() -> None:
    w = world()
    denied = node_decision("q1", w.node_key, allowed=False, statement=statement("q1", w.node_key))
    error = _check(w, w.receipt("q1", _answer_with(w, "q1", denied)), "RECEIPT_UNEXPECTED_ENTRY")
    assert "a disclosure the node refused" in error.message


def test_a_node_decision_logged_with_another_statement_than_the_disclosed_one_is_refused() -> None:
    w = world()
    other = statement("q1", w.node_key, answered_at=NOW - timedelta(seconds=1))  # signed, not disclosed
    allowance = node_decision("q1", w.node_key, allowed=True, statement=other)
    error = _check(w, w.receipt("q1", _answer_with(w, "q1", allowance)), "RECEIPT_NODE_STATEMENT")
    assert "logged with the node's decision is not the one disclosed" in error.message
    # An allowance logged without any statement does not name the disclosed answer either.
    bare = node_decision("q2", w.node_key, allowed=True)
    error = _check(w, w.receipt("q2", _answer_with(w, "q2", bare)), "RECEIPT_NODE_STATEMENT")
    assert "logged with the node's decision is missing" in error.message


def test_a_node_decision_about_another_query_or_by_an_impostor_is_refused(log: World) -> None:
    w = world()
    forged = node_decision(
        "q1", SigningKey.generate("ca-node"), allowed=True, statement=statement("q1", w.node_key)
    )
    _check(w, w.receipt("q1", _answer_with(w, "q1", forged)), "RECEIPT_NODE_STATEMENT")
    # q0's node decision in q1's receipt: named by its entry, so refused as foreign.
    q0, q1 = log.of("q0"), log.of("q1")
    error = _check(log, log.receipt("q1", [q1[0], q0[1], q1[2]]), "RECEIPT_FOREIGN_ENTRY")
    assert "entry 1 (node_decision)" in error.message


def test_a_disclosure_logged_before_the_nodes_allowance_is_refused() -> None:
    w = world()
    envelope = statement("q1", w.node_key)
    w.statements["q1"] = envelope
    logged = [w.add(decision("q1")), w.add(disclosure("q1", envelope))]
    logged.append(w.add(node_decision("q1", w.node_key, allowed=True, statement=envelope)))
    error = _check(w, w.receipt("q1", logged), "RECEIPT_UNEXPECTED_ENTRY")
    assert "disclosure logged before the node's decision to allow it" in error.message
