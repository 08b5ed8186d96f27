"""Merkle tree hashing of RFC 6962 section 2.1 (unchanged in RFC 9162 section 2.1.1).

Only hashing lives here: leaf and interior node hashes, the empty tree's root, and the
root of a list of leaf hashes (for small trees and tests). Proofs are in ``proof.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "hash_children",
    "hash_leaf",
    "root_from_leaf_hashes",
]

#: RFC 6962 s2.1: "MTH({d(0)}) = SHA-256(0x00 || d(0))": domain separation of leaves.
LEAF_PREFIX = b"\x00"
#: RFC 6962 s2.1: "MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))": interior nodes.
NODE_PREFIX = b"\x01"
#: SHA-256 output size in bytes; every leaf, node and root hash has this length.
HASH_SIZE = 32
#: RFC 6962 s2.1: "The hash of an empty list is the hash of an empty string: MTH({}) = SHA-256()".
EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(entry: bytes) -> bytes:
    """The leaf hash of one log entry: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """RFC 6962's split point ``k``: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` computed from the leaf hashes, by the recursive definition of RFC 6962 s2.1."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = largest_power_of_two_below(n)
    return hash_children(root_from_leaf_hashes(leaf_hashes[:k]), root_from_leaf_hashes(leaf_hashes[k:]))
