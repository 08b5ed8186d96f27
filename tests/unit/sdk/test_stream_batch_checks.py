"""The SDK's check of a stream's record batches against the node's verified statement."""

from __future__ import annotations

import pytest

from comity.core.digests import RecordsDigest, records_digest
from comity.sdk.result import ResponseTampered, StreamCheck
from comity.v1 import comity_pb2 as pb


def _batches() -> list[list[pb.Record]]:
    return [[pb.Record(record_id=f"r{b}-{i}", fields={"k": str(i)}) for i in range(2)] for b in range(3)]


def _statement(batches: list[list[pb.Record]]) -> pb.NodeStatement:
    digest = RecordsDigest()
    for record in (r for b in batches for r in b):
        digest.update(record)
    return pb.NodeStatement(
        record_count=digest.count,
        records_digest=digest.digest(),
        batch_digests=[records_digest(b) for b in batches],
    )


def test_batches_as_signed_pass_one_by_one_and_at_the_end() -> None:
    batches = _batches()
    check = StreamCheck(_statement(batches))
    for batch in batches:
        check.batch(batch)
    check.finish()
    assert check.records == 6 and check.batches == 3


def test_an_altered_batch_is_refused_before_it_counts() -> None:
    batches = _batches()
    check = StreamCheck(_statement(batches))
    check.batch(batches[0])
    batches[1][1].fields["k"] = "changed"
    with pytest.raises(ResponseTampered, match="record batch 2 does not match"):
        check.batch(batches[1])
    assert check.records == 2


def test_a_batch_more_than_the_statement_lists_is_refused() -> None:
    batches = _batches()
    check = StreamCheck(_statement(batches[:1]))
    check.batch(batches[0])
    with pytest.raises(ResponseTampered, match="record batch 2 arrived, but the node's statement lists 1"):
        check.batch(batches[0])


def test_a_stream_that_ends_early_is_refused_at_its_end() -> None:
    batches = _batches()
    check = StreamCheck(_statement(batches))
    check.batch(batches[0])
    with pytest.raises(ResponseTampered, match="ended after 1 record batch"):
        check.finish()


def test_batch_digests_that_do_not_add_up_to_the_signed_total_are_refused() -> None:
    # Batch digests that each verify, under a statement whose total says otherwise.
    batches = _batches()
    statement = _statement(batches)
    statement.records_digest = RecordsDigest().digest()
    check = StreamCheck(statement)
    for batch in batches:
        check.batch(batch)
    with pytest.raises(ResponseTampered, match="does not match the records"):
        check.finish()
