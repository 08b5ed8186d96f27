"""The entries of one query, as a receipt holds them: bound to the query, complete for the outcome.

Every entry must name the receipt's query id (and, where the event carries one, its digest);
then the set must be exactly what the outcome logs, in log order:

======================  ====================================================================
outcome                 entries
======================  ====================================================================
``refused``             one ``refused`` entry (a refusal before any policy decision)
``denied``              one ``decision`` entry, DENY
``answered``            one ``decision`` (ALLOW), at most one ``emergency``, the node's
                        ``node_decision`` (ALLOW; its statement the disclosed one), one
                        ``disclosed``
``refused by node``     one ``decision`` (ALLOW), at most one ``emergency``, the node's
                        ``node_decision`` (DENY), at most one ``failed``
``failed``              one ``decision`` (ALLOW), at most one ``emergency``, the node's
                        ``node_decision`` if logged, one ``failed``
``validated``           one ``validated`` entry (an emergency order's review; the receipt's
                        query id is the order id, its digest the validation's)
======================  ====================================================================

A receipt cannot prove that the log holds no *other* entry about the query; the full log's
verification (``comity audit verify``) and the legal officers' reading of it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from comity.audit.errors import InvalidEntry
from comity.audit.events import (
    DecisionEvent,
    DisclosedEvent,
    EmergencyEvent,
    Event,
    FailedEvent,
    ForwardedEvent,
    NodeDecisionEvent,
    RefusedEvent,
    ThrottledEvent,
    ValidatedEvent,
    decode_event,
)
from comity.audit.receipt_refusals import receipt_invalid

__all__ = ["Outcome", "QueryEntries", "query_entries"]

E = TypeVar("E")

Outcome = Literal["refused", "denied", "answered", "failed", "refused by node", "validated"]


@dataclass(frozen=True, slots=True)
class QueryEntries:
    """A receipt's entries, checked: what they prove happened to the query."""

    outcome: Outcome
    decision: DecisionEvent | None = None
    disclosure: DisclosedEvent | None = None
    failure: FailedEvent | None = None
    refusal: RefusedEvent | None = None
    emergency: EmergencyEvent | None = None
    validation: ValidatedEvent | None = None
    node_decision: NodeDecisionEvent | None = None


def _decode(index: int, entry: bytes) -> Event:
    try:
        return decode_event(entry)
    except InvalidEntry as exc:
        raise receipt_invalid("RECEIPT_ENTRY", index=index, detail=f"cannot be read: {exc.message}") from None


def _bind(index: int, event: Event, query_id: str, digest: str) -> None:
    """Raise unless ``event`` names this query (a validation: this order and validation)."""
    if isinstance(event, ThrottledEvent):  # a rate-limit window's count, about no one query
        raise receipt_invalid(
            "RECEIPT_FOREIGN_ENTRY", index=index, kind=event.kind, other="a rate-limit window", what="query"
        )
    if isinstance(event, ValidatedEvent):
        pairs = [
            (event.order_id, query_id, "order id"),
            (event.validation_digest, digest, "validation digest"),
        ]
    elif isinstance(event, EmergencyEvent):
        pairs = [(event.query_id, query_id, "query id")]
    else:
        pairs = [(event.query_id, query_id, "query id"), (event.query_digest, digest, "query digest")]
    for found, expected, what in pairs:
        if found != expected:
            raise receipt_invalid(
                "RECEIPT_FOREIGN_ENTRY", index=index, kind=event.kind, other=repr(found), what=what
            )


def _one(events: Sequence[Event], cls: type[E], what: str) -> E | None:
    found = [e for e in events if isinstance(e, cls)]
    if len(found) > 1:
        raise receipt_invalid(
            "RECEIPT_UNEXPECTED_ENTRY", detail=f"holds {len(found)} {what} entries, not one"
        )
    return found[0] if found else None


def _alone(events: Sequence[Event], kind: str) -> None:
    if len(events) != 1:
        raise receipt_invalid(
            "RECEIPT_UNEXPECTED_ENTRY",
            detail=f"holds {len(events) - 1} other entries beside its {kind} entry",
        )


