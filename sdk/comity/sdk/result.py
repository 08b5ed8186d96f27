"""What a query returns, and the checks the SDK makes before handing it over."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import ReceiptTrust, VerifiedReceipt
from comity.audit.receipt_trust import KeysTrust
from comity.audit.statement import open_statement
from comity.core.digests import RecordsDigest, records_digest
from comity.core.errors import Attempt, ComityError, Unauthenticated
from comity.core.keys import VerifyingKey
from comity.sdk.receipts import verify_answer, verify_refusal
from comity.v1 import comity_pb2 as pb

__all__ = [
    "RecordView",
    "ResponseTampered",
    "Result",
    "ResultVerifier",
    "StreamCheck",
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
    A stream's summary comes first and is checked whole but for the records
    (:meth:`verify_summary`); its records then batch by batch (:class:`StreamCheck`).
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
        and the log holds, for exactly the records of ``digest``; ``query_id`` is the id the SDK sent
        (default: the one the answer names)."""
        statement, verified = self.verify_summary(summary, query_digest=query_digest, query_id=query_id)
        _check_records(statement, digest)
        return verified

    def verify_summary(
        self, summary: pb.QueryResult, *, query_digest: bytes, query_id: str | None = None
    ) -> tuple[pb.NodeStatement, VerifiedReceipt]:
        """Everything but the records: the node's statement (signed by the answering node, about this
        query, agreeing on the hit) and the receipt proving it in the log. Returns the statement,
        against which the records are then checked (:meth:`stream_check` for a stream)."""
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
            (statement.hit == summary.hit, "disagrees about the hit"),
        ]
        for ok, what in checks:
            if not ok:
                raise ResponseTampered(
                    f"node statement {what}; the answer was altered in transit or is forged"
                )
        verified = verify_answer(
            receipt,
            self._trust,
            query_id=expected_id,
            query_digest=query_digest,
            records=None,
            hit=summary.hit,
            require_quorum=self._require_quorum,
        )
        return statement, verified

    @staticmethod
    def stream_check(statement: pb.NodeStatement) -> StreamCheck:
        """The per-batch check of a stream whose summary (``statement``) was verified."""
        return StreamCheck(statement)

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


def _check_records(statement: pb.NodeStatement, digest: RecordsDigest) -> None:
    if statement.record_count != digest.count:
        raise ResponseTampered(
            f"node statement counts {statement.record_count} record(s), {digest.count} arrived; "
            "the answer was altered in transit or is forged"
        )
    if not hmac.compare_digest(statement.records_digest, digest.digest()):
        raise ResponseTampered(
            "node statement does not match the records that arrived; the answer was altered in transit "
            "or is forged"
        )


class StreamCheck:
    """A stream's records checked against the node's verified statement, one batch at a time.

    :meth:`batch` raises :class:`ResponseTampered` before any record of a batch is used when the
    batch is not the one the node signed (``batch_digests``, in order); :meth:`finish` checks, at
    the end, the number of batches, the record count and the records digest over all of them.
    """

    def __init__(self, statement: pb.NodeStatement) -> None:
        self._signed = list(statement.batch_digests)
        self._statement = statement
        self._digest = RecordsDigest()
        self.batches = 0

    @property
    def records(self) -> int:
        """How many records have been checked so far."""
        return self._digest.count

    def batch(self, records: Sequence[pb.Record]) -> None:
        """Check the next batch; raises :class:`ResponseTampered`."""
        number = self.batches + 1
        if number > len(self._signed):
            raise ResponseTampered(
                f"record batch {number} arrived, but the node's statement lists {len(self._signed)}; "
                "the answer was altered in transit or is forged"
            )
        if not hmac.compare_digest(records_digest(records), self._signed[number - 1]):
            raise ResponseTampered(
                f"record batch {number} does not match the digest the node signed for it; the answer "
                "was altered in transit or is forged"
            )
        for record in records:
            self._digest.update(record)
        self.batches = number

    def finish(self) -> None:
        """At the stream's end: every batch the node signed arrived, and all the records match."""
        if self.batches != len(self._signed):
            raise ResponseTampered(
                f"the stream ended after {self.batches} record batch(es); the node's statement lists "
                f"{len(self._signed)}"
            )
        _check_records(self._statement, self._digest)


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
