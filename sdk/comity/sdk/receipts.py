"""Receipts: proof, checkable by anyone with the federation file, of what the log recorded.

An answer's receipt holds the log entries of the gateway's decision and of the disclosure,
with inclusion proofs against one checkpoint signed by the log's key. :func:`verify_answer`
checks the proofs and that the entries say what the answer says: this query (by digest),
allowed, these records (count and digest), this node's signed statement. A refusal's receipt
holds the decision entry alone. :func:`export_receipt` writes a file that
``comity audit verify-receipt`` checks offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from comity.audit.errors import AuditError
from comity.audit.events import (
    DecisionEvent,
    DisclosedEvent,
    Event,
    NodeDecisionEvent,
    RefusedEvent,
    ValidatedEvent,
    decode_event,
)
from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import ReceiptEntry, verify_receipt
from comity.core.errors import InvalidArgument, Unauthenticated
from comity.core.federation import Federation
from comity.v1 import comity_pb2 as pb

__all__ = [
    "ReceiptInvalid",
    "VerifiedReceipt",
    "export_receipt",
    "load_receipt",
    "log_verifier",
    "verify_answer",
    "verify_refusal",
    "verify_validation_receipt",
]

RECEIPT_FORMAT = "comity-receipt/v1"


class ReceiptInvalid(Unauthenticated):
    """A receipt does not prove what it claims: the answer must not be relied on."""


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a verified receipt establishes."""

    query_id: str
    tree_size: int
    decision: DecisionEvent | None
    disclosure: DisclosedEvent | None
    refusal: RefusedEvent | None = None
    node_refusal: NodeDecisionEvent | None = None


def log_verifier(federation: Federation) -> Ed25519Verifier:
    """The log's checkpoint key as the federation file registers it."""
    log = federation.gateway.log
    return Ed25519Verifier(log.origin, log.key.public_key)


def _proved(receipt: pb.Receipt, log_key: Ed25519Verifier) -> tuple[int, list[Event]]:
    entries = [
        ReceiptEntry(e.entry, e.inclusion.leaf_index, list(e.inclusion.hashes), e.inclusion.tree_size)
        for e in receipt.entries
    ]
    try:
        signed = verify_receipt(entries, receipt.checkpoint.signed_note, log_key=log_key)
        events = [decode_event(e.entry) for e in receipt.entries]
    except AuditError as exc:
        raise ReceiptInvalid(f"the receipt does not verify: {exc.message}") from None
    return signed.checkpoint.size, events


def _decision(events: list[Event], query_digest: bytes, *, allowed: bool) -> DecisionEvent:
    decisions = [e for e in events if isinstance(e, DecisionEvent)]
    if len(decisions) != 1:
        raise ReceiptInvalid("the receipt does not hold exactly one decision entry")
    decision = decisions[0]
    if decision.query_digest != query_digest.hex():
        raise ReceiptInvalid("the logged decision is about another query")
    if decision.decision != ("ALLOW" if allowed else "DENY"):
        raise ReceiptInvalid(
            f"the logged decision is {decision.decision}, which is not what the gateway answered"
        )
    return decision


def verify_answer(
    receipt: pb.Receipt,
    *,
    log_key: Ed25519Verifier,
    query_digest: bytes,
    node_statement: bytes,
    record_count: int,
    records_digest: bytes,
    hit: bool,
) -> VerifiedReceipt:
    """Check an answer's receipt: both entries proved, and saying what the answer says."""
    size, events = _proved(receipt, log_key)
    decision = _decision(events, query_digest, allowed=True)
    disclosures = [e for e in events if isinstance(e, DisclosedEvent)]
    if len(disclosures) != 1:
        raise ReceiptInvalid("the receipt does not hold exactly one disclosure entry")
    d = disclosures[0]
    checks = [
        (d.query_digest == query_digest.hex(), "is about another query"),
        (d.record_count == record_count, "counts other records than arrived"),
        (d.records_digest == records_digest.hex(), "logs other records than arrived"),
        (d.hit == hit, "disagrees about the hit"),
        (d.node_signature == node_statement.hex(), "logs another node statement"),
    ]
    for ok, what in checks:
        if not ok:
            raise ReceiptInvalid(f"the logged disclosure {what}")
    return VerifiedReceipt(receipt.query_id, size, decision, d)


def verify_refusal(receipt: pb.Receipt, *, log_key: Ed25519Verifier, query_digest: bytes) -> VerifiedReceipt:
    """Check a refusal's receipt: the refusal of this query is in the log.

    A policy refusal is a DENY decision; a refusal before policy (signature, order, replay) is a
    ``refused`` event; a refusal by the node's inbound policy is the gateway's ALLOW decision and
    the node's DENY ``node_decision``. Each must name this query's digest.
    """
    size, events = _proved(receipt, log_key)
    by_node = [e for e in events if isinstance(e, NodeDecisionEvent) and e.decision == "DENY"]
    if by_node:
        if len(by_node) != 1 or by_node[0].query_digest != query_digest.hex():
            raise ReceiptInvalid("the logged node refusal is about another query")
        decision = _decision(events, query_digest, allowed=True)
        return VerifiedReceipt(receipt.query_id, size, decision, None, node_refusal=by_node[0])
    refused = [e for e in events if isinstance(e, RefusedEvent)]
    if refused and not any(isinstance(e, DecisionEvent) for e in events):
        if len(refused) != 1 or refused[0].query_digest != query_digest.hex():
            raise ReceiptInvalid("the logged refusal is about another query")
        return VerifiedReceipt(receipt.query_id, size, None, None, refused[0])
    return VerifiedReceipt(receipt.query_id, size, _decision(events, query_digest, allowed=False), None)


def verify_validation_receipt(
    receipt: pb.Receipt, *, log_key: Ed25519Verifier, validation_digest: bytes
) -> ValidatedEvent:
    """Check the receipt of an emergency validation: this very validation is in the log."""
    _, events = _proved(receipt, log_key)
    validated = [e for e in events if isinstance(e, ValidatedEvent)]
    if len(validated) != 1 or validated[0].validation_digest != validation_digest.hex():
        raise ReceiptInvalid("the receipt does not hold this validation")
    return validated[0]


def export_receipt(receipt: pb.Receipt, path: Path, *, log_key: Ed25519Verifier) -> Path:
    """Write ``receipt`` and the log key it verifies under as JSON, for offline checking."""
    data = {
        "format": RECEIPT_FORMAT,
        "log_key": log_key.to_text(),
        "receipt": json_format.MessageToDict(receipt),
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_receipt(path: Path) -> tuple[pb.Receipt, str]:
    """Read an exported receipt; returns the receipt and the log key text it names."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != RECEIPT_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {RECEIPT_FORMAT!r}")
        receipt = json_format.ParseDict(data["receipt"], pb.Receipt())
        return receipt, str(data["log_key"])
    except (OSError, ValueError, KeyError, json_format.ParseError) as exc:
        raise InvalidArgument(f"{path} is not a Comity receipt: {exc}") from None
