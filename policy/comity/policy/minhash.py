"""Keyed MinHash signatures of a text's word pairs: near-duplicates meet, guesses cannot be confirmed.

A signature estimates the Jaccard similarity of two texts' sets of word pairs (shingles of two
content words, :mod:`comity.policy.justification`'s normalisation), so a text copied with a few
words changed, sentences moved or a case number swapped still matches its original.

Every hash comes from HMAC-SHA256 under a secret key, so a stored signature reveals nothing a
reader without the key can test: to confirm that a guessed text is behind a signature, one would
have to compute the guessed text's signature, which needs the key. A signature made under one key
matches nothing made under another.

The scheme is one-permutation MinHash (Li, Owen and Zhang, 2012) with optimal densification
(Shrivastava, 2017): each shingle is hashed once; the hash picks one of :data:`SIZE` bins and the
smallest value per bin is kept; an empty bin takes the value of the first non-empty bin along a
keyed sequence of its own. The probability that two signatures agree in a bin is the Jaccard
similarity of the two shingle sets, so the share of equal bins estimates it. One HMAC per shingle,
a few microseconds per text.

For lookup the signature is cut into :data:`BANDS` bands of :data:`ROWS` values (locality-sensitive
hashing): two texts of similarity 0.6 share a band with probability 0.999, of 0.3 with 0.58 (a
candidate, then compared in full), of 0.1 with 0.03.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Sequence

__all__ = ["BANDS", "MIN_KEY_BYTES", "ROWS", "SIZE", "KeyedMinHash", "decode", "encode", "similarity"]

ROWS = 3
BANDS = 32
SIZE = ROWS * BANDS
"""Values in a signature."""
MIN_KEY_BYTES = 32
_DONORS = 4 * SIZE  # draws per empty bin; a text of one shingle misses them all with probability e^-4
_MASK = (1 << 64) - 1


class KeyedMinHash:
    """Signatures under one secret key (at least :data:`MIN_KEY_BYTES` bytes)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a MinHash key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._donors = [self._donor_sequence(j) for j in range(SIZE)]

    def _donor_sequence(self, j: int) -> tuple[int, ...]:
        # Two bytes per draw, rejecting the top 64 values so that each bin is equally likely.
        out: list[int] = []
        counter = 0
        while len(out) < _DONORS:
            block = hmac.digest(
                self._key, b"densify\x00" + j.to_bytes(2, "big") + counter.to_bytes(4, "big"), "sha256"
            )
            for i in range(0, len(block), 2):
                draw = int.from_bytes(block[i : i + 2], "big")
                if draw < 65536 - 65536 % SIZE:
                    out.append(draw % SIZE)
            counter += 1
        return tuple(out[:_DONORS])

    def digest(self, label: bytes, text: str) -> bytes:
        """A keyed digest of ``text`` (e.g. a case reference, stored instead of the reference itself)."""
        return hmac.digest(self._key, label + b"\x00" + text.encode("utf-8"), "sha256")

    def signature(self, words: Sequence[str]) -> tuple[int, ...] | None:
        """The signature of the text whose content words are ``words``; None for a text without any."""
        if not words:
            return None
        shingles = {f"{a} {b}" for a, b in itertools.pairwise(words)} or {words[0]}
        bins: list[int | None] = [None] * SIZE
        for shingle in shingles:
            h = int.from_bytes(self.digest(b"shingle", shingle)[:8], "big")
            j, value = h % SIZE, h // SIZE
            current = bins[j]
            if current is None or value < current:
                bins[j] = value
        filled = [b for b in bins if b is not None]
        out: list[int] = []
        for j, own in enumerate(bins):
            if own is not None:
                out.append(own)
                continue
            donor = next((bins[d] for d in self._donors[j] if bins[d] is not None), None)
            # Every draw missed (a text of one or two shingles): the first filled bin, always the same.
            out.append(filled[0] if donor is None else donor)
        return tuple(out)

    @staticmethod
    def bands(signature: Sequence[int]) -> list[int]:
        """One lookup key per band (signed 64-bit, for an indexed database column)."""
        keys = []
        for band in range(BANDS):
            rows = signature[band * ROWS : (band + 1) * ROWS]
            raw = band.to_bytes(1, "big") + b"".join(v.to_bytes(8, "big") for v in rows)
            keys.append(int.from_bytes(hashlib.sha256(raw).digest()[:8], "big", signed=True))
        return keys


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The estimated Jaccard similarity of the texts behind two signatures (the share of equal bins)."""
    if len(a) != SIZE or len(b) != SIZE:
        raise ValueError(f"a signature holds {SIZE} values")
    return sum(x == y for x, y in zip(a, b, strict=True)) / SIZE


def encode(signature: Sequence[int]) -> bytes:
    """The signature as stored: 8 bytes per value, big-endian."""
    return b"".join((v & _MASK).to_bytes(8, "big") for v in signature)


def decode(data: bytes) -> tuple[int, ...]:
    """A stored signature back; ValueError if it is not one."""
    if len(data) != 8 * SIZE:
        raise ValueError(f"a stored signature is {8 * SIZE} bytes, not {len(data)}")
    return tuple(int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data), 8))
