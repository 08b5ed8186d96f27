"""Receipts under the federation file: key histories (rotation by overlap) and the witness quorum."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from receipt_world import NOW, ORIGIN, World, world

from comity.audit.cosignature import CosignatureSigner
from comity.audit.note import Ed25519Signer, Note
from comity.audit.receipt import verify_query_receipt
from comity.audit.receipt_refusals import QuorumPending, ReceiptInvalid
from comity.audit.receipt_trust import FederationTrust
from comity.core.federation import Federation, GatewayIdentity, LogIdentity, Member, Node
from comity.core.keyhistory import DatedKey, KeyHistory, LogKeyHistory, SizedKey
from comity.core.keys import SigningKey, VerifyingKey
from comity.v1 import comity_pb2 as pb

ROTATION = NOW  # old keys valid until a day after, new ones from a day before: an overlap
WITNESSES = {n: SigningKey.generate(n) for n in ("us-node", "ca-node")}


def _rotated(old: VerifyingKey, new: VerifyingKey) -> KeyHistory:
    return KeyHistory(
        (DatedKey(old, None, ROTATION + timedelta(days=1)), DatedKey(new, ROTATION - timedelta(days=1)))
    )


def _federation(w: World, *, response: KeyHistory, log: LogKeyHistory | None = None) -> Federation:
    def node(node_id: str, country: str, responses: KeyHistory) -> Node:
        witness = KeyHistory.single(WITNESSES[node_id].verifying_key)
        return Node(
            node_id, f"{country.lower()}.a", country, "127.0.0.1:1", Path("x"), "", responses, witness
        )

    us = Member(
        "us.a", "US", "US", (), (), (), (node("us-node", "US", KeyHistory.single(w.node_key.verifying_key)),)
    )
    ca = Member("ca.a", "CA", "CA", (), (), (), (node("ca-node", "CA", response),))
    log_keys = log or LogKeyHistory.single(VerifyingKey(ORIGIN, w.log.private_key.public_key()))
    gateway = GatewayIdentity(
        "gateway", "", Path("x"), "", Path("x"), "", KeyHistory.single(w.node_key.verifying_key),
        LogIdentity(ORIGIN, log_keys),
    )  # fmt: skip
    return Federation("test", (us, ca), gateway)


def _cosign(
    receipt: pb.Receipt, *names: str, at: int | None = None, signer: SigningKey | None = None
) -> None:
    text = Note.parse(receipt.checkpoint.signed_note).text
    for name in names:
        key = signer or WITNESSES[name]
        line = CosignatureSigner(name, key.private_key).cosign(
            text, timestamp=at or int(NOW.timestamp()) + 60
        )
        receipt.cosignatures.append(line.line())


def _answered(w: World, key: SigningKey | None = None) -> pb.Receipt:
    return w.receipt("q1", w.answered("q1", key=key))


def test_a_quorum_receipt_verifies_across_a_response_key_rotation_by_overlap() -> None:
    w = world()
    new = SigningKey.generate("ca-node")
    trust = FederationTrust(_federation(w, response=_rotated(w.node_key.verifying_key, new.verifying_key)))
    for key in (w.node_key, new):  # inside the overlap, either key is accepted
        w.entries.clear()
        receipt = _answered(w, key)
        _cosign(receipt, "us-node", "ca-node")
        verified = verify_query_receipt(receipt, trust)
        assert not verified.quorum_pending and set(verified.witnesses) == {"us-node", "ca-node"}


def test_a_statement_by_a_rotated_out_key_outside_its_window_is_refused() -> None:
    w = world()
    new = SigningKey.generate("ca-node")
    history = KeyHistory(
        (
            DatedKey(w.node_key.verifying_key, None, NOW - timedelta(hours=1)),
            DatedKey(new.verifying_key, NOW - timedelta(days=1)),
        )
    )
    receipt = _answered(w)  # signed by the old key at NOW, an hour after its end
    _cosign(receipt, "us-node", "ca-node")
    with pytest.raises(ReceiptInvalid) as info:
        verify_query_receipt(receipt, FederationTrust(_federation(w, response=history)))
    assert info.value.check == "RECEIPT_STATEMENT_KEY"


def test_below_quorum_cosignatures_leave_the_receipt_pending() -> None:
    w = world()
    receipt = _answered(w)
    _cosign(receipt, "us-node")
    trust = FederationTrust(_federation(w, response=KeyHistory.single(w.node_key.verifying_key)))
    with pytest.raises(QuorumPending) as info:
        verify_query_receipt(receipt, trust)
    assert info.value.missing == {"CA": 1} and "group 'CA'" in info.value.message
    assert verify_query_receipt(receipt, trust, require_quorum=False).quorum_pending


def test_a_forged_or_back_dated_cosignature_is_refused() -> None:
    w = world()
    trust = FederationTrust(_federation(w, response=KeyHistory.single(w.node_key.verifying_key)))
    receipt = _answered(w)
    _cosign(receipt, "us-node", "ca-node")
    forged = pb.Receipt()
    forged.CopyFrom(receipt)
    name, blob = forged.cosignatures[1].rstrip("\n")[2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1  # the ca-node line, its signature altered
    forged.cosignatures[1] = f"— {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(ReceiptInvalid) as info:
        verify_query_receipt(forged, trust)
    assert info.value.check == "RECEIPT_COSIGNATURE"
    back = pb.Receipt()
    back.CopyFrom(receipt)
    del back.cosignatures[:]
    _cosign(back, "us-node", "ca-node", at=int((NOW - timedelta(days=2)).timestamp()))
    with pytest.raises(ReceiptInvalid, match="back-dated") as info:
        verify_query_receipt(back, trust)
    assert info.value.check == "RECEIPT_COSIGNATURE"


def test_a_checkpoint_signed_by_a_retired_log_key_outside_its_size_range_is_refused() -> None:
    w = world()
    retired = VerifyingKey(ORIGIN, w.log.private_key.public_key())
    current = Ed25519Signer(ORIGIN, SigningKey.generate(ORIGIN).private_key)
    log = LogKeyHistory(
        (SizedKey(retired, 0, 1), SizedKey(VerifyingKey(ORIGIN, current.private_key.public_key()), 1))
    )
    receipt = _answered(w)  # size 2, signed by the key retired at size 1
    _cosign(receipt, "us-node", "ca-node")
    trust = FederationTrust(_federation(w, response=KeyHistory.single(w.node_key.verifying_key), log=log))
    with pytest.raises(ReceiptInvalid) as info:
        verify_query_receipt(receipt, trust)
    assert info.value.check == "RECEIPT_CHECKPOINT"