def query_entries(
    entries: Sequence[tuple[int, bytes]], *, query_id: str, query_digest: bytes
) -> QueryEntries:
    """Check that ``entries`` ((leaf index, bytes)) are the whole story of one query.

    Raises :class:`~comity.audit.receipt_refusals.ReceiptInvalid` naming the foreign, missing or
    extra entry.
    """
    if not entries:
        raise receipt_invalid("RECEIPT_FORMAT", detail="it holds no log entry")
    indexes = [index for index, _ in entries]
    if len(set(indexes)) != len(indexes):
        raise receipt_invalid("RECEIPT_UNEXPECTED_ENTRY", detail="holds one log entry twice")
    located = [(index, _decode(index, entry)) for index, entry in entries]
    for index, event in located:
        _bind(index, event, query_id, query_digest.hex())
    # A forwarding note is bound to the query but proves nothing the outcome does not.
    located = [(i, e) for i, e in located if not isinstance(e, ForwardedEvent)]
    events = [e for _, e in located]
    if (validation := _one(events, ValidatedEvent, "validation")) is not None:
        _alone(events, "validation")
        return QueryEntries("validated", validation=validation)
    if (refusal := _one(events, RefusedEvent, "refusal")) is not None:
        _alone(events, "refusal")
        return QueryEntries("refused", refusal=refusal)
    return _decided(located, query_id)


def _decided(located: Sequence[tuple[int, Event]], query_id: str) -> QueryEntries:
    events = [e for _, e in located]
    decision = _one(events, DecisionEvent, "decision")
    if decision is None:
        raise receipt_invalid("RECEIPT_DECISION_MISSING", query_id=query_id)
    if decision.decision == "DENY":
        _alone(events, "DENY decision")
        return QueryEntries("denied", decision=decision)
    disclosure = _one(events, DisclosedEvent, "disclosure")
    failure = _one(events, FailedEvent, "failure")
    emergency = _one(events, EmergencyEvent, "emergency")
    node = _one(events, NodeDecisionEvent, "node decision")
    outcome = _allowed_outcome(query_id, disclosure, failure, node)
    if len(events) != 1 + sum(e is not None for e in (disclosure, failure, emergency, node)):
        raise receipt_invalid(
            "RECEIPT_UNEXPECTED_ENTRY", detail="holds entries an allowed query does not log"
        )
    # The decision is logged before anything is forwarded, and everything the node did after it.
    decided = next(i for i, e in located if e is decision)
    if any(i < decided for i, e in located if e in (disclosure, failure, node)):
        raise receipt_invalid(
            "RECEIPT_UNEXPECTED_ENTRY", detail="holds an outcome logged before the decision it follows"
        )
    # The gateway logs the node's allowance before the disclosure it allows (recovery may log a
    # node's decision after a failure, never after a disclosure).
    if disclosure is not None and node is not None:
        index = {id(e): i for i, e in located}
        if index[id(node)] > index[id(disclosure)]:
            raise receipt_invalid(
                "RECEIPT_UNEXPECTED_ENTRY",
                detail="holds a disclosure logged before the node's decision to allow it",
            )
    return QueryEntries(
        outcome,
        decision=decision,
        disclosure=disclosure,
        failure=failure,
        emergency=emergency,
        node_decision=node,
    )


def _allowed_outcome(
    query_id: str,
    disclosure: DisclosedEvent | None,
    failure: FailedEvent | None,
    node: NodeDecisionEvent | None,
) -> Outcome:
    """An allowed query ends in a disclosure (with the node's allowance), the node's refusal, or a failure."""
    if disclosure is not None:
        if failure is not None:
            raise receipt_invalid("RECEIPT_UNEXPECTED_ENTRY", detail="holds both a disclosure and a failure")
        if node is None:
            raise receipt_invalid("RECEIPT_NODE_DECISION_MISSING", query_id=query_id)
        if node.decision != "ALLOW":
            raise receipt_invalid("RECEIPT_UNEXPECTED_ENTRY", detail="holds a disclosure the node refused")
        # The gateway logs the node's allowance together with the statement of the answer it allowed.
        if not node.node_statement:
            raise receipt_invalid(
                "RECEIPT_NODE_STATEMENT", detail="logged with the node's decision is missing"
            )
        if node.node_statement != disclosure.node_signature:
            raise receipt_invalid(
                "RECEIPT_NODE_STATEMENT", detail="logged with the node's decision is not the one disclosed"
            )
        return "answered"
    if node is not None and node.decision == "DENY":
        return "refused by node"
    if failure is None:
        raise receipt_invalid("RECEIPT_OUTCOME_MISSING", query_id=query_id)
    return "failed"  # the node may have allowed it, and its answer still not been logged
