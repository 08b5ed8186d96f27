"""What receipts are checked against: the federation file, or, short of it, fixed keys.

:class:`FederationTrust` is the real thing: key histories (log keys by tree size, node response
keys by time, witness keys by time) and the federation's witness policy. :class:`KeysTrust`
holds one log key and one response key per node, as clients built from bare keys have; it knows
no witness policy, so every checkpoint it sees is "quorum pending".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from comity.audit.checkpoint import open_checkpoint
from comity.audit.note import Ed25519Verifier
from comity.audit.quorum_checkpoint import QuorumCheckpoint, open_quorum_checkpoint
from comity.audit.statement import DatedKeys
from comity.core.errors import NotFound
from comity.core.federation import Federation
from comity.core.keys import VerifyingKey

__all__ = ["FederationTrust", "KeysTrust"]

NO_POLICY = "(no witness policy: give the federation file)"


@dataclass(frozen=True)
class FederationTrust:
    """Receipts checked under ``federation``: its key histories and its witness quorum."""

    federation: Federation

    def checkpoint(
        self, note: bytes, cosignatures: Sequence[str], *, not_before: datetime | None
    ) -> QuorumCheckpoint:
        """The checkpoint under the log key for its size, its cosignatures against the witness policy."""
        return open_quorum_checkpoint(note, cosignatures, self.federation, not_before=not_before)

    def response_keys(self, node: str) -> DatedKeys:
        """The node's response key history."""
        return self.federation.node(node).response_keys


@dataclass(frozen=True, slots=True)
class _Always:
    key: VerifyingKey

    def at(self, when: datetime) -> tuple[VerifyingKey, ...]:
        return (self.key,)

    def all(self) -> tuple[VerifyingKey, ...]:
        return (self.key,)


@dataclass(frozen=True)
class KeysTrust:
    """One log key and each node's one response key, valid at every time; no witness policy."""

    log_key: Ed25519Verifier
    node_keys: Mapping[str, VerifyingKey]

    def checkpoint(
        self, note: bytes, cosignatures: Sequence[str], *, not_before: datetime | None
    ) -> QuorumCheckpoint:
        """The checkpoint under the log key; without a policy no cosignature can make a quorum."""
        return QuorumCheckpoint(open_checkpoint(note, self.log_key), (), {NO_POLICY: 1})

    def response_keys(self, node: str) -> DatedKeys:
        """The node's single response key."""
        try:
            return _Always(self.node_keys[node])
        except KeyError:
            raise NotFound(f"node {node!r} is not among the known node keys") from None
