"""Tree arithmetic over stored subtree hashes, so no code path needs the whole tree in memory.

A log of ``n`` leaves is stored as the hashes of its *perfect* subtrees: node ``(level, index)``
covers leaves ``[index * 2**level, (index + 1) * 2**level)``, and is stored once all of them exist.
Any RFC 6962 subtree ``[begin, end)`` (``begin`` aligned to the power of two above its size) is
the fold of a few perfect subtrees from right to left; :func:`perfect_nodes` lists them.
:class:`CompactRange` keeps only the right border of the tree (at most log2(n) hashes), which is
all an appender needs to add leaves and compute the root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from comity.audit.rfc6962 import EMPTY_ROOT, hash_children

__all__ = ["CompactRange", "MemoryTree", "NodeId", "fold_right", "perfect_nodes"]

#: A perfect subtree: ``(level, index)``; level 0 are the leaves.
NodeId = tuple[int, int]


def perfect_nodes(begin: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up ``[begin, end)``, left to right, largest first.

    ``begin`` must be a multiple of the power of two at or above ``end - begin`` (true of every
    subtree RFC 6962 proofs refer to, and of ``[0, n)``).
    """
    nodes: list[NodeId] = []
    position = begin
    remaining = end - begin
    while remaining:
        level = remaining.bit_length() - 1
        nodes.append((level, position >> level))
        position += 1 << level
        remaining -= 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a subtree from its perfect parts (left to right): RFC 6962 splits on the largest first."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = hash_children(left, result)
    return result


class CompactRange:
    """The right border of a tree of ``size`` leaves: enough to append leaves and compute the root."""

    __slots__ = ("_border", "size")

    def __init__(self, size: int = 0, border: Sequence[bytes] = ()) -> None:
        """``border`` holds the hashes of ``perfect_nodes(0, size)``, in that order."""
        if len(border) != len(perfect_nodes(0, size)):
            raise ValueError(f"a tree of size {size} has {size.bit_count()} border hashes, got {len(border)}")
        self.size = size
        self._border = list(border)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf; returns every perfect subtree completed by it (the leaf itself first)."""
        index = self.size
        created: list[tuple[NodeId, bytes]] = [((0, index), leaf_hash)]
        node = leaf_hash
        level = 0
        # Each trailing 1 bit of the old size is a left sibling on the border that now pairs up.
        while (index >> level) & 1:
            node = hash_children(self._border.pop(), node)
            level += 1
            created.append(((level, index >> level), node))
        self._border.append(node)
        self.size += 1
        return created

    def root(self) -> bytes:
        """``MTH(D[0:size])``."""
        return fold_right(self._border)

    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The border's perfect subtrees with their hashes, left to right."""
        return list(zip(perfect_nodes(0, self.size), self._border, strict=True))

    def copy(self) -> CompactRange:
        """An independent copy (appends to it do not change this one)."""
        return CompactRange(self.size, self._border)


class MemoryTree:
    """Every perfect subtree hash of a tree, in memory: for tests, benchmarks and small receipts."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._range = CompactRange()
        for leaf_hash in leaf_hashes:
            self.append(leaf_hash)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._range.size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash."""
        for (level, _index), value in self._range.append(leaf_hash):
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(value)

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (all of them by default)."""
        size = self.size if size is None else size
        return fold_right(self.node_hashes(perfect_nodes(0, size)))

    def node_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """The stored hashes of perfect subtrees; ``IndexError`` for one that does not exist yet."""
        return [self._levels[level][index] for level, index in ids]
