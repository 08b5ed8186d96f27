"""Receipts: the SDK's offline check that entries are in the signed, cosigned log."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, sign_checkpoint, with_cosignatures
from comity.audit.cosignature import CosignatureSigner
from comity.audit.errors import InvalidProof, UnverifiedNote
from comity.audit.note import Ed25519Signer
from comity.audit.proof import inclusion_proof
from comity.audit.receipt import ReceiptEntry, verify_receipt
from comity.audit.rfc6962 import hash_leaf
from comity.audit.tree import MemoryTree

ORIGIN = "comity.example/log"
LOG = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
WITNESS = CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())
ENTRIES = [f"e{i}".encode() for i in range(7)]
TREE = MemoryTree(hash_leaf(e) for e in ENTRIES)
CHECKPOINT = Checkpoint(ORIGIN, 7, TREE.root())
NOTE = sign_checkpoint(CHECKPOINT, LOG)
COSIGNED = with_cosignatures(NOTE, [WITNESS.cosign(CHECKPOINT.to_text(), timestamp=1)])


def _entry(index: int) -> ReceiptEntry:
    return ReceiptEntry(ENTRIES[index], index, inclusion_proof(index, 7, TREE), tree_size=7)


def test_a_good_receipt_verifies_from_text_keys() -> None:
    signed = verify_receipt(
        [_entry(2), _entry(6)],
        COSIGNED,
        log_key=LOG.verifier.to_text(),
        witnesses=[WITNESS.verifier.to_text()],
        min_cosignatures=1,
    )
    assert signed.checkpoint == CHECKPOINT


def test_receipt_refusals() -> None:
    with pytest.raises(UnverifiedNote, match="1 are required"):
        verify_receipt(
            [_entry(2)], NOTE, log_key=LOG.verifier, witnesses=[WITNESS.verifier], min_cosignatures=1
        )
    with pytest.raises(UnverifiedNote):
        verify_receipt(
            [_entry(2)], NOTE, log_key=Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate()).verifier
        )
    altered = ReceiptEntry(b"e2 but altered", 2, _entry(2).inclusion)
    with pytest.raises(InvalidProof):
        verify_receipt([_entry(1), altered], NOTE, log_key=LOG.verifier)
    with pytest.raises(InvalidProof, match="size 6"):
        verify_receipt(
            [ReceiptEntry(ENTRIES[1], 1, _entry(1).inclusion, tree_size=6)], NOTE, log_key=LOG.verifier
        )
    with pytest.raises(InvalidProof, match="no entry"):
        verify_receipt([], NOTE, log_key=LOG.verifier)
