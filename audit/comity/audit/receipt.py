"""Receipt verification for the SDK and offline tools: pure functions, no storage imports.

A receipt is a query's evidence: every log entry of that query with its inclusion proof
against one checkpoint signed by the log, the witnesses' cosignatures on that checkpoint, and
the responding node's signed statement. :func:`verify_query_receipt` checks, in order, each
step raising :class:`~comity.audit.receipt_refusals.ReceiptInvalid` with its own check code:

1. the checkpoint is signed by the log key the federation lists for its tree size;
2. every entry is included in the tree of that checkpoint;
3. every entry names the receipt's query (id and digest), and the entries are the complete set
   for the outcome they show (:mod:`comity.audit.receipt_entries`);
4. a disclosure's node statement is the one the entry logged, signed by the node's key valid
   when it answered, bound to the query and to what the disclosure logged
   (:mod:`comity.audit.statement`), and matches the records when they are given;
5. the cosignatures on the checkpoint verify under each witness's key history, and reach the
   federation's witness quorum; short of it, :class:`QuorumPending` (``require_quorum``) or a
   result that says ``quorum_pending``.

:func:`verify_receipt` is step 2 alone, for callers that hold entries and a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from comity.audit.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import AuditError, InvalidProof, UnverifiedNote
from comity.audit.events import decode_event
from comity.audit.note import Ed25519Verifier
from comity.audit.proof import verify_inclusion
from comity.audit.quorum_checkpoint import ForgedCosignature, QuorumCheckpoint
from comity.audit.receipt_entries import Outcome, QueryEntries, query_entries
from comity.audit.receipt_refusals import QuorumPending, ReceiptInvalid, receipt_invalid
from comity.audit.rfc6962 import hash_leaf
from comity.audit.statement import DatedKeys, logged_envelope, verify_node_decision, verify_statement
from comity.core.digests import RecordsDigest
from comity.core.errors import ComityError
from comity.core.refusals import violation
from comity.v1 import comity_pb2 as pb

__all__ = [
    "QuorumPending",
    "ReceiptEntry",
    "ReceiptInvalid",
    "ReceiptTrust",
    "VerifiedReceipt",
    "quorum_pending",
    "verify_query_receipt",
    "verify_receipt",
]


@dataclass(frozen=True, slots=True)
class ReceiptEntry:
    """One logged entry and its inclusion proof; ``tree_size`` (if set) must be the checkpoint's."""

    entry: bytes
    leaf_index: int
    inclusion: Sequence[bytes]
    tree_size: int | None = None


