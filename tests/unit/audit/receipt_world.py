"""A small log of several queries, and receipts cut from it, for the receipt tests.

The log is a real RFC 6962 tree with a checkpoint signed by a real log key; the node's
decision and statement are signed by a real node key. Receipts are built the way the gateway builds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from comity.audit import events
from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.note import Ed25519Signer
from comity.audit.proof import inclusion_proof
from comity.audit.rfc6962 import hash_leaf
from comity.audit.tree import MemoryTree
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_NODE_DECISION, PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.keys import SigningKey
from comity.v1 import comity_pb2 as pb

ORIGIN = "comity.example/receipts"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def digest_of(query_id: str) -> bytes:
    return hashlib.sha256(f"signed query {query_id}".encode()).digest()


def records() -> list[pb.Record]:
    return [
        pb.Record(
            record_id=f"r{i}", record_type="subscriber_account", category=pb.SUBSCRIBER, fields={"a": str(i)}
        )
        for i in range(3)
    ]


def records_digest(items: Sequence[pb.Record]) -> RecordsDigest:
    d = RecordsDigest()
    for r in items:
        d.update(r)
    return d


def decision(query_id: str, *, allowed: bool = True, at: datetime = NOW) -> bytes:
    entry, _ = events.decision_event(
        query_id=query_id, query_digest=digest_of(query_id), at=at, investigator="us.fbi/agent-1",
        agency="us.fbi", target_node="ca-node", order_id="O1", offence_code="18 USC 1030(a)(7)",
        categories=["SUBSCRIBER"], allowed=allowed, rule_codes=[] if allowed else ["SERIOUS_CRIME"],
        bundle_digest="sha256:x", selectors=[("EMAIL", "a@example.org")],
    )  # fmt: skip
    return entry


def statement(
    query_id: str, key: SigningKey, *, answered_at: datetime = NOW, node: str = "ca-node"
) -> pb.Envelope:
    d = records_digest(records())
    answered = Timestamp()
    answered.FromDatetime(answered_at)
    s = pb.NodeStatement(
        node_id=node, query_id=query_id, query_digest=digest_of(query_id), hit=True,
        record_count=d.count, records_digest=d.digest(), answered_at=answered,
    )  # fmt: skip
    return sign_envelope(PAYLOAD_NODE_STATEMENT, s.SerializeToString(), key)


def disclosure(query_id: str, envelope: pb.Envelope, *, at: datetime = NOW) -> bytes:
    d = records_digest(records())
    return events.disclosed_event(
        query_id=query_id, query_digest=digest_of(query_id), at=at + timedelta(seconds=1),
        node="ca-node", hit=True, record_count=d.count, records_digest=d.digest(),
        node_signature=envelope.SerializeToString(),
    )  # fmt: skip


def failure(query_id: str) -> bytes:
    return events.failed_event(
        query_id=query_id, query_digest=digest_of(query_id), at=NOW, node="ca-node", reason="UNAVAILABLE"
    )


def refusal(query_id: str) -> bytes:
    return events.refused_event(
        query_id=query_id, query_digest=digest_of(query_id), at=NOW, investigator="us.fbi/agent-1",
        agency="us.fbi", reason_code="UNAUTHENTICATED:EnvelopeError",
    )  # fmt: skip


def emergency(query_id: str) -> bytes:
    return events.emergency_event(
        query_id=query_id, order_id="O1", order_digest=b"\1" * 32, at=NOW, investigator="us.fbi/agent-1",
        agency="us.fbi", issuing_country="US", authority="us.court", validate_by=NOW + timedelta(hours=48),
    )  # fmt: skip


@dataclass
class World:
    """A log of entries, a log key and a node key; :meth:`receipt` cuts a receipt from it."""

    log: Ed25519Signer
    node_key: SigningKey
    entries: list[bytes] = field(default_factory=list)
    statements: dict[str, pb.Envelope] = field(default_factory=dict)
    #: The node's signed decisions, by query id, as the gateway puts them into a receipt.
    decisions: dict[str, pb.Envelope] = field(default_factory=dict)

    def add(self, entry: bytes) -> int:
        self.entries.append(entry)
        return len(self.entries) - 1

    def answered(
        self, query_id: str, *, key: SigningKey | None = None, answered_at: datetime = NOW
    ) -> list[int]:
        """An allowed, answered query as the gateway logs it: its decision, the node's signed
        allowance (with the statement of its answer) and the disclosure; returns their indexes.
        ``key`` signs both the node's decision and its statement."""
        signer = key or self.node_key
        envelope = statement(query_id, signer, answered_at=answered_at)
        self.statements[query_id] = envelope
        allowance = node_decision_envelope(query_id, signer, allowed=True)
        self.decisions[query_id] = allowance
        return [
            self.add(decision(query_id)),
            self.add(node_decision(query_id, signer, allowed=True, statement=envelope, envelope=allowance)),
            self.add(disclosure(query_id, envelope)),
        ]

    def of(self, query_id: str) -> list[int]:
        """The indexes of every entry about ``query_id``, in log order."""
        return [
            i
            for i, e in enumerate(self.entries)
            if getattr(events.decode_event(e), "query_id", None) == query_id
        ]

    def note(self, size: int | None = None, signer: Ed25519Signer | None = None) -> tuple[bytes, Checkpoint]:
        size = len(self.entries) if size is None else size
        tree = MemoryTree(hash_leaf(e) for e in self.entries[:size])
        checkpoint = Checkpoint(ORIGIN, size, tree.root())
        return sign_checkpoint(checkpoint, signer or self.log), checkpoint

    def receipt(self, query_id: str, indexes: Sequence[int], *, size: int | None = None) -> pb.Receipt:
        size = len(self.entries) if size is None else size
        tree = MemoryTree(hash_leaf(e) for e in self.entries[:size])
        note, _ = self.note(size)
        receipt = pb.Receipt(
            query_id=query_id,
            query_digest=digest_of(query_id),
            checkpoint=pb.Checkpoint(signed_note=note),
            entries=[
                pb.EntryProof(
                    entry=self.entries[i],
                    inclusion=pb.InclusionProof(
                        leaf_index=i, tree_size=size, hashes=inclusion_proof(i, size, tree)
                    ),
                )
                for i in indexes
            ],
        )
        if query_id in self.statements and any(b'"kind":"disclosed"' in self.entries[i] for i in indexes):
            receipt.node_statement.CopyFrom(self.statements[query_id])
        if query_id in self.decisions and any(b'"kind":"node_decision"' in self.entries[i] for i in indexes):
            receipt.node_decision.CopyFrom(self.decisions[query_id])
        return receipt


