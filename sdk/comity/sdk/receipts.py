"""Receipts: proof, checkable by anyone with the federation file, of what the log recorded about a query.

A receipt holds every log entry of one query (its decision, then its disclosure or failure, an
emergency order's first use; or the refusal before policy; or an emergency review), each with
its inclusion proof against one checkpoint signed by the log, the witnesses' cosignatures on
that checkpoint, and the node's signed statement for an answer. The SDK checks it with
:func:`verify_answer`, :func:`verify_refusal` or :func:`verify_validation_receipt` before it
returns anything; all three run :func:`comity.audit.receipt.verify_query_receipt` (every step is
listed there) and then check that the receipt is about what the SDK asked and what the gateway
answered. They accept a checkpoint still short of the witness quorum (the answer is fresh; the
witnesses cosign within the federation's bound) and say so: ``VerifiedReceipt.quorum_pending``.
``comity audit verify-receipt`` refuses such a receipt until ``comity audit receipt refresh``
has upgraded it.

:func:`export_receipt` writes a receipt to a file; :func:`load_receipt` reads one back
(:func:`parse_receipt` the same from text), and :func:`describe_receipt` says in words what a
verified receipt proves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from comity.audit.events import ValidatedEvent
from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import ReceiptTrust, VerifiedReceipt, verify_query_receipt
from comity.audit.receipt_refusals import QuorumPending, ReceiptInvalid, receipt_invalid
from comity.audit.receipt_trust import FederationTrust, KeysTrust
from comity.core.digests import RecordsDigest
from comity.core.errors import InvalidArgument
from comity.core.federation import Federation
from comity.v1 import comity_pb2 as pb

__all__ = [
    "FederationTrust",
    "KeysTrust",
    "QuorumPending",
    "ReceiptInvalid",
    "VerifiedReceipt",
    "describe_receipt",
    "export_receipt",
    "load_receipt",
    "log_verifier",
    "parse_receipt",
    "verify_answer",
    "verify_refusal",
    "verify_validation_receipt",
]

RECEIPT_FORMAT = "comity-receipt/v2"
_READABLE_FORMATS = ("comity-receipt/v1", RECEIPT_FORMAT)


def log_verifier(federation: Federation) -> Ed25519Verifier:
    """The log's current checkpoint key as the federation file registers it."""
    log = federation.gateway.log
    return Ed25519Verifier(log.origin, log.key.public_key)


def _about(receipt: pb.Receipt, *, query_id: str | None, query_digest: bytes) -> None:
    """The receipt must be about the query the SDK sent, not merely consistent with itself."""
    if receipt.query_digest != query_digest:
        raise receipt_invalid(
            "RECEIPT_OUTCOME", found="a receipt of another query (digest)", expected="this query was sent"
        )
    if query_id is not None and receipt.query_id != query_id:
        raise receipt_invalid(
            "RECEIPT_OUTCOME",
            found=f"a receipt of query id {receipt.query_id!r}",
            expected=f"query {query_id!r} was sent",
        )


def verify_answer(
    receipt: pb.Receipt,
    trust: ReceiptTrust,
    *,
    query_id: str | None,
    query_digest: bytes,
    records: RecordsDigest | None,
    hit: bool,
    require_quorum: bool = False,
) -> VerifiedReceipt:
    """Check an answer's receipt: this query, allowed, answered with exactly these records
    (``records`` None: checked by the caller against the statement the receipt proves)."""
    _about(receipt, query_id=query_id, query_digest=query_digest)
    verified = verify_query_receipt(receipt, trust, records=records, require_quorum=require_quorum)
    if verified.outcome != "answered":
        raise receipt_invalid(
            "RECEIPT_OUTCOME", found=f"a query {verified.outcome}", expected="the gateway returned an answer"
        )
    disclosure = verified.entries.disclosure
    if disclosure is None or disclosure.hit != hit:
        raise receipt_invalid(
            "RECEIPT_OUTCOME", found="a disclosure with another hit", expected="the answer says otherwise"
        )
    return verified


