"""Node decisions in the log: a node's signed word on a query, checked, then appended.

A node signs a ``NodeDecision`` (allow or deny under its inbound policy, with its rule ids,
bundle digest and sealed part) and, when it answers, a ``NodeStatement``. The gateway checks
both signatures against the node's registered key and that they are about the query, then
appends a ``node_decision`` entry built from the signed fields alone: the same signed item
always gives the same entry, so recovery can look it up by its leaf hash
(``comity.gateway.recovery``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import grpc
from google.protobuf.message import DecodeError

from comity.audit import events
from comity.core import refusals
from comity.core.dsse import PAYLOAD_NODE_DECISION, PAYLOAD_NODE_STATEMENT, verify_envelope
from comity.core.errors import ComityError, InvalidArgument, Unauthenticated
from comity.core.keys import VerifyingKey
from comity.gateway.ledger import Ledger, Logged
from comity.v1 import comity_pb2 as pb

__all__ = ["NodeDecisionLog", "SignedNodeDecision", "verify_node_decision"]

refusals.register(
    refusals.Check(
        "NODE_ANSWER_KEY",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "node {node!r} answered, but its signed answer does not verify under the keys the federation "
        "file lists for it now ({detail}): nothing was released to you, and the query is logged as "
        "failed; the node's operator must run it with the key the file names",
        "Prüm Decision 2008/615 art. 30 (who answered, recorded for lawfulness monitoring)",
    ),
    refusals.Check(
        "NODE_ANSWER_UNSIGNED",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "node {node!r} answered without its signed allowance of this query ({detail}): nothing was "
        "released to you, and the query is logged as failed; the node's operator must run a node that "
        "signs its decision and its statement with every answer",
        "Prüm Decision 2008/615 art. 30 (who answered and what was supplied, recorded for lawfulness "
        "monitoring)",
    ),
)


@dataclass(frozen=True)
class SignedNodeDecision:
    """A node decision whose signature (and its statement's) checked out."""

    decision: pb.NodeDecision
    envelope: pb.Envelope
    statement: pb.Envelope | None = None
    #: The statement's payload, parsed once its signature checked out (None without a statement).
    stated: pb.NodeStatement | None = None

    @property
    def allowed(self) -> bool:
        """Whether the node's inbound policy allowed the query."""
        return self.decision.decision == "ALLOW"

    def entry(self) -> bytes:
        """The ``node_decision`` log entry (a pure function of the signed bytes)."""
        d = self.decision
        return events.node_decision_event(
            query_id=d.query_id,
            query_digest=d.query_digest,
            at=d.decided_at.ToDatetime(tzinfo=UTC),
            node=d.node_id,
            allowed=self.allowed,
            rule_codes=list(d.rule_codes),
            bundle_digest=d.bundle_digest,
            sealed=d.sealed,
            node_decision=self.envelope.SerializeToString(),
            node_statement=self.statement.SerializeToString() if self.statement is not None else b"",
        )


NodeKeys = Mapping[str, VerifyingKey] | Mapping[str, tuple[VerifyingKey, ...]]


def _keys_of(node_keys: NodeKeys, node: str) -> tuple[VerifyingKey, ...]:
    listed = node_keys.get(node)
    if listed is None:
        return ()
    return listed if isinstance(listed, tuple) else (listed,)


def verify_node_decision(
    envelope: pb.Envelope,
    *,
    node_keys: NodeKeys,
    node: str = "",
    query_digest: bytes = b"",
    statement: pb.Envelope | None = None,
) -> SignedNodeDecision:
    """Check a node decision (and its answer's statement): signed by the node it names, and,
    when given, by ``node`` about ``query_digest``; the statement signed by the same key, naming
    the same node and query. Raises :class:`Unauthenticated` (:class:`InvalidArgument` or
    ``DecodeError`` for an envelope or payload that does not decode)."""
    payload, signer = verify_envelope(
        envelope, payload_type=PAYLOAD_NODE_DECISION, keys=node_keys, what="node decision"
    )
    decision = pb.NodeDecision.FromString(payload)
    if signer not in _keys_of(node_keys, decision.node_id):
        raise Unauthenticated("the node decision is not signed by the node it names")
    if node and decision.node_id != node:
        raise Unauthenticated(f"the node decision is from {decision.node_id!r}, not {node!r}")
    if query_digest and decision.query_digest != query_digest:
        raise Unauthenticated("the node decision is about another query")
    if decision.decision not in ("ALLOW", "DENY"):
        raise Unauthenticated("the node decision is neither ALLOW nor DENY")
    if statement is None:
        return SignedNodeDecision(decision, envelope)
    body, by = verify_envelope(
        statement, payload_type=PAYLOAD_NODE_STATEMENT, keys=node_keys, what="node statement"
    )
    said = pb.NodeStatement.FromString(body)
    if by is not signer or said.node_id != decision.node_id or said.query_digest != decision.query_digest:
        raise Unauthenticated("the node statement is not the deciding node's answer to this query")
    return SignedNodeDecision(decision, envelope, statement, said)


class NodeDecisionLog:
    """Appends nodes' signed decisions to the gateway's log."""

    def __init__(self, ledger: Ledger, node_keys: NodeKeys) -> None:
        self._ledger = ledger
        self._keys = node_keys

    def use_keys(self, node_keys: NodeKeys) -> None:
        """Verify with a newly trusted federation file's node keys from now on (e.g.
        ``federation.response_keys_in_force()``): a key it revokes or retires signs nothing
        accepted after this call."""
        self._keys = node_keys

    def verify(
        self,
        envelope: pb.Envelope,
        *,
        node: str = "",
        query_digest: bytes = b"",
        statement: pb.Envelope | None = None,
    ) -> SignedNodeDecision:
        """:func:`verify_node_decision` with the federation's node keys."""
        return verify_node_decision(
            envelope, node_keys=self._keys, node=node, query_digest=query_digest, statement=statement
        )

    async def record(self, signed: SignedNodeDecision, *, closes: bool) -> Logged:
        """Append ``signed``; ``closes``: it ends its query (a refusal), closing the pending marker."""
        digest = signed.decision.query_digest
        return await self._ledger.record(signed.entry(), closes=digest if closes else b"")

    async def record_refusal(self, err: ComityError, *, node: str, query_digest: bytes) -> Logged | None:
        """Log the node's signed refusal carried by ``err``; None when it carries none.

        The signed decision stays out of what the requester receives: it names the node's real
        rules (generic ones too), which the requester sees only as their public codes.
        """
        envelope = err.node_decision
        err.node_decision = None
        if not isinstance(envelope, pb.Envelope):
            return None
        signed = self.verify(envelope, node=node, query_digest=query_digest)
        if signed.allowed:
            raise Unauthenticated(f"node {node!r} refused the query but signed an allowance")
        return await self.record(signed, closes=True)

    def verify_answer(
        self, result: pb.QueryResult, *, node: str, query_digest: bytes
    ) -> tuple[SignedNodeDecision, pb.NodeStatement]:
        """The node's signed allowance and its answer's statement, checked before anything of the
        answer is logged or released.

        Raises ``NODE_ANSWER_UNSIGNED`` when the answer carries no signed decision or statement,
        or its decision refuses the query; ``NODE_ANSWER_KEY`` when they are not signed by a key
        the trusted federation file lists for the node now (say, one a new version revoked or
        retired), or are not this node's word on this query.
        """
        if not result.HasField("node_decision"):
            raise refusals.refuse("NODE_ANSWER_UNSIGNED", node=node, detail="it carries no node decision")
        if not result.receipt.HasField("node_statement"):
            raise refusals.refuse("NODE_ANSWER_UNSIGNED", node=node, detail="it carries no node statement")
        try:
            signed = self.verify(
                result.node_decision,
                node=node,
                query_digest=query_digest,
                statement=result.receipt.node_statement,
            )
        except (Unauthenticated, InvalidArgument) as exc:
            raise refusals.refuse("NODE_ANSWER_KEY", node=node, detail=exc.message) from None
        except DecodeError:
            detail = "its decision or statement does not decode"
            raise refusals.refuse("NODE_ANSWER_KEY", node=node, detail=detail) from None
        if not signed.allowed:
            detail = "its signed decision refuses the query"
            raise refusals.refuse("NODE_ANSWER_UNSIGNED", node=node, detail=detail)
        if signed.stated is None:
            raise AssertionError("unreachable: verify_node_decision was given the statement")
        return signed, signed.stated

    async def record_answer(self, result: pb.QueryResult, *, node: str, query_digest: bytes) -> Logged:
        """Log the node's signed allowance with its answer's statement (checked by :meth:`verify_answer`)."""
        signed, _ = self.verify_answer(result, node=node, query_digest=query_digest)
        return await self.record(signed, closes=False)
