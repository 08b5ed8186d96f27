"""The SDK refuses an answer unless the node's statement and the log's receipt both prove it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from comity.audit import events
from comity.audit.log import TransparencyLog
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_NODE_DECISION, PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.errors import PermissionDenied, Unauthenticated
from comity.core.keys import SigningKey
from comity.sdk.receipts import KeysTrust, ReceiptInvalid, export_receipt, load_receipt, verify_refusal
from comity.sdk.result import ResponseTampered, ResultVerifier, to_result
from comity.v1 import comity_pb2 as pb

NOW = datetime.now(UTC)
QUERY_DIGEST = hashlib.sha256(b"the signed query").digest()


def _records() -> list[pb.Record]:
    return [
        pb.Record(
            record_id=f"r{i}", record_type="subscriber_account", category=pb.SUBSCRIBER, fields={"a": str(i)}
        )
        for i in range(3)
    ]


async def _answer(
    tmp_path: Path, *, node_key: SigningKey
) -> tuple[pb.QueryResult, list[pb.Record], TransparencyLog]:
    log_key = SigningKey.generate("comity.example/test")
    log = await TransparencyLog.open(
        f"sqlite:///{tmp_path}/audit.db", origin="comity.example/test", key=log_key
    )
    records = _records()
    digest = RecordsDigest()
    for r in records:
        digest.update(r)
    answered = Timestamp()
    answered.FromDatetime(NOW)
    statement = pb.NodeStatement(
        node_id="ca-node", query_id="q1", query_digest=QUERY_DIGEST, hit=True,
        record_count=digest.count, records_digest=digest.digest(), answered_at=answered,
    )  # fmt: skip
    envelope = sign_envelope(PAYLOAD_NODE_STATEMENT, statement.SerializeToString(), node_key)
    decision, openings = events.decision_event(
        query_id="q1", query_digest=QUERY_DIGEST, at=NOW, investigator="us.fbi/agent-1", agency="us.fbi",
        target_node="ca-node", order_id="O1", offence_code="18 USC 1030(a)(7)", categories=["SUBSCRIBER"],
        allowed=True, rule_codes=[], bundle_digest="sha256:x", selectors=[("EMAIL", "a@example.org")],
    )  # fmt: skip
    allowance = pb.NodeDecision(
        node_id="ca-node", query_id="q1", query_digest=QUERY_DIGEST, decision="ALLOW",
        bundle_digest="sha256:ca", decided_at=answered,
    )  # fmt: skip
    signed = sign_envelope(PAYLOAD_NODE_DECISION, allowance.SerializeToString(), node_key)
    node_decision = events.node_decision_event(
        query_id="q1", query_digest=QUERY_DIGEST, at=NOW, node="ca-node", allowed=True, rule_codes=[],
        bundle_digest=allowance.bundle_digest, sealed=b"", node_decision=signed.SerializeToString(),
        node_statement=envelope.SerializeToString(),
    )  # fmt: skip
    disclosure = events.disclosed_event(
        query_id="q1", query_digest=QUERY_DIGEST, at=NOW, node="ca-node", hit=True, record_count=digest.count,
        records_digest=digest.digest(), node_signature=envelope.SerializeToString(),
    )  # fmt: skip
    appended = [
        await log.append(decision, openings=openings),
        await log.append(node_decision),
        await log.append(disclosure),
    ]
    size = appended[-1].tree_size
    receipt = pb.Receipt(
        query_id="q1",
        query_digest=QUERY_DIGEST,
        node_statement=envelope,
        node_decision=signed,
        checkpoint=pb.Checkpoint(signed_note=appended[-1].checkpoint),
        entries=[
            pb.EntryProof(
                entry=entry,
                inclusion=pb.InclusionProof(
                    leaf_index=logged.index,
                    tree_size=size,
                    hashes=await log.inclusion_proof(logged.index, size),
                ),
            )
            for entry, logged in zip((decision, node_decision, disclosure), appended, strict=True)
        ],
    )
    summary = pb.QueryResult(
        query_id="q1", node_id="ca-node", hit=True, receipt=receipt, node_decision=signed
    )
    return summary, records, log


def _digest(records: list[pb.Record]) -> RecordsDigest:
    d = RecordsDigest()
    for r in records:
        d.update(r)
    return d


async def test_untampered_answer_verifies_and_each_tampering_is_caught(tmp_path: Path) -> None:
    node_key = SigningKey.generate("ca-node")
    summary, records, log = await _answer(tmp_path, node_key=node_key)
    verifier = ResultVerifier({"ca-node": node_key.verifying_key}, log.verifier)
    try:
        verified = verifier.verify(summary, _digest(records), query_digest=QUERY_DIGEST, query_id="q1")
        assert verified.outcome == "answered"
        result = to_result(summary, records, verified)
        assert result.quorum_pending  # bare keys: no witness policy to reach

        altered = [pb.Record(), *records[1:]]
        altered[0].CopyFrom(records[0])
        altered[0].fields["a"] = "changed"
        with pytest.raises(ResponseTampered, match="records"):
            verifier.verify(summary, _digest(altered), query_digest=QUERY_DIGEST)
        with pytest.raises(ResponseTampered, match="counts"):
            verifier.verify(summary, _digest(records[:2]), query_digest=QUERY_DIGEST)
        with pytest.raises(ResponseTampered, match="another query"):
            verifier.verify(summary, _digest(records), query_digest=hashlib.sha256(b"other").digest())
        with pytest.raises(ResponseTampered, match="query id"):
            verifier.verify(summary, _digest(records), query_digest=QUERY_DIGEST, query_id="q2")

        forged = pb.QueryResult()
        forged.CopyFrom(summary)
        forged.receipt.entries[2].entry = forged.receipt.entries[2].entry.replace(
            b'"hit":true', b'"hit":false'
        )
        with pytest.raises(ReceiptInvalid):
            verifier.verify(forged, _digest(records), query_digest=QUERY_DIGEST)

        no_disclosure = pb.QueryResult()
        no_disclosure.CopyFrom(summary)
        del no_disclosure.receipt.entries[2]
        with pytest.raises(ReceiptInvalid, match="neither its disclosure"):
            verifier.verify(no_disclosure, _digest(records), query_digest=QUERY_DIGEST)

        # An answer whose receipt proves no node allowed it (a gateway that answered around the
        # node would show no node decision) is not released.
        no_allowance = pb.QueryResult()
        no_allowance.CopyFrom(summary)
        del no_allowance.receipt.entries[1]
        no_allowance.receipt.ClearField("node_decision")
        no_allowance.ClearField("node_decision")
        with pytest.raises(ReceiptInvalid, match="node's signed decision") as refused:
            verifier.verify(no_allowance, _digest(records), query_digest=QUERY_DIGEST)
        assert refused.value.check == "RECEIPT_NODE_DECISION_MISSING"

        impostor = ResultVerifier({"ca-node": SigningKey.generate("ca-node").verifying_key}, log.verifier)
        with pytest.raises(Unauthenticated):
            impostor.verify(summary, _digest(records), query_digest=QUERY_DIGEST)

        unsigned = pb.QueryResult()
        unsigned.CopyFrom(summary)
        unsigned.receipt.ClearField("node_statement")
        with pytest.raises(ResponseTampered, match="no node statement"):
            verifier.verify(unsigned, _digest(records), query_digest=QUERY_DIGEST)

        strict = ResultVerifier({"ca-node": node_key.verifying_key}, log.verifier, require_quorum=True)
        with pytest.raises(ReceiptInvalid, match="quorum pending"):
            strict.verify(summary, _digest(records), query_digest=QUERY_DIGEST)
    finally:
        await log.close()


async def test_receipt_round_trips_through_a_file_and_a_refusal_receipt_must_be_a_refusal(
    tmp_path: Path,
) -> None:
    node_key = SigningKey.generate("ca-node")
    summary, _, log = await _answer(tmp_path, node_key=node_key)
    trust = KeysTrust(log.verifier, {"ca-node": node_key.verifying_key})
    try:
        path = export_receipt(summary.receipt, tmp_path / "receipt.json")
        receipt = load_receipt(path)
        assert receipt == summary.receipt
        # An allowed, answered query cannot pass for the receipt of a refusal.
        with pytest.raises(ReceiptInvalid, match="ALLOW"):
            verify_refusal(receipt, trust, query_digest=QUERY_DIGEST)
        err = PermissionDenied("refused", receipt=receipt)
        with pytest.raises(ReceiptInvalid):
            ResultVerifier({}, log.verifier, trust=trust).verify_refusal(err, query_digest=QUERY_DIGEST)
    finally:
        await log.close()


def test_a_version_1_receipt_file_still_loads_and_its_key_is_ignored(tmp_path: Path) -> None:
    import json

    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "comity-receipt/v1", "log_key": "x", "receipt": {"queryId": "q"}}))
    assert load_receipt(path).query_id == "q"
