"""Sealed reasons: the node's real reason for a decision, for the responding country's eyes only.

When a node answers a hit check as a no-hit, or refuses with the generic code, because its own
records show the target is one of its country's persons, the requester must not learn why. The
responding country's legal officers must. So every node decision carries a *sealed reason*: a
salted commitment ::

    commitment = SHA-256("comity/node-sealed-reason/v1" || 0x00 || salt || reason)

where ``salt`` is 32 fresh random bytes and ``reason`` the canonical JSON (sorted keys, no
spaces, UTF-8) of an object with at least ``query_id``, ``node_id``, ``outcome`` (``ANSWERED``,
``NO_HIT`` when a hit check was answered as a no-hit, ``REFUSED``) and ``checks`` (the rule ids
or check codes behind it, empty for a plain answer). The commitment travels as a
``comity.v1.SealedReason`` (in the node's signed statement, beside a refusal), so it reaches
the log; the *opening* (salt and reason) stays in the node's database (:mod:`comity.nodes.state`),
which only the responding country's legal officers' tools read. Every decision has one, so its
presence says nothing; without the opening it reveals nothing; with it, anyone can check it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comity.v1 import comity_pb2 as pb

__all__ = ["SCHEME", "SealedOpening", "seal"]

SCHEME = "comity/node-sealed-reason/v1"
_PREFIX = SCHEME.encode() + b"\x00"
SALT_SIZE = 32


def _canonical(reason: Mapping[str, Any]) -> bytes:
    return json.dumps(reason, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class SealedOpening:
    """What opens one sealed reason: the salt and the reason's canonical JSON."""

    salt: bytes
    reason: bytes

    @property
    def commitment(self) -> bytes:
        """The commitment this opening opens."""
        return hashlib.sha256(_PREFIX + self.salt + self.reason).digest()

    @property
    def fields(self) -> dict[str, Any]:
        """The reason as data."""
        value: dict[str, Any] = json.loads(self.reason)
        return value

    def to_proto(self) -> pb.SealedReason:
        """The sealed part that travels: the scheme and the commitment only."""
        return pb.SealedReason(scheme=SCHEME, commitment=self.commitment)

    def opens(self, sealed: pb.SealedReason) -> bool:
        """Whether this opening opens ``sealed``."""
        return sealed.scheme == SCHEME and hmac.compare_digest(self.commitment, sealed.commitment)


def seal(*, query_id: str, node_id: str, outcome: str, checks: list[str], **details: Any) -> SealedOpening:
    """A fresh opening (random salt) for one decision's reason."""
    reason = {
        "query_id": query_id,
        "node_id": node_id,
        "outcome": outcome,
        "checks": sorted(checks),
        **details,
    }
    return SealedOpening(secrets.token_bytes(SALT_SIZE), _canonical(reason))