def world() -> World:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return World(Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate()), SigningKey.generate("ca-node"))


def node_decision_envelope(
    query_id: str, key: SigningKey, *, allowed: bool, node: str = "ca-node", at: datetime = NOW
) -> pb.Envelope:
    """The node's signed ``NodeDecision`` on ``query_id`` (as ``comity.nodes.decisions`` signs it)."""
    decided = Timestamp()
    decided.FromDatetime(at)
    d = pb.NodeDecision(
        node_id=node, query_id=query_id, query_digest=digest_of(query_id),
        decision="ALLOW" if allowed else "DENY", rule_codes=[] if allowed else ["QUOTA"],
        bundle_digest="sha256:ca", decided_at=decided,
    )  # fmt: skip
    return sign_envelope(PAYLOAD_NODE_DECISION, d.SerializeToString(), key)


def node_decision(
    query_id: str,
    key: SigningKey,
    *,
    allowed: bool,
    statement: pb.Envelope | None = None,
    node: str = "ca-node",
    envelope: pb.Envelope | None = None,
) -> bytes:
    """The ``node_decision`` entry the gateway logs for the node's signed decision on ``query_id``
    (``envelope``, or one signed with ``key``), built from the signed fields alone as
    ``comity.gateway.node_decisions`` builds it."""
    signed = envelope or node_decision_envelope(query_id, key, allowed=allowed, node=node)
    d = pb.NodeDecision.FromString(signed.payload)
    return events.node_decision_event(
        query_id=d.query_id, query_digest=d.query_digest, at=d.decided_at.ToDatetime(tzinfo=UTC),
        node=d.node_id, allowed=d.decision == "ALLOW", rule_codes=list(d.rule_codes),
        bundle_digest=d.bundle_digest, sealed=d.sealed, node_decision=signed.SerializeToString(),
        node_statement=statement.SerializeToString() if statement is not None else b"",
    )  # fmt: skip
