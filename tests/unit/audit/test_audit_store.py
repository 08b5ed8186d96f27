"""The store serves exactly the proofs of the RFC 6962 tree, from stored subtree hashes only."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.note import Ed25519Signer
from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.rfc6962 import hash_leaf
from comity.audit.store import LogStore, PendingEntry
from comity.audit.tree import MemoryTree

SIGNER = Ed25519Signer("comity.example/log", Ed25519PrivateKey.generate())


def _sign(size: int, root: bytes) -> bytes:
    return sign_checkpoint(Checkpoint(SIGNER.name, size, root), SIGNER)


def test_every_proof_of_small_trees_matches_the_reference(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    store = LogStore.open(url, table_prefix=prefix)
    try:
        entries = [f"e{i}".encode() for i in range(17)]
        # Uneven batches, so subtrees are completed across batch boundaries.
        for start, end in [(0, 1), (1, 4), (4, 5), (5, 11), (11, 17)]:
            batch = store.append_batch([PendingEntry(e) for e in entries[start:end]], _sign)
            reference = MemoryTree(hash_leaf(e) for e in entries[:end])
            assert batch.root_hash == reference.root()
            for appended in batch.entries:
                assert list(appended.inclusion) == inclusion_proof(appended.index, end, reference)
        tree = MemoryTree(hash_leaf(e) for e in entries)
        for size in range(1, 18):
            for index in range(size):
                assert store.inclusion_proof(index, size) == inclusion_proof(index, size, tree)
            for first in range(size + 1):
                assert store.consistency_proof(first, size) == consistency_proof(first, size, tree)
        assert store.head() == (17, 17)
    finally:
        store.close()