def verify_refusal(
    receipt: pb.Receipt,
    trust: ReceiptTrust,
    *,
    query_digest: bytes,
    query_id: str | None = None,
    require_quorum: bool = False,
) -> VerifiedReceipt:
    """Check a refusal's receipt: this query's refusal (or failure at the node) is in the log.

    A policy refusal is a DENY decision; a refusal before policy (signature, order, replay) is a
    ``refused`` entry; a refusal by the node's inbound policy is the gateway's ALLOW decision and
    the node's signed DENY ``node_decision``; an allowed query the node did not answer is its
    decision and ``failed``.
    """
    _about(receipt, query_id=query_id, query_digest=query_digest)
    verified = verify_query_receipt(receipt, trust, require_quorum=require_quorum)
    if verified.outcome not in ("denied", "refused", "failed", "refused by node"):
        found = "an ALLOW decision and its disclosure" if verified.outcome == "answered" else "a validation"
        raise receipt_invalid("RECEIPT_OUTCOME", found=found, expected="the gateway answered with a refusal")
    return verified


def verify_validation_receipt(
    receipt: pb.Receipt, trust: ReceiptTrust, *, validation_digest: bytes, require_quorum: bool = False
) -> ValidatedEvent:
    """Check the receipt of an emergency validation: this very validation is in the log."""
    _about(receipt, query_id=None, query_digest=validation_digest)
    verified = verify_query_receipt(receipt, trust, require_quorum=require_quorum)
    validation = verified.entries.validation
    if validation is None:
        raise receipt_invalid(
            "RECEIPT_OUTCOME", found=f"a query {verified.outcome}", expected="a validation was submitted"
        )
    return validation


def export_receipt(receipt: pb.Receipt, path: Path) -> Path:
    """Write ``receipt`` as JSON, for ``comity audit verify-receipt`` and ``receipt refresh``.

    The file holds no key: a receipt is always checked against the verifier's own federation file.
    """
    data = {"format": RECEIPT_FORMAT, "receipt": json_format.MessageToDict(receipt)}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_receipt(path: Path) -> pb.Receipt:
    """Read an exported receipt (any key a version-1 file names is ignored)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{path} is not a Comity receipt: {exc}") from None
    return parse_receipt(text, source=str(path))


def parse_receipt(text: str | bytes, *, source: str = "the text") -> pb.Receipt:
    """A receipt from the text :func:`export_receipt` writes; ``source`` names it in the error."""
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InvalidArgument(
            f"{source} is not a Comity receipt: it is not JSON ({exc.msg} at {where})"
        ) from None
    except UnicodeDecodeError:
        raise InvalidArgument(f"{source} is not a Comity receipt: it is not text") from None
    try:
        if not isinstance(data, dict):
            raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
        if data.get("format") not in _READABLE_FORMATS:
            raise ValueError(f"format is {data.get('format')!r}, expected {RECEIPT_FORMAT!r}")
        return json_format.ParseDict(data["receipt"], pb.Receipt())
    except (ValueError, KeyError, TypeError, json_format.ParseError) as exc:
        raise InvalidArgument(f"{source} is not a Comity receipt: {exc}") from None


def describe_receipt(verified: VerifiedReceipt) -> list[str]:
    """What a verified receipt proves happened to its query, one sentence a line."""
    e, q = verified.entries, repr(verified.query_id)
    out: list[str] = []
    if e.disclosure is not None:
        d = e.disclosure
        what = f"{'hit' if d.hit else 'no hit'}, {d.record_count} record(s)"
        out = [f"query {q} allowed and answered by {d.node} ({what}); node statement signed by {d.node}"]
    elif e.node_decision is not None and e.node_decision.decision == "DENY":
        rules = ", ".join(e.node_decision.rule_codes)
        out = [
            f"query {q} allowed by the gateway, refused by {e.node_decision.node}'s inbound policy: {rules}"
        ]
    elif e.failure is not None:
        out = [f"query {q} allowed, not answered by {e.failure.node}: {e.failure.reason}"]
    elif e.decision is not None:
        out = [f"query {q} refused under the agreement: {', '.join(e.decision.rule_codes)}"]
    elif e.refusal is not None:
        out = [f"query {q} refused before policy: {e.refusal.reason_code}"]
    elif e.validation is not None:
        verdict = "confirmed" if e.validation.confirmed else "not confirmed"
        out = [f"emergency order {q} reviewed by {e.validation.authority}: {verdict}"]
    if e.emergency is not None:
        out.append(
            f"first use of emergency order {e.emergency.order_id!r}, review due {e.emergency.validate_by}"
        )
    return out
