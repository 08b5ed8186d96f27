"""Inclusion and consistency proofs: generation over stored hashes, and verification.

Verification follows RFC 9162 s2.1.3.2 (inclusion) and s2.1.4.2 (consistency), which accept
exactly the proofs RFC 6962 s2.1.1 and s2.1.2 generate. Verifiers raise
:class:`~comity.audit.errors.InvalidProof`; they never return a bool.

Consistency from an empty tree. RFC 6962 defines no proof for ``size1 == 0`` and
transparency-dev/merkle rejects it. We follow the C2SP tlog-witness rule instead: every tree
extends the empty tree, so ``(0, size2)`` is consistent iff the proof is empty and ``root1`` is
the empty root ``SHA-256("")``. A witness can then accept a log's first checkpoint by the same
rule as every later one. ``size1 == size2`` needs an empty proof and equal roots.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Protocol

from comity.audit.errors import InvalidProof
from comity.audit.rfc6962 import EMPTY_ROOT, HASH_SIZE, hash_children, largest_power_of_two_below
from comity.audit.tree import NodeId, fold_right, perfect_nodes

__all__ = [
    "NodeSource",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


class NodeSource(Protocol):
    """Where proof generation reads perfect subtree hashes from (a database, or memory)."""

    def node_hashes(self, ids: Sequence[NodeId]) -> Sequence[bytes]:
        """The hashes of the given perfect subtrees, in the same order."""
        ...


Range = tuple[int, int]


def inclusion_ranges(index: int, tree_size: int) -> list[Range]:
    """The subtrees whose hashes form ``PATH(index, D[0:tree_size])`` (RFC 6962 s2.1.1), leaf first."""
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is not in a tree of size {tree_size}")
    ranges: list[Range] = []
    begin, end = 0, tree_size
    while end - begin > 1:
        k = largest_power_of_two_below(end - begin)
        if index < begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """The subtrees whose hashes form ``PROOF(size1, D[0:size2])`` (RFC 6962 s2.1.2).

    Empty when ``size1`` is 0 or equals ``size2`` (see the module docstring).
    """
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[Range] = []
    if size1 in (0, size2):
        return ranges
    begin, end, complete = 0, size2, True
    m = size1
    while m != end - begin:
        k = largest_power_of_two_below(end - begin)
        if m <= k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
            m -= k
            complete = False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's subtree is not the old root.
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def _hashes_for(ranges: Sequence[Range], source: NodeSource) -> list[bytes]:
    parts = [perfect_nodes(begin, end) for begin, end in ranges]
    flat = list(source.node_hashes([node for nodes in parts for node in nodes]))
    hashes: list[bytes] = []
    for nodes in parts:
        hashes.append(fold_right(flat[: len(nodes)]))
        del flat[: len(nodes)]
    return hashes


def inclusion_proof(index: int, tree_size: int, source: NodeSource) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``tree_size`` leaves."""
    return _hashes_for(inclusion_ranges(index, tree_size), source)


def consistency_proof(size1: int, size2: int, source: NodeSource) -> list[bytes]:
    """The proof that the tree of ``size2`` leaves extends the tree of ``size1`` leaves."""
    return _hashes_for(consistency_ranges(size1, size2), source)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} is {len(value)} bytes long; a SHA-256 hash is {HASH_SIZE}")


def _check_root(calculated: bytes, expected: bytes, what: str) -> None:
    if not hmac.compare_digest(calculated, expected):
        raise InvalidProof(
            f"{what}: the proof leads to root {calculated.hex()}, not {expected.hex()}",
            hint="the entry is not in this tree, or the proof or the checkpoint was altered",
        )


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 s2.1.3.2 steps 1-4); raises on a malformed proof."""
    if not 0 <= index < tree_size:
        raise InvalidProof(f"leaf index {index} is not in a tree of size {tree_size}")
    _check_hash(leaf_hash, "the leaf hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise InvalidProof(f"the inclusion proof is longer than a tree of size {tree_size} allows")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof(f"the inclusion proof is shorter than a tree of size {tree_size} needs")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` leaves with ``root``.

    Raises :class:`InvalidProof` naming what does not hold.
    """
    _check_hash(root, "the root hash")
    calculated = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    _check_root(calculated, root, f"inclusion of leaf {index} in tree size {tree_size}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree ``(size2, root2)`` extends ``(size1, root1)`` (RFC 9162 s2.1.4.2).

    Size 0 follows the rule in the module docstring. Raises :class:`InvalidProof`.
    """
    if not 0 <= size1 <= size2:
        raise InvalidProof(f"a tree of size {size2} cannot extend one of size {size1}")
    if size1 in (0, size2) and proof:
        raise InvalidProof(f"a proof from size {size1} to size {size2} must be empty")
    if size1 == size2 != 0:
        # Equal sizes: consistent iff the roots are the same bytes (transparency-dev semantics).
        _check_root(root2, root1, f"two trees of size {size1}")
        return
    _check_hash(root1, "the first root hash")
    _check_hash(root2, "the second root hash")
    if size1 == 0:
        _check_root(root1, EMPTY_ROOT, "the empty tree's root")
        if size2 == 0:
            _check_root(root2, EMPTY_ROOT, "the empty tree's root")
        return
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    _verify_consistency_path(size1, size2, proof, root1, root2)


def _verify_consistency_path(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    if not proof:
        raise InvalidProof(f"a proof from size {size1} to size {size2} cannot be empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof(f"the consistency proof is longer than sizes {size1} to {size2} allow")
        if fn & 1 or fn == sn:
            fr, sr = hash_children(c, fr), hash_children(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof(f"the consistency proof is shorter than sizes {size1} to {size2} need")
    _check_root(fr, root1, f"consistency from size {size1}: old root")
    _check_root(sr, root2, f"consistency to size {size2}: new root")
