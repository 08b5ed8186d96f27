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


def test_head_proofs_prove_the_entry_in_the_newest_checkpoint_from_each_recent_size(
    log_url: tuple[str, str],
) -> None:
    url, prefix = log_url
    store = LogStore.open(url, table_prefix=prefix)
    try:
        entries = [f"e{i}".encode() for i in range(20)]
        for start, end in [(0, 3), (3, 5), (5, 9), (9, 12), (12, 14), (14, 17), (17, 20)]:
            store.append_batch([PendingEntry(e) for e in entries[start:end]], _sign)
        tree = MemoryTree(hash_leaf(e) for e in entries)
        head = store.head_proofs(6, 5, limit=3)
        assert (head.tree_size, head.note) == (20, store.checkpoint(20))
        assert head.inclusion == inclusion_proof(6, 20, tree)
        # From the size given, then from the newest checkpoints after it (not from 9: beyond the limit).
        assert [first for first, _ in head.consistency] == [5, 17, 14, 12]
        for first, proof in head.consistency:
            assert proof == consistency_proof(first, 20, tree)
        assert [f for f, _ in store.head_proofs(0, 0, limit=2).consistency] == [17, 14]
        assert store.head_proofs(19, 20).consistency == []
    finally:
        store.close()
