"""The gateway's checks of a node's streamed answer against the node's statement, without a network."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from comity.core.digests import RecordsDigest, records_digest
from comity.core.errors import ComityError
from comity.gateway.streamed import AnswerReader, StreamedAnswer, check_statement
from comity.v1 import comity_pb2 as pb

NODE = "ca-node"


def _batches() -> list[list[pb.Record]]:
    return [[pb.Record(record_id=f"r{b}-{i}", fields={"k": str(i)}) for i in range(2)] for b in range(3)]


def _read(chunks: list[pb.ResultChunk], *, limit: int = 100) -> StreamedAnswer:
    reader = AnswerReader(node=NODE, limit=limit)
    for chunk in chunks:
        reader.add(chunk)
    return reader.answer


def _statement(batches: list[list[pb.Record]]) -> pb.NodeStatement:
    digest = RecordsDigest()
    for record in (r for b in batches for r in b):
        digest.update(record)
    return pb.NodeStatement(
        node_id=NODE,
        hit=digest.count > 0,
        record_count=digest.count,
        records_digest=digest.digest(),
        batch_digests=[records_digest(b) for b in batches],
    )


def _chunks(batches: list[list[pb.Record]], statement: pb.NodeStatement) -> list[pb.ResultChunk]:
    summary = pb.QueryResult(node_id=NODE, hit=statement.hit)
    return [pb.ResultChunk(records=pb.RecordBatch(records=b)) for b in batches] + [
        pb.ResultChunk(summary=summary)
    ]


def test_an_answer_as_signed_passes_and_keeps_every_batch_in_order() -> None:
    batches = _batches()
    statement = _statement(batches)
    answer = _read(_chunks(batches, statement))
    check_statement(answer, statement, node=NODE)
    assert [list(b.records) for b in answer.batches] == batches
    assert answer.summary is not None and answer.digest.count == 6


def test_an_empty_answer_passes_with_no_batch_digest() -> None:
    statement = _statement([])
    check_statement(_read(_chunks([], statement)), statement, node=NODE)


def _altered_record(chunks: list[pb.ResultChunk]) -> None:
    chunks[1].records.records[0].fields["k"] = "changed"


def _batches_swapped(chunks: list[pb.ResultChunk]) -> None:
    first, second = pb.ResultChunk(), pb.ResultChunk()
    first.CopyFrom(chunks[0])
    second.CopyFrom(chunks[1])
    chunks[0], chunks[1] = second, first


def _batch_dropped(chunks: list[pb.ResultChunk]) -> None:
    del chunks[2]


def _records_moved(chunks: list[pb.ResultChunk]) -> None:
    # The same records in the same order, cut into batches differently: the total digest holds.
    moved = chunks[1].records.records.pop(0)
    chunks[0].records.records.append(moved)


def _after_summary(chunks: list[pb.ResultChunk]) -> None:
    chunks.append(pb.ResultChunk(records=pb.RecordBatch(records=[pb.Record(record_id="late")])))


def _records_in_summary(chunks: list[pb.ResultChunk]) -> None:
    chunks[-1].summary.records.append(pb.Record(record_id="hidden"))


def _hit_flipped(chunks: list[pb.ResultChunk]) -> None:
    chunks[-1].summary.hit = False


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_altered_record, "a record batch's digest differs"),
        (_batches_swapped, "a record batch's digest differs"),
        (_batch_dropped, "2 record batch(es) arrived, the statement lists 3"),
        (_records_moved, "a record batch's digest differs"),
        (_after_summary, "a part arrived after its summary"),
        (_records_in_summary, "its summary carries records"),
        (_hit_flipped, "disagree about the hit"),
    ],
)
def test_an_answer_that_differs_from_the_statement_is_refused(
    tamper: Callable[[list[pb.ResultChunk]], None], words: str
) -> None:
    batches = _batches()
    statement = _statement(batches)
    chunks = _chunks(batches, statement)
    tamper(chunks)
    with pytest.raises(ComityError) as refused:
        check_statement(_read(chunks), statement, node=NODE)
    assert refused.value.check_codes == ["NODE_ANSWER_MISMATCH"]
    assert words in refused.value.message and NODE in refused.value.message


def test_a_statement_that_counts_other_records_is_refused() -> None:
    batches = _batches()
    statement = _statement(batches)
    statement.record_count += 1
    with pytest.raises(ComityError) as refused:
        check_statement(_read(_chunks(batches, statement)), statement, node=NODE)
    assert "6 record(s) arrived, the statement counts 7" in refused.value.message


def test_more_records_than_the_limit_are_refused_as_they_arrive() -> None:
    batches = _batches()
    chunks = _chunks(batches, _statement(batches))
    reader = AnswerReader(node=NODE, limit=5)
    reader.add(chunks[0])
    reader.add(chunks[1])
    with pytest.raises(ComityError) as refused:
        reader.add(chunks[2])
    assert refused.value.check_codes == ["NODE_ANSWER_LIMIT"]
    assert "more than 5 records" in refused.value.message
    assert len(reader.answer.batches) == 2  # the batch past the limit was not kept


def test_a_batch_update_gives_the_batch_digest_and_keeps_the_running_one() -> None:
    batches = _batches()
    running, one_by_one = RecordsDigest(), RecordsDigest()
    for batch in batches:
        assert running.update_batch(batch) == records_digest(batch)
        for record in batch:
            one_by_one.update(record)
    assert running.digest() == one_by_one.digest() == records_digest([r for b in batches for r in b])
    assert running.count == 6


# ---------------------------------------------------------------- a unary answer: one summary, records inside


def _unary(records: list[pb.Record]) -> tuple[pb.QueryResult, pb.NodeStatement]:
    statement = _statement([records] if records else [])
    del statement.batch_digests[:]  # a unary answer's statement lists no batch
    restriction = pb.UseRestriction(code="NO_ONWARD_TRANSFER")
    statement.use_restrictions.append(restriction)
    result = pb.QueryResult(node_id=NODE, hit=statement.hit, records=records, use_restrictions=[restriction])
    return result, statement


def test_a_unary_answer_as_signed_passes() -> None:
    for records in (_batches()[0], []):
        result, statement = _unary(records)
        check_statement(StreamedAnswer.unary(result), statement, node=NODE)


def _unary_record_dropped(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    del result.records[-1]


def _unary_record_altered(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    result.records[0].fields["k"] = "changed"


def _unary_batches_listed(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    statement.batch_digests.append(records_digest(result.records))


def _unary_reference_changed(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    result.hit_reference = "another"


def _unary_restrictions_dropped(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    del result.use_restrictions[:]


def _unary_node_renamed(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    result.node_id = "us-node"


def _unary_evaluation_added(result: pb.QueryResult, statement: pb.NodeStatement) -> None:
    result.private_evaluation.proof = b"\x01"


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_unary_record_dropped, "1 record(s) arrived, the statement counts 2"),
        (_unary_record_altered, "the records digest differs"),
        (_unary_batches_listed, "0 record batch(es) arrived, the statement lists 1"),
        (_unary_reference_changed, "hit reference differs"),
        (_unary_restrictions_dropped, "use restrictions differ"),
        (_unary_node_renamed, "names another node"),
        (_unary_evaluation_added, "evaluation differs"),
    ],
)
def test_a_unary_answer_that_differs_from_the_statement_is_refused(
    tamper: Callable[[pb.QueryResult, pb.NodeStatement], None], words: str
) -> None:
    result, statement = _unary(_batches()[0])
    tamper(result, statement)
    with pytest.raises(ComityError) as refused:
        check_statement(StreamedAnswer.unary(result), statement, node=NODE)
    assert refused.value.check_codes == ["NODE_ANSWER_MISMATCH"]
    assert words in refused.value.message
