"""What a query returns, and the checks the SDK makes before handing it over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from comity.audit.note import Ed25519Verifier
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, verify_envelope
from comity.core.errors import ComityError, Unauthenticated
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
    """Checks a node's signed statement against the records the SDK received.

    The statement must be signed by the answering node's registered key, name the query's
    digest, and count and digest exactly the records that arrived, in order; and the receipt
    must prove, against a checkpoint signed by the log's key, that the gateway logged the
    decision and this very disclosure.
    """

    def __init__(self, node_keys: Mapping[str, VerifyingKey], log_key: Ed25519Verifier) -> None:
        self._node_keys = node_keys
        self._log_key = log_key

    def verify(
        self, summary: pb.QueryResult, digest: RecordsDigest, *, query_digest: bytes
    ) -> pb.NodeStatement:
        """Raise :class:`ResponseTampered` unless ``summary`` is what the node signed."""
        receipt = summary.receipt
        if not receipt.HasField("node_statement"):
            raise ResponseTampered("the answer carries no node statement; refusing unsigned data")
        payload, signer = verify_envelope(
            receipt.node_statement,
            payload_type=PAYLOAD_NODE_STATEMENT,
            keys=self._node_keys,
            what="node statement",
        )
        statement = pb.NodeStatement.FromString(payload)
        checks = [
            (statement.node_id == summary.node_id, "names another node"),
            (self._node_keys.get(statement.node_id) is signer, "is not signed by the answering node's key"),
            (statement.query_digest == query_digest, "answers another query"),
            (statement.query_id == summary.query_id, "names another query id"),
            (statement.record_count == digest.count, "counts other records than arrived"),
            (statement.records_digest == digest.digest(), "does not match the records that arrived"),
            (statement.hit == summary.hit, "disagrees about the hit"),
        ]
        for ok, what in checks:
            if not ok:
                raise ResponseTampered(
                    f"node statement {what}; the answer was altered in transit or is forged"
                )
        verify_answer(
            receipt,
            log_key=self._log_key,
            query_digest=query_digest,
            node_statement=receipt.node_statement.SerializeToString(),
            record_count=digest.count,
            records_digest=digest.digest(),
            hit=summary.hit,
        )
        return statement

    def verify_refusal(self, err: ComityError, *, query_digest: bytes) -> None:
        """A refusal that carries a receipt must prove that this query's refusal was logged."""
        if isinstance(err.receipt, pb.Receipt):
            verify_refusal(err.receipt, log_key=self._log_key, query_digest=query_digest)


def to_result(summary: pb.QueryResult, records: list[pb.Record]) -> Result:
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
    )
