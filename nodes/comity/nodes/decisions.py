"""The node's signed decisions: what its inbound policy decided, for the transparency log.

For every query its inbound policy decides, the node signs a ``NodeDecision`` (allow or deny,
the rule ids that refused, the bundle digest, and a sealed part for what must stay with the
legal officers) with its response key. A refusal is written to the :class:`Outbox` before the
refusal leaves the node; an allowance is written together with the statement of its answer,
before the answer leaves. The gateway logs both (a ``node_decision`` entry), inline when it
can and from the outbox after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.dsse import PAYLOAD_NODE_DECISION, sign_envelope
from comity.core.keys import SigningKey
from comity.nodes.outbox import Outbox
from comity.policy.engine import Decision
from comity.v1 import comity_pb2 as pb

__all__ = ["NodeDecisions"]


class NodeDecisions:
    """Signs the node's decisions and keeps them, with the answers' statements, in its outbox."""

    def __init__(
        self, *, node_id: str, key: SigningKey, outbox: Outbox, clock: Callable[[], datetime]
    ) -> None:
        self._node_id = node_id
        self._key = key
        self._outbox = outbox
        self._clock = clock

    def sign(
        self,
        query: pb.Query,
        query_digest: bytes,
        decision: Decision,
        *,
        sealed: bytes = b"",
        rule_codes: Sequence[str] | None = None,
        allowed: bool | None = None,
    ) -> pb.Envelope:
        """The node's signed word on ``query``: ``decision``'s outcome, real rule ids and bundle.

        ``sealed`` is a commitment the log keeps for legal officers (e.g. to the node's
        own-person facts); ``rule_codes`` and ``allowed`` override the decision's real reasons and
        outcome where the node answers otherwise (a hit check on one of its own persons is answered
        as a no-hit, and signed as an allowance without rules: the sealed part holds why).
        """
        decided = Timestamp()
        decided.FromDatetime(self._clock())
        message = pb.NodeDecision(
            node_id=self._node_id,
            query_id=query.query_id,
            query_digest=query_digest,
            decision="ALLOW" if (decision.allowed if allowed is None else allowed) else "DENY",
            rule_codes=list(decision.internal_reasons if rule_codes is None else rule_codes),
            bundle_digest=decision.bundle_digest,
            decided_at=decided,
            sealed=sealed,
        )
        return sign_envelope(PAYLOAD_NODE_DECISION, message.SerializeToString(), self._key)

    def refused(self, decision: pb.Envelope) -> None:
        """Keep a refusal durably; call before the refusal leaves the node."""
        self._outbox.put(decision)

    def answered(self, decision: pb.Envelope, statement: pb.Envelope) -> None:
        """Keep an allowance with its answer's statement; call before the answer leaves the node."""
        self._outbox.put(decision, statement)

    @property
    def outbox(self) -> Outbox:
        """The outbox these decisions are kept in."""
        return self._outbox
