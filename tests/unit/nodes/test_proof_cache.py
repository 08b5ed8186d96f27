"""The node keeps only proofs to a checkpoint its witness took, the newest ones, by their two sizes."""

from __future__ import annotations

from comity.nodes.proof_cache import ProofCache
from comity.v1 import comity_pb2 as pb


def _proof(first: int, second: int) -> pb.ConsistencyProof:
    return pb.ConsistencyProof(first_size=first, second_size=second, hashes=[bytes([first]) * 32])


def test_only_proofs_to_the_taken_checkpoint_are_kept() -> None:
    cache = ProofCache()
    cache.keep([_proof(3, 9), _proof(5, 8), _proof(0, 9), _proof(9, 9)], to_size=9)
    assert cache.get(3, 9) == (bytes([3]) * 32,)
    assert cache.get(5, 8) is None  # to another checkpoint than the one taken
    assert cache.get(0, 9) is None and cache.get(9, 9) is None  # no proof is needed from there


def test_the_oldest_proofs_go_first() -> None:
    cache = ProofCache(limit=2)
    cache.keep([_proof(1, 4)], to_size=4)
    cache.keep([_proof(2, 5)], to_size=5)
    cache.keep([_proof(1, 4)], to_size=4)  # kept again: now the newest
    cache.keep([_proof(3, 6)], to_size=6)
    assert cache.get(2, 5) is None
    assert cache.get(1, 4) is not None and cache.get(3, 6) is not None
