"""Salted commitments to selectors, so the log never holds a selector value.

A commitment is ``SHA-256(salt || type || 0x00 || normalised value)`` with a random 32-byte
salt. It binds the entry to exactly one selector, yet reveals nothing about it without the
*opening* (salt, type, value). Openings are stored beside the log, in a table only the legal
officers' tools read; with one, anyone can check that the logged commitment matches.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from comity.audit.errors import InvalidProof

__all__ = ["SALT_SIZE", "CommitmentOpening", "commit_selector"]

#: Bytes of fresh randomness per commitment: enough that no value can be guessed and checked.
SALT_SIZE = 32
#: Domain separation of selector commitments from every other hash in the log.
COMMITMENT_PREFIX = b"comity/selector-commitment/v1\x00"


@dataclass(frozen=True, slots=True)
class CommitmentOpening:
    """What opens one commitment: the salt, the selector type and its normalised value."""

    salt: bytes
    selector_type: str
    value: str

    @property
    def commitment(self) -> bytes:
        """The commitment this opening opens."""
        return hashlib.sha256(
            COMMITMENT_PREFIX + self.salt + self.selector_type.encode() + b"\x00" + self.value.encode()
        ).digest()

    def verify(self, commitment: bytes) -> None:
        """Raise :class:`InvalidProof` unless this opening opens ``commitment``."""
        if not hmac.compare_digest(self.commitment, commitment):
            raise InvalidProof("the opening does not match the logged selector commitment")


def commit_selector(selector_type: str, normalised_value: str) -> CommitmentOpening:
    """A fresh opening (random salt) for one selector; its ``commitment`` goes into the log."""
    if not selector_type or "\x00" in selector_type:
        raise ValueError("a selector type must be non-empty and contain no NUL")
    return CommitmentOpening(secrets.token_bytes(SALT_SIZE), selector_type, normalised_value)
