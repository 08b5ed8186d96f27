"""The newest part of the tree, kept in memory by the log's writer, so proofs near the head need no SQL.

Queries ask for proofs about entries the gateway has just appended (a decision proved against
a slightly newer checkpoint, a consistency proof from the checkpoint a node accepted a moment
ago). Every perfect subtree those proofs use is either on the tree's right border at some
recent size ``start`` or completed after it (the left siblings of leaf ``i`` are exactly the
border at size ``i``, and the border at any size ``i >= start`` is made of border nodes at
``start`` and nodes completed since). So the writer keeps that border and every node it
commits afterwards, bounded in number, and starts again from the current border when full.

Hashes of committed perfect subtrees never change, so a node held here is the same bytes the
database holds. Nodes are added only after their transaction committed, and a proof is
answered here only if every node it needs is present and its sizes are within what this
process has seen committed; anything else goes to the database as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.tree import NodeId

__all__ = ["RecentTree"]


class _Missing(Exception):
    """A node the proof needs is older than the window (the caller reads the database)."""


@dataclass(frozen=True, slots=True)
class _Window:
    start: int
    head: int
    nodes: dict[NodeId, bytes]  # only grows while this window lives; replaced, never cleared

    def node_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        try:
            return [self.nodes[i] for i in ids]
        except KeyError:
            raise _Missing from None


class RecentTree:
    """Perfect subtree hashes from the border at ``start`` up to ``head``, at most ``limit`` of them.

    The writer thread calls :meth:`committed` after each transaction; any thread may ask for
    proofs. Readers take the current window in one reference read, and a window's dictionary
    only gains nodes above its ``head``, so a reader never sees a node change under it.
    """

    def __init__(self, *, limit: int = 8192) -> None:
        self._limit = limit
        self._window: _Window | None = None
        self._lock = threading.Lock()  # writers only: appends and resets stay in order

    def committed(
        self,
        before: int,
        border: Iterable[tuple[NodeId, bytes]],
        created: Iterable[tuple[NodeId, bytes]],
        after: int,
    ) -> None:
        """Record a committed append from size ``before`` (with that size's ``border``) to ``after``."""
        with self._lock:
            window = self._window
            if window is None or window.head != before or len(window.nodes) >= self._limit:
                # Another process appended in between, or the window is full: start from here.
                window = _Window(before, before, dict(border))
            window.nodes.update(created)
            self._window = _Window(window.start, after, window.nodes)

    def forget(self) -> None:
        """Drop everything (the database may have changed behind this process's back)."""
        with self._lock:
            self._window = None

    @property
    def head(self) -> int:
        """The largest committed size this process has seen (0 before the first append)."""
        window = self._window
        return 0 if window is None else window.head

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes] | None:
        """The proof of entry ``index`` in the tree of ``tree_size``, or None to read the database."""
        window = self._window
        if window is None or not window.start <= index < tree_size <= window.head:
            return None
        try:
            return inclusion_proof(index, tree_size, window)
        except _Missing:
            return None

    def consistency_proof(self, first: int, second: int) -> list[bytes] | None:
        """The proof that ``second`` extends ``first``, or None to read the database."""
        window = self._window
        if window is None or not window.start <= first <= second <= window.head:
            return None
        try:
            return consistency_proof(first, second, window)
        except _Missing:
            return None
