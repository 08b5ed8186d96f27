"""Digests that several components must compute identically."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from comity.v1 import comity_pb2 as pb

__all__ = ["RecordsDigest", "records_digest"]


class RecordsDigest:
    """SHA-256 over released records, fed one at a time (so a stream needs no buffer).

    Each record is serialised deterministically (map keys sorted) and length-prefixed, so
    neither reordering nor moving bytes between records keeps the digest.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b"comity/records/v1\n")
        self.count = 0

    def update(self, record: pb.Record) -> None:
        """Add the next released record."""
        data = record.SerializeToString(deterministic=True)
        self._hash.update(len(data).to_bytes(8, "big"))
        self._hash.update(data)
        self.count += 1

    def digest(self) -> bytes:
        """The digest of everything added so far."""
        return self._hash.copy().digest()


def records_digest(records: Iterable[pb.Record]) -> bytes:
    """The :class:`RecordsDigest` of ``records`` in order."""
    d = RecordsDigest()
    for r in records:
        d.update(r)
    return d.digest()
