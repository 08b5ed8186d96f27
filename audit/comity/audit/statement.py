"""A node's signed statement, as a disclosure entry logs it: signed in its key's window, bound to the query.

The disclosure entry holds the node's statement envelope byte for byte, so the statement a
receipt proves is the logged one. :func:`verify_statement` checks, in order:

1. the envelope is a node statement signed by a key the federation lists for the disclosing node
   (checked over the exact payload bytes before anything parses them);
2. that key was valid when the node answered (``answered_at``, which must lie between the
   decision and the disclosure entries, give or take :data:`MAX_CLOCK_SKEW`): a statement
   signed by a rotated-out key outside its window is refused;
3. the statement names this query (id and digest) and the disclosing node, and says what the
   disclosure logged (hit, record count, records digest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from google.protobuf.message import DecodeError

from comity.audit.events import DecisionEvent, DisclosedEvent, NodeDecisionEvent
from comity.audit.receipt_refusals import receipt_invalid
from comity.core.dsse import PAYLOAD_NODE_DECISION, PAYLOAD_NODE_STATEMENT, EnvelopeError, verify_envelope
from comity.core.errors import InvalidArgument
from comity.core.keys import VerifyingKey
from comity.v1 import comity_pb2 as pb

__all__ = [
    "MAX_CLOCK_SKEW",
    "DatedKeys",
    "logged_envelope",
    "open_statement",
    "verify_node_decision",
    "verify_statement",
]

#: How far a node's clock may stand from the gateway's: the statement's answering time must lie
#: within this of the decision (before) and of the disclosure (after).
MAX_CLOCK_SKEW = timedelta(minutes=5)


class DatedKeys(Protocol):
    """A key history whose keys are valid over periods of time (``comity.core.keyhistory.KeyHistory``)."""

    def at(self, when: datetime) -> tuple[VerifyingKey, ...]:
        """Every key valid at ``when``."""
        ...

    def all(self) -> tuple[VerifyingKey, ...]:
        """Every key the history lists, retired ones too."""
        ...


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def logged_envelope(disclosure: DisclosedEvent) -> pb.Envelope:
    """The node statement envelope exactly as the disclosure entry logged it."""
    try:
        return pb.Envelope.FromString(bytes.fromhex(disclosure.node_signature))
    except (ValueError, DecodeError):
        raise receipt_invalid(
            "RECEIPT_NODE_STATEMENT", detail="logged in the disclosure cannot be read"
        ) from None


def _signed_payload(
    envelope: pb.Envelope, node: str, keys: DatedKeys, payload_type: str, what: str
) -> tuple[bytes, VerifyingKey]:
    for key in keys.all():
        try:
            return verify_envelope(envelope, payload_type=payload_type, keys={node: key}, what=what)
        except (EnvelopeError, InvalidArgument):
            continue
    raise receipt_invalid(
        "RECEIPT_NODE_STATEMENT", detail=f"is not signed by any key the federation lists for node {node!r}"
    )


def _signed(envelope: pb.Envelope, node: str, keys: DatedKeys) -> tuple[pb.NodeStatement, VerifyingKey]:
    payload, signer = _signed_payload(envelope, node, keys, PAYLOAD_NODE_STATEMENT, "node statement")
    try:
        return pb.NodeStatement.FromString(payload), signer
    except DecodeError:
        raise receipt_invalid("RECEIPT_NODE_STATEMENT", detail="is not a NodeStatement") from None


def open_statement(envelope: pb.Envelope, node: str, keys: DatedKeys) -> pb.NodeStatement:
    """The statement in ``envelope``, signed by ``node`` with a key valid when it says it answered."""
    statement, signer = _signed(envelope, node, keys)
    if not statement.HasField("answered_at"):
        raise receipt_invalid("RECEIPT_NODE_STATEMENT", detail="does not say when the node answered")
    answered = statement.answered_at.ToDatetime(tzinfo=UTC)
    if signer not in keys.at(answered):
        raise receipt_invalid("RECEIPT_STATEMENT_KEY", node=node, at=answered.isoformat())
    return statement


def verify_statement(
    disclosure: DisclosedEvent,
    decision: DecisionEvent,
    *,
    query_id: str,
    query_digest: bytes,
    keys: DatedKeys,
) -> pb.NodeStatement:
    """Verify the statement ``disclosure`` logged; return it. Raises ``ReceiptInvalid``."""
    statement = open_statement(logged_envelope(disclosure), disclosure.node, keys)
    answered = statement.answered_at.ToDatetime(tzinfo=UTC)
    if not _time(decision.at) - MAX_CLOCK_SKEW <= answered <= _time(disclosure.at) + MAX_CLOCK_SKEW:
        raise receipt_invalid(
            "RECEIPT_STATEMENT_BINDING",
            detail=f"says the node answered at {answered.isoformat()}, outside the time between the "
            f"logged decision ({decision.at}) and disclosure ({disclosure.at})",
        )
    checks = [
        (statement.node_id == disclosure.node, f"names node {statement.node_id!r}, not {disclosure.node!r}"),
        (statement.query_id == query_id, f"answers query id {statement.query_id!r}, not {query_id!r}"),
        (statement.query_digest == query_digest, "answers another query (its query digest differs)"),
        (statement.hit == disclosure.hit, "and the logged disclosure disagree about the hit"),
        (statement.record_count == disclosure.record_count, "and the logged disclosure count other records"),
        (
            statement.records_digest.hex() == disclosure.records_digest,
            "and the logged disclosure digest other records",
        ),
    ]
    for ok, detail in checks:
        if not ok:
            raise receipt_invalid("RECEIPT_STATEMENT_BINDING", detail=detail)
    return statement


def verify_node_decision(
    event: NodeDecisionEvent, *, query_id: str, query_digest: bytes, keys: DatedKeys
) -> pb.NodeDecision:
    """Verify the node's signed decision a ``node_decision`` entry logged, bound to this query.

    Signed by a response key of the node valid when it decided (``decided_at``), naming this
    query (id and digest), the node and the decision the entry logged. Raises ``ReceiptInvalid``.
    """
    try:
        envelope = pb.Envelope.FromString(bytes.fromhex(event.node_decision))
    except (ValueError, DecodeError):
        raise receipt_invalid("RECEIPT_NODE_STATEMENT", detail="'s decision logged cannot be read") from None
    payload, signer = _signed_payload(envelope, event.node, keys, PAYLOAD_NODE_DECISION, "node decision")
    try:
        decision = pb.NodeDecision.FromString(payload)
    except DecodeError:
        raise receipt_invalid("RECEIPT_NODE_STATEMENT", detail="'s decision is not a NodeDecision") from None
    decided = decision.decided_at.ToDatetime(tzinfo=UTC)
    if not decision.HasField("decided_at") or signer not in keys.at(decided):
        raise receipt_invalid("RECEIPT_STATEMENT_KEY", node=event.node, at=decided.isoformat())
    checks = [
        (decision.node_id == event.node, f"'s decision names node {decision.node_id!r}, not {event.node!r}"),
        (decision.query_id == query_id, f"'s decision is about query id {decision.query_id!r}"),
        (decision.query_digest == query_digest, "'s decision is about another query (digest)"),
        (decision.decision == event.decision, "'s decision is not the one logged"),
    ]
    for ok, detail in checks:
        if not ok:
            raise receipt_invalid("RECEIPT_STATEMENT_BINDING", detail=detail)
    return decision
