"""A node's answer, read whole and checked before anything of it leaves the gateway.

A node's ``ExecuteStream`` sends record batches, then its signed summary. The gateway keeps
every batch (:class:`AnswerReader`, at most ``limit`` records: more is refused with
``NODE_ANSWER_LIMIT`` as soon as they arrive). A unary ``Execute`` answer is one summary with
its records inside (:meth:`StreamedAnswer.unary`). Either way, :func:`check_statement` checks
what arrived against the node's signed statement: one digest per batch, in order
(``batch_digests``; none for a unary answer), each equal to the records digest of that batch,
the record count and the records digest over all of them, and the answer's own fields the
statement signs too (node, hit, hit reference, use restrictions, a private hit check's
evaluation). Anything else is ``NODE_ANSWER_MISMATCH``. Only a checked answer is logged as
disclosed and sent on.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import grpc

from comity.core import refusals
from comity.core.digests import RecordsDigest
from comity.core.private_check import evaluation_digest
from comity.v1 import comity_pb2 as pb

__all__ = ["AnswerReader", "StreamedAnswer", "check_statement"]

refusals.register(
    refusals.Check(
        "NODE_ANSWER_LIMIT",
        "PARTICULARITY",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "node {node!r} streamed more than {limit} records for this query (its max_records, or the "
        "gateway's bound on one streamed answer): nothing was released to you, and the query is logged "
        "as failed; ask for fewer records with max_records, or the node's operator must lower the node's "
        "record cap ([limits] max_records)",
        "18 U.S.C. §2523(b)(4)(D)(ii) (no result sets above a cap)",
    ),
    refusals.Check(
        "NODE_ANSWER_MISMATCH",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "node {node!r} answered, but its answer does not match its signed statement ({detail}): "
        "nothing was released to you, and the query is logged as failed; the node's operator must "
        "check the node",
        "Prüm Decision 2008/615 art. 30 (what was supplied, recorded for lawfulness monitoring)",
    ),
)


@dataclass
class StreamedAnswer:
    """What one node stream brought: its record batches in order, their digests, and the summary."""

    batches: list[pb.RecordBatch] = field(default_factory=list)
    batch_digests: list[bytes] = field(default_factory=list)
    digest: RecordsDigest = field(default_factory=RecordsDigest)
    summary: pb.QueryResult | None = None
    #: Something arrived after the summary, or the summary carried records itself.
    misplaced: str = ""

    @classmethod
    def unary(cls, result: pb.QueryResult) -> StreamedAnswer:
        """A unary answer: its summary is the whole result, records inside, and it has no batches
        (so the statement it is checked against must list no batch digest)."""
        digest = RecordsDigest()
        for record in result.records:
            digest.update(record)
        return cls(digest=digest, summary=result)


class AnswerReader:
    """Collects one node stream's chunks, refusing more than ``limit`` records as they arrive."""

    def __init__(self, *, node: str, limit: int) -> None:
        self._node = node
        self._limit = limit
        self.answer = StreamedAnswer()

    def add(self, chunk: pb.ResultChunk) -> None:
        """Take the next chunk; raises ``NODE_ANSWER_LIMIT`` past the limit."""
        answer = self.answer
        if answer.summary is not None:
            answer.misplaced = answer.misplaced or "a part arrived after its summary"
            return
        if chunk.HasField("summary"):
            answer.summary = chunk.summary
            if chunk.summary.records:
                answer.misplaced = "its summary carries records"
            return
        records = chunk.records.records
        if answer.digest.count + len(records) > self._limit:
            raise refusals.refuse("NODE_ANSWER_LIMIT", node=self._node, limit=self._limit)
        answer.batch_digests.append(answer.digest.update_batch(records))
        answer.batches.append(chunk.records)


def check_statement(answer: StreamedAnswer, statement: pb.NodeStatement, *, node: str) -> None:
    """Raise ``NODE_ANSWER_MISMATCH`` unless ``answer`` is exactly what ``statement`` (verified) says."""
    for ok, detail in (*_summary_checks(answer.summary, statement), *_record_checks(answer, statement)):
        if not ok:
            raise refusals.refuse("NODE_ANSWER_MISMATCH", node=node, detail=detail)


def _summary_checks(summary: pb.QueryResult | None, statement: pb.NodeStatement) -> list[tuple[bool, str]]:
    """The answer's fields that the statement signs as well (the log and the requester read them)."""
    if summary is None:
        return [(False, "no summary arrived")]
    evaluated = (
        evaluation_digest(summary.private_evaluation) if summary.HasField("private_evaluation") else b""
    )
    return [
        (summary.node_id == statement.node_id, "the answer names another node than its statement"),
        (statement.hit == summary.hit, "the statement and the answer disagree about the hit"),
        (
            summary.hit_reference == statement.hit_reference,
            "the hit reference differs from the signed one",
        ),
        (
            list(summary.use_restrictions) == list(statement.use_restrictions),
            "the use restrictions differ from the signed ones",
        ),
        (
            hmac.compare_digest(evaluated, statement.evaluation_digest),
            "the private hit check's evaluation differs from the signed one",
        ),
    ]


def _record_checks(answer: StreamedAnswer, statement: pb.NodeStatement) -> list[tuple[bool, str]]:
    signed = list(statement.batch_digests)
    return [
        (not answer.misplaced, answer.misplaced),
        (
            len(signed) == len(answer.batches),
            f"{len(answer.batches)} record batch(es) arrived, the statement lists {len(signed)}",
        ),
        (
            all(hmac.compare_digest(a, b) for a, b in zip(signed, answer.batch_digests, strict=False)),
            "a record batch's digest differs from the signed one",
        ),
        (
            statement.record_count == answer.digest.count,
            f"{answer.digest.count} record(s) arrived, the statement counts {statement.record_count}",
        ),
        (
            hmac.compare_digest(statement.records_digest, answer.digest.digest()),
            "the records digest differs from the signed one",
        ),
    ]