class ReceiptTrust(Protocol):
    """What a receipt is checked against: the federation file's keys and witness policy."""

    def checkpoint(
        self, note: bytes, cosignatures: Sequence[str], *, not_before: datetime | None
    ) -> QuorumCheckpoint:
        """Verify a checkpoint and its cosignatures (see ``quorum_checkpoint.open_quorum_checkpoint``)."""
        ...

    def response_keys(self, node: str) -> DatedKeys:
        """The response-signing key history of ``node``; raises ``NotFound`` for an unknown node."""
        ...


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a verified receipt establishes."""

    query_id: str
    tree_size: int
    outcome: Outcome
    entries: QueryEntries
    quorum: QuorumCheckpoint
    statement: pb.NodeStatement | None = None
    entry_count: int = 0

    @property
    def quorum_pending(self) -> bool:
        """True when the checkpoint lacks a quorum of cosignatures (refresh the receipt later)."""
        return not self.quorum.reached

    @property
    def witnesses(self) -> tuple[str, ...]:
        """The witnesses whose cosignatures on the checkpoint verified."""
        return self.quorum.witnesses


def verify_receipt(
    entries: Sequence[ReceiptEntry],
    checkpoint: bytes,
    *,
    log_key: Ed25519Verifier | str,
    witnesses: Sequence[CosignatureVerifier | str] = (),
    min_cosignatures: int = 0,
) -> SignedCheckpoint:
    """Verify that every entry is in the log at the signed (and cosigned) checkpoint.

    ``log_key`` and ``witnesses`` may be verifier keys in text form. Raises
    :class:`UnverifiedNote` (signature, too few cosignatures) or :class:`InvalidProof`.
    Returns the verified checkpoint.
    """
    log = Ed25519Verifier.from_text(log_key) if isinstance(log_key, str) else log_key
    cosigners = [CosignatureVerifier.from_text(w) if isinstance(w, str) else w for w in witnesses]
    signed = open_checkpoint(checkpoint, log, witnesses=cosigners)
    if len({c.name for c in signed.cosignatures}) < min_cosignatures:
        raise UnverifiedNote(
            f"the checkpoint has {len(signed.cosignatures)} witness cosignatures; "
            f"{min_cosignatures} are required"
        )
    if not entries:
        raise InvalidProof("the receipt proves no entry")
    _included(entries, signed.checkpoint)
    return signed


def _included(entries: Sequence[ReceiptEntry], head: Checkpoint) -> None:
    for number, item in enumerate(entries):
        if item.tree_size is not None and item.tree_size != head.size:
            raise InvalidProof(
                f"receipt entry {number} is proven against size {item.tree_size}, not {head.size}"
            )
        verify_inclusion(hash_leaf(item.entry), item.leaf_index, head.size, item.inclusion, head.root_hash)


def _checkpoint(receipt: pb.Receipt, trust: ReceiptTrust, not_before: datetime | None) -> QuorumCheckpoint:
    try:
        return trust.checkpoint(
            receipt.checkpoint.signed_note, list(receipt.cosignatures), not_before=not_before
        )
    except ForgedCosignature as exc:
        raise receipt_invalid("RECEIPT_COSIGNATURE", detail=exc.message) from None
    except AuditError as exc:
        raise receipt_invalid("RECEIPT_CHECKPOINT", detail=exc.message) from None


def quorum_pending(quorum: QuorumCheckpoint) -> QuorumPending:
    """The :class:`QuorumPending` for a checkpoint short of its quorum."""
    v = violation("RECEIPT_QUORUM_PENDING", size=quorum.checkpoint.size, missing=quorum.describe_missing())
    return QuorumPending(v.message, violation=v, missing=dict(quorum.missing))


def _newest_time(receipt: pb.Receipt) -> datetime | None:
    times = []
    for e in receipt.entries:
        try:
            times.append(datetime.fromisoformat(decode_event(e.entry).at.replace("Z", "+00:00")))
        except (AuditError, ValueError):
            continue  # an unreadable entry is refused by its own check
    return max(times, default=None)


def _proved_entries(receipt: pb.Receipt, head: Checkpoint) -> None:
    for number, e in enumerate(receipt.entries):
        try:
            if e.inclusion.tree_size != head.size:
                raise InvalidProof(f"it is proven against size {e.inclusion.tree_size}, not {head.size}")
            verify_inclusion(
                hash_leaf(e.entry), e.inclusion.leaf_index, head.size, e.inclusion.hashes, head.root_hash
            )
        except AuditError as exc:
            raise receipt_invalid("RECEIPT_INCLUSION", index=number, detail=exc.message) from None


def verify_query_receipt(
    receipt: pb.Receipt,
    trust: ReceiptTrust,
    *,
    records: RecordsDigest | None = None,
    require_quorum: bool = True,
) -> VerifiedReceipt:
    """Check ``receipt`` fully (see the module's docstring for the steps); return what it proves.

    ``records``: the digest of the records received, checked against the node's statement.
    ``require_quorum=False`` accepts a checkpoint short of a quorum, and says so
    (:attr:`VerifiedReceipt.quorum_pending`). Raises :class:`ReceiptInvalid`.
    """
    if not receipt.HasField("checkpoint") or not receipt.checkpoint.signed_note:
        raise receipt_invalid("RECEIPT_FORMAT", detail="it carries no checkpoint")
    quorum = _checkpoint(receipt, trust, _newest_time(receipt))
    _proved_entries(receipt, quorum.checkpoint)
    found = query_entries(
        [(e.inclusion.leaf_index, e.entry) for e in receipt.entries],
        query_id=receipt.query_id,
        query_digest=receipt.query_digest,
    )
    statement = _statement(receipt, found, trust, records)
    _node_decision(receipt, found, trust)
    if require_quorum and not quorum.reached:
        raise quorum_pending(quorum)
    return VerifiedReceipt(
        receipt.query_id,
        quorum.checkpoint.size,
        found.outcome,
        found,
        quorum,
        statement,
        len(receipt.entries),
    )


def _statement(
    receipt: pb.Receipt, found: QueryEntries, trust: ReceiptTrust, records: RecordsDigest | None
) -> pb.NodeStatement | None:
    disclosure, decision = found.disclosure, found.decision
    if disclosure is None or decision is None:
        if receipt.HasField("node_statement"):
            raise receipt_invalid(
                "RECEIPT_UNEXPECTED_ENTRY", detail="carries a node statement but no disclosure logged it"
            )
        return None
    if not receipt.HasField("node_statement"):
        raise receipt_invalid("RECEIPT_NODE_STATEMENT", detail="is missing from the receipt")
    if receipt.node_statement != logged_envelope(disclosure):
        raise receipt_invalid(
            "RECEIPT_NODE_STATEMENT", detail="in the receipt is not the one the disclosure entry logged"
        )
    keys = _node_keys(trust, disclosure.node)
    statement = verify_statement(
        disclosure, decision, query_id=receipt.query_id, query_digest=receipt.query_digest, keys=keys
    )
    if records is not None:
        if records.count != statement.record_count:
            raise receipt_invalid(
                "RECEIPT_RECORDS", detail=f"{records.count} arrived, the node signed {statement.record_count}"
            )
        if records.digest() != statement.records_digest:
            raise receipt_invalid("RECEIPT_RECORDS", detail="their digest differs from the signed one")
    return statement


def _node_keys(trust: ReceiptTrust, node: str) -> DatedKeys:
    try:
        return trust.response_keys(node)
    except ComityError as exc:
        raise receipt_invalid(
            "RECEIPT_NODE_STATEMENT", detail=f"is by an unknown node: {exc.message}"
        ) from None


def _node_decision(receipt: pb.Receipt, found: QueryEntries, trust: ReceiptTrust) -> None:
    """The node's own signed decision, when its entry is in the receipt (and as the receipt carries it)."""
    event = found.node_decision
    if event is None:
        return
    if receipt.HasField("node_decision") and receipt.node_decision.SerializeToString() != bytes.fromhex(
        event.node_decision
    ):
        raise receipt_invalid(
            "RECEIPT_NODE_STATEMENT", detail="'s decision in the receipt is not the one its entry logged"
        )
    verify_node_decision(
        event,
        query_id=receipt.query_id,
        query_digest=receipt.query_digest,
        keys=_node_keys(trust, event.node),
    )
