"""Proof generation and verification: the size-0 rule, edge cases and property tests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comity.audit.errors import InvalidProof
from comity.audit.proof import consistency_proof, inclusion_proof, verify_consistency, verify_inclusion
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf, root_from_leaf_hashes
from comity.audit.tree import CompactRange, MemoryTree, perfect_nodes

MAX = 70


def _tree(n: int) -> MemoryTree:
    return MemoryTree(hash_leaf(i.to_bytes(4, "big")) for i in range(n))


def test_consistency_from_size_zero_is_empty_and_needs_the_empty_root() -> None:
    tree = _tree(5)
    assert consistency_proof(0, 5, tree) == []
    verify_consistency(0, 5, [], EMPTY_ROOT, tree.root())
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(InvalidProof, match="empty tree"):
        verify_consistency(0, 5, [], tree.root(1), tree.root())
    with pytest.raises(InvalidProof, match="must be empty"):
        verify_consistency(0, 5, [tree.root(1)], EMPTY_ROOT, tree.root())


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    tree = _tree(6)
    verify_consistency(6, 6, [], tree.root(), tree.root())
    with pytest.raises(InvalidProof):
        verify_consistency(6, 6, [], tree.root(), tree.root(5))
    with pytest.raises(InvalidProof):
        verify_consistency(6, 6, [tree.root()], tree.root(), tree.root())


def test_shrinking_is_never_consistent() -> None:
    tree = _tree(6)
    with pytest.raises(InvalidProof, match="cannot extend"):
        verify_consistency(6, 5, [], tree.root(6), tree.root(5))


def test_compact_range_matches_recursive_definition() -> None:
    leaves = [hash_leaf(bytes([i])) for i in range(40)]
    compact = CompactRange()
    for n, leaf in enumerate(leaves, start=1):
        compact.append(leaf)
        assert compact.root() == root_from_leaf_hashes(leaves[:n])
    assert len(perfect_nodes(0, 40)) == (40).bit_count()


def _flip(value: bytes, bit: int) -> bytes:
    index = (bit // 8) % len(value)
    return value[:index] + bytes([value[index] ^ (1 << (bit % 8))]) + value[index + 1 :]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_inclusion_proofs_verify_and_mutations_fail(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX))
    index = data.draw(st.integers(0, size - 1))
    tree = _tree(size)
    leaf = hash_leaf(index.to_bytes(4, "big"))
    proof = inclusion_proof(index, size, tree)
    verify_inclusion(leaf, index, size, proof, tree.root())

    bit = data.draw(st.integers(0, 255))
    with pytest.raises(InvalidProof):
        verify_inclusion(_flip(leaf, bit), index, size, proof, tree.root())
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, index, size, proof, _flip(tree.root(), bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(InvalidProof):
            verify_inclusion(
                leaf, index, size, [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]], tree.root()
            )
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf, index, size, proof[:-1], tree.root())
    with pytest.raises(InvalidProof):
        verify_inclusion(leaf, index, size, [*proof, hashlib.sha256(b"x").digest()], tree.root())
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index)) if size > 1 else None
    if other is not None:
        with pytest.raises(InvalidProof):
            verify_inclusion(leaf, other, size, proof, tree.root())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_consistency_proofs_verify_and_mutations_fail(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, MAX))
    size1 = data.draw(st.integers(1, size2))
    tree = _tree(size2)
    root1, root2 = tree.root(size1), tree.root(size2)
    proof = consistency_proof(size1, size2, tree)
    verify_consistency(size1, size2, proof, root1, root2)

    bit = data.draw(st.integers(0, 255))
    with pytest.raises(InvalidProof):
        verify_consistency(size1, size2, proof, _flip(root1, bit), root2)
    with pytest.raises(InvalidProof):
        verify_consistency(size1, size2, proof, root1, _flip(root2, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        with pytest.raises(InvalidProof):
            verify_consistency(
                size1, size2, [*proof[:at], _flip(proof[at], bit), *proof[at + 1 :]], root1, root2
            )
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof[1:], root1, root2)
    with pytest.raises(InvalidProof):
        verify_consistency(size1, size2, [*proof, root1], root1, root2)
    if size1 < size2:
        # A forked history: the same sizes, but the old tree had a different last entry.
        forked = MemoryTree(
            [*(hash_leaf(i.to_bytes(4, "big")) for i in range(size1 - 1)), hash_leaf(b"forged")]
        )
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, forked.root(), root2)
