"""What a query returns, and the checks the SDK makes before handing it over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import ReceiptTrust, VerifiedReceipt
from comity.audit.receipt_trust import KeysTrust
from comity.audit.statement import open_statement
from comity.core.digests import RecordsDigest
from comity.core.errors import Attempt, ComityError, Unauthenticated
from comity.core.keys import VerifyingKey
from comity.sdk.receipts import verify_answer, verify_refusal
from comity.v1 import comity_pb2 as pb

__all__ = [
    "RecordView",
    "ResponseTampered",
    "Result",
    "ResultVerifier",
    "UseRestrictionView",
    "record_view",
    "to_result",
]


@dataclass(frozen=True, slots=True)
class RecordView:
    """One released record, in plain Python types."""

    record_id: str
    record_type: str
    category: str
    observed_at: datetime | None
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class UseRestrictionView:
    """A condition on the use of the data, which travels with it."""

    code: str
    description: str
    legal_basis: str


@dataclass(frozen=True)
class Result:
    """A verified answer: records (empty for a hit check), restrictions and the receipt."""

    query_id: str
    node_id: str
    hit: bool
    hit_reference: str
    records: list[RecordView]
    use_restrictions: list[UseRestrictionView]
    truncated: bool
    receipt: pb.Receipt = field(repr=False)
    #: What the receipt proved (None only for results built by hand).
    verified: VerifiedReceipt | None = field(default=None, repr=False)
    #: Every submission made for this result, in order, the last the answered one (``query_id``):
    #: more than one when the query was sent again through another gateway replica.
    attempts: tuple[Attempt, ...] = ()

    @property
    def resubmitted(self) -> bool:
        """True when the answered query was sent again after an earlier attempt failed."""
        return len(self.attempts) > 1

    @property
    def quorum_pending(self) -> bool:
        """True while the receipt's checkpoint lacks the witness quorum (refresh the receipt later)."""
        return self.verified is None or self.verified.quorum_pending


def record_view(record: pb.Record) -> RecordView:
    """The plain-Python view of a wire record."""
    return RecordView(
        record_id=record.record_id,
        record_type=record.record_type,
        category=pb.DataCategory.Name(record.category),
        observed_at=record.observed_at.ToDatetime(tzinfo=UTC) if record.HasField("observed_at") else None,
        fields=dict(record.fields),
    )


class ResponseTampered(Unauthenticated):
    """The node's signed statement does not match what arrived: the answer must not be used."""


class ResultVerifier:
    """Checks an answer (or a refusal) and its receipt before the SDK hands anything over.

    The node's statement must be signed by the answering node with a key the federation lists
    for the time it answered, name the query's id and digest, and count and digest exactly the
    records that arrived, in order; and the receipt must prove all of it in the log: every entry
    of the query, bound to it and complete (decision and disclosure), included in a checkpoint
    signed by the log's key for its size, with the witnesses' cosignatures (see
    :func:`comity.audit.receipt.verify_query_receipt`). A checkpoint short of the witness
    quorum is accepted and reported (``Result.quorum_pending``); ``require_quorum`` refuses it.
    """

    def __init__(
        self,
        node_keys: Mapping[str, VerifyingKey],
        log_key: Ed25519Verifier,
        *,
        trust: ReceiptTrust | None = None,
        require_quorum: bool = False,
    ) -> None:
        self._trust: ReceiptTrust = trust if trust is not None else KeysTrust(log_key, node_keys)
        self._require_quorum = require_quorum

    @property
    def trust(self) -> ReceiptTrust:
        """What receipts are checked against."""
        return self._trust

    def verify(
        self,
        summary: pb.QueryResult,
        digest: RecordsDigest,
        *,
        query_digest: bytes,
        query_id: str | None = None,
    ) -> VerifiedReceipt:
        """Raise :class:`ResponseTampered` or ``ReceiptInvalid`` unless ``summary`` is what the node signed
        and the log holds; ``query_id`` is the id the SDK sent (default: the one the answer names)."""
        receipt = summary.receipt
        if not receipt.HasField("node_statement"):
            raise ResponseTampered("the answer carries no node statement; refusing unsigned data")
        statement = open_statement(
            receipt.node_statement, summary.node_id, self._trust.response_keys(summary.node_id)
        )
        expected_id = summary.query_id if query_id is None else query_id
        checks = [
            (statement.node_id == summary.node_id, "names another node"),
            (statement.query_digest == query_digest, "answers another query"),
            (statement.query_id == expected_id and summary.query_id == expected_id, "names another query id"),
            (statement.record_count == digest.count, "counts other records than arrived"),
            (statement.records_digest == digest.digest(), "does not match the records that arrived"),
            (statement.hit == summary.hit, "disagrees about the hit"),
        ]
        for ok, what in checks:
            if not ok:
                raise ResponseTampered(
                    f"node statement {what}; the answer was altered in transit or is forged"
                )
        return verify_answer(
            receipt,
            self._trust,
            query_id=expected_id,
            query_digest=query_digest,
            records=digest,
            hit=summary.hit,
            require_quorum=self._require_quorum,
        )

    def verify_refusal(self, err: ComityError, *, query_digest: bytes, query_id: str | None = None) -> None:
        """A refusal that carries a receipt must prove that this query's refusal was logged."""
        if isinstance(err.receipt, pb.Receipt):
            verify_refusal(
                err.receipt,
                self._trust,
                query_digest=query_digest,
                query_id=query_id,
                require_quorum=self._require_quorum,
            )


def to_result(
    summary: pb.QueryResult, records: list[pb.Record], verified: VerifiedReceipt | None = None
) -> Result:
    """Assemble a :class:`Result` from a verified summary and its records."""
    return Result(
        query_id=summary.query_id,
        node_id=summary.node_id,
        hit=summary.hit,
        hit_reference=summary.hit_reference,
        records=[record_view(r) for r in records],
        use_restrictions=[
            UseRestrictionView(u.code, u.description, u.legal_basis) for u in summary.use_restrictions
        ],
        truncated=summary.truncated,
        receipt=summary.receipt,
        verified=verified,
    )
