"""Consistency proofs the gateway sent with queries the witness took, kept for queries that arrive late.

Concurrent queries reach a node out of order: a query proved against the log's checkpoint of
size 100 may arrive after one that moved the witness to 103. The witness then needs the proof
that 103 extends 100, and the gateway usually sent it already, with the query of 103 (a first
forward carries proofs from the newest checkpoints below its own, see
``comity.gateway.ledger.Ledger.proofs_from_recent``). Keeping those proofs saves the late query
a ``WITNESS_AT_SIZE`` round trip.

Only proofs to a checkpoint the witness accepted are kept, from requests that passed the
witness step; a kept proof is never trusted: the witness verifies it against the two roots it
holds, exactly as a proof carried by the query itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from comity.v1 import comity_pb2 as pb

__all__ = ["ProofCache"]


class ProofCache:
    """The most recent ``limit`` consistency proofs by (first size, second size); thread-safe."""

    def __init__(self, limit: int = 512) -> None:
        self._limit = limit
        self._proofs: OrderedDict[tuple[int, int], tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, proofs: Iterable[pb.ConsistencyProof], *, to_size: int) -> None:
        """Keep every proof in ``proofs`` that ends at ``to_size`` (a checkpoint the witness took)."""
        with self._lock:
            for proof in proofs:
                if proof.second_size != to_size or not 0 < proof.first_size < to_size:
                    continue
                key = (proof.first_size, proof.second_size)
                self._proofs[key] = tuple(proof.hashes)
                self._proofs.move_to_end(key)
            while len(self._proofs) > self._limit:
                self._proofs.popitem(last=False)

    def get(self, first: int, second: int) -> Sequence[bytes] | None:
        """The kept proof that ``second`` extends ``first``, or None."""
        with self._lock:
            return self._proofs.get((first, second))
