"""Why a receipt is refused: one stable check code per thing that can be missing or tampered with.

A receipt that fails any check must not be relied on. :class:`ReceiptInvalid` carries the
check (as a rule violation, like every refusal in Comity), so a program can tell an edited node
statement from a missing disclosure, and a person reads what is wrong and what to do.
:class:`QuorumPending` is the one failure that time may cure: the receipt is otherwise sound,
but its checkpoint lacks a quorum of witness cosignatures yet (``comity audit receipt refresh``).
"""

from __future__ import annotations

import grpc

from comity.audit.errors import AuditError
from comity.core.errors import RuleViolationInfo, Unauthenticated
from comity.core.refusals import Check, register, violation

__all__ = ["RECEIPT_CHECKS", "QuorumPending", "ReceiptInvalid", "receipt_invalid"]

_RULE = "AUDIT_FIELDS"
_BASIS = "Prüm Decision 2008/615 art. 30; Budapest Convention Second Protocol art. 14"
_STATUS = grpc.StatusCode.UNAUTHENTICATED


def _check(code: str, message: str) -> Check:
    return Check(code=code, rule=_RULE, status=_STATUS, message=message, legal_basis=_BASIS)


RECEIPT_CHECKS = (
    _check("RECEIPT_FORMAT", "the receipt is malformed: {detail}"),
    _check("RECEIPT_ENTRY", "receipt entry {index} {detail}"),
    _check(
        "RECEIPT_FOREIGN_ENTRY",
        "receipt entry {index} ({kind}) is about {other}, not about this receipt's {what}; "
        "an entry of another query was put into it, or the receipt's query id was changed",
    ),
    _check("RECEIPT_DECISION_MISSING", "the receipt holds no decision entry for query {query_id!r}"),
    _check(
        "RECEIPT_OUTCOME_MISSING",
        "the receipt shows query {query_id!r} allowed but holds neither its disclosure nor its "
        "failure entry; what the node released is not proven to be logged",
    ),
    _check(
        "RECEIPT_NODE_DECISION_MISSING",
        "the receipt shows query {query_id!r} disclosed but holds no entry of the node's signed decision to "
        "answer it; that the node allowed what was released is not proven to be logged",
    ),
    _check("RECEIPT_UNEXPECTED_ENTRY", "the receipt {detail}"),
    _check("RECEIPT_OUTCOME", "the receipt proves {found}, but {expected}"),
    _check(
        "RECEIPT_INCLUSION", "receipt entry {index} is not in the log at the receipt's checkpoint: {detail}"
    ),
    _check("RECEIPT_CHECKPOINT", "the receipt's checkpoint does not verify: {detail}"),
    _check("RECEIPT_COSIGNATURE", "a witness cosignature on the receipt's checkpoint is forged: {detail}"),
    _check(
        "RECEIPT_QUORUM_PENDING",
        "quorum pending: the receipt's checkpoint (size {size}) lacks {missing}; "
        "run 'comity audit receipt refresh' once the witnesses have cosigned a newer checkpoint",
    ),
    _check("RECEIPT_NODE_STATEMENT", "the node statement {detail}"),
    _check(
        "RECEIPT_STATEMENT_KEY",
        "what node {node!r} signed at {at} (its statement or its decision) is signed by a key that the "
        "federation does not accept at that time (a rotated-out or not yet valid key)",
    ),
    _check("RECEIPT_STATEMENT_BINDING", "the node statement {detail}"),
    _check(
        "RECEIPT_RECORDS", "the records given are not the ones the node signed and the log holds: {detail}"
    ),
)
register(*RECEIPT_CHECKS)


class ReceiptInvalid(AuditError, Unauthenticated):
    """A receipt does not prove what it claims; ``check`` names the failed check."""

    def __init__(self, message: str, *, check: str, violation: RuleViolationInfo, hint: str | None = None):
        super().__init__(message, hint=hint, violations=[violation])
        self.check = check


class QuorumPending(ReceiptInvalid):
    """Everything verifies but the checkpoint lacks a quorum of cosignatures; ``missing``: group -> count."""

    def __init__(self, message: str, *, violation: RuleViolationInfo, missing: dict[str, int]):
        super().__init__(message, check="RECEIPT_QUORUM_PENDING", violation=violation)
        self.missing = missing


def receipt_invalid(code: str, *, hint: str | None = None, **values: object) -> ReceiptInvalid:
    """The :class:`ReceiptInvalid` of check ``code``, its message filled with ``values``."""
    v = violation(code, **values)
    return ReceiptInvalid(v.message, check=code, violation=v, hint=hint)
