"""Digests that several components must compute identically."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from comity.v1 import comity_pb2 as pb

__all__ = ["RecordsDigest", "records_digest"]


_PREFIX = b"comity/records/v1\n"


def _framed(record: pb.Record) -> bytes:
    data = record.SerializeToString(deterministic=True)
    return len(data).to_bytes(8, "big") + data


class RecordsDigest:
    """SHA-256 over released records, fed one at a time (so a stream needs no buffer).

    Each record is serialised deterministically (map keys sorted) and length-prefixed, so
    neither reordering nor moving bytes between records keeps the digest.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256(_PREFIX)
        self.count = 0

    def update(self, record: pb.Record) -> None:
        """Add the next released record."""
        self._hash.update(_framed(record))
        self.count += 1

    def update_batch(self, records: Iterable[pb.Record]) -> bytes:
        """Add the next batch of records; returns that batch's own digest (as :func:`records_digest`),
        each record serialised once for both."""
        batch = hashlib.sha256(_PREFIX)
        for record in records:
            framed = _framed(record)
            self._hash.update(framed)
            batch.update(framed)
            self.count += 1
        return batch.digest()

    def digest(self) -> bytes:
        """The digest of everything added so far."""
        return self._hash.copy().digest()


def records_digest(records: Iterable[pb.Record]) -> bytes:
    """The :class:`RecordsDigest` of ``records`` in order."""
    d = RecordsDigest()
    for r in records:
        d.update(r)
    return d.digest()
